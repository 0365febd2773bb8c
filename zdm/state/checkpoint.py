"""Per-table, per-range progress of a copy or a validation, kept with the migration's state:
the checkpoint, the interface of its stores, and the file store (:func:`zdm.state.open_checkpoints`
picks the store).

With ``state_store: file``, one JSON file per table (``<state_dir>/migrate/<keyspace>.<table>.json``)
holds the range plan of the run and the ranges finished so far with their row counts, which
of those it carried from an earlier run (a validation re-check keeps the clean ranges of the
last one), and the ranges given up on after every retry, with their last error.  Every
update rewrites the file atomically (write a temporary file, fsync, rename), so a crash
leaves either the old or the new content, never a torn one.  With ``state_store:
cassandra`` the same checkpoint lives in the state keyspace on target
(:mod:`zdm.state.cassandra_checkpoint`), so a run resumed on another host skips what
this one finished.  Only the coordinating process writes it.  A range counts as done only once all of its rows are written, so
``remaining()`` after a crash is exactly the work still owed.  A failed range is never done:
it stays owed, and leaves ``failed`` once done ranges cover it (a resumed run may cut the
ring differently from the failed pieces).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from zdm.errors import ZdmError
from zdm.fsutil import atomic_write
from zdm.ranges.ring import TokenRange, subtract

FORMAT = 1


class CheckpointCorrupt(ZdmError):
    """A checkpoint file cannot be read."""


@dataclass
class TableCheckpoint:
    table: str
    plan: list[TokenRange]
    done: dict[TokenRange, int] = field(default_factory=dict)
    #: when the first run of this copy started (ISO 8601, UTC); kept across resumes
    started_at: str = ""
    #: what the work found in each finished range, where it says more than a row count
    #: (validate: the range's comparison), JSON-ready
    details: dict[TokenRange, dict] = field(default_factory=dict)
    #: the ranges whose ``done`` entry this run carried from an earlier one when it started
    carried: set[TokenRange] = field(default_factory=set)
    #: the ranges given up on after every retry, with their last error; never done
    failed: dict[TokenRange, str] = field(default_factory=dict)

    def remaining(self) -> list[TokenRange]:
        return subtract(self.plan, self.done)

    @property
    def complete(self) -> bool:
        return not self.remaining()

    @property
    def rows_done(self) -> int:
        return sum(self.done.values())

    def to_json(self) -> dict:
        return {"format": FORMAT, "table": self.table, "started_at": self.started_at,
                "plan": [r.key() for r in self.plan],
                "done": {r.key(): n for r, n in sorted(self.done.items())},
                **({"details": {r.key(): d for r, d in sorted(self.details.items())}}
                   if self.details else {}),
                **({"carried": [r.key() for r in sorted(self.carried)]} if self.carried else {}),
                **({"failed": {r.key(): e for r, e in sorted(self.failed.items())}}
                   if self.failed else {})}

    @classmethod
    def from_json(cls, data: dict) -> "TableCheckpoint":
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown format {data.get('format')!r}")
        return cls(data["table"], [TokenRange.parse(k) for k in data["plan"]],
                   {TokenRange.parse(k): int(n) for k, n in data["done"].items()},
                   data.get("started_at", ""),
                   {TokenRange.parse(k): dict(d) for k, d in data.get("details", {}).items()},
                   {TokenRange.parse(k) for k in data.get("carried", ())},
                   {TokenRange.parse(k): str(e) for k, e in data.get("failed", {}).items()})

    def record_done(self, rng: TokenRange, rows: int, detail: dict | None = None) -> list[TokenRange]:
        """``rng`` done (in memory); returns the failed ranges this leaves wholly covered by
        done ones, which it drops from ``failed``."""
        self.done[rng] = rows
        self.carried.discard(rng)  # done by this run now, not carried
        if detail is not None:
            self.details[rng] = detail
        # only a failed range overlapping ``rng`` can have become covered just now
        touched = [f for f in self.failed if f.start < rng.end and rng.start < f.end]
        covered = [f for f in touched if not subtract([f], list(self.done))] if touched else []
        for f in covered:
            del self.failed[f]
        return covered

    def record_failed(self, rng: TokenRange, error: str) -> list[TokenRange]:
        """``rng`` given up on with ``error`` (in memory); returns the earlier failed ranges
        inside it, which this newer failure replaces (dropped from ``failed``)."""
        inside = [f for f in self.failed if f != rng and rng.start <= f.start and f.end <= rng.end]
        for f in inside:
            del self.failed[f]
        self.failed[rng] = error
        return inside


class CheckpointStore(ABC):
    """Where one kind of range work (``migrate``, ``validate``) keeps its per-table progress.

    Only the coordinator writes: ``start`` a fresh checkpoint for a table (replacing any
    earlier one), then ``mark_done`` each range once all of its rows are written, or
    ``mark_failed`` one it gave up on.  Every
    engine's coordinator uses the same store, so a resumed run skips the ranges another
    engine (or another host, with the cluster store) finished."""

    kind: str

    @abstractmethod
    def load(self, table: str) -> TableCheckpoint | None:
        """The table's last checkpoint (None: there is none)."""

    @abstractmethod
    def start(self, table: str, plan: list[TokenRange], started_at: str = "",
              carried: TableCheckpoint | None = None) -> TableCheckpoint:
        """A fresh checkpoint (any previous one is replaced), holding from the start the
        finished ranges of ``carried`` (a re-check of only some ranges keeps the others)."""

    @abstractmethod
    def mark_done(self, cp: TableCheckpoint, rng: TokenRange, rows: int,
                  detail: dict | None = None) -> None:
        """Record ``rng`` of ``cp`` as finished with ``rows`` rows (and what was found in it),
        durably, before returning; drops from ``cp.failed`` every failed range that done ranges
        now wholly cover."""

    @abstractmethod
    def mark_failed(self, cp: TableCheckpoint, rng: TokenRange, error: str) -> None:
        """Record ``rng`` of ``cp`` as given up on (after every retry) with its last ``error``,
        durably, before returning.  It stays not done: a resumed run tries it again."""

    @abstractmethod
    def describe(self) -> str:
        """Where the checkpoints live, for messages."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "CheckpointStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def corrupt(self, where: str, problem: str) -> CheckpointCorrupt:
        return CheckpointCorrupt(f"checkpoint {where} is unreadable: {problem}",
                                 hint=f"delete it and run `zdm {self.kind}` without --resume "
                                      "to start that table again")


class FileCheckpointStore(CheckpointStore):
    """One JSON file per table under ``<state_dir>/<kind>/``."""

    def __init__(self, state_dir: Path | str, kind: str = "migrate") -> None:
        self.kind = kind
        self.root = Path(state_dir) / kind

    def describe(self) -> str:
        return str(self.root)

    def path(self, table: str) -> Path:
        return self.root / f"{table}.json"

    def load(self, table: str) -> TableCheckpoint | None:
        path = self.path(table)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return TableCheckpoint.from_json(data)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise self.corrupt(str(path), str(exc)) from None

    def save(self, cp: TableCheckpoint) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(cp.table)
        atomic_write(path, json.dumps(cp.to_json(), indent=1).encode())

    def start(self, table: str, plan: list[TokenRange], started_at: str = "",
              carried: TableCheckpoint | None = None) -> TableCheckpoint:
        cp = fresh(table, plan, started_at, carried)
        self.save(cp)
        return cp

    def mark_done(self, cp: TableCheckpoint, rng: TokenRange, rows: int,
                  detail: dict | None = None) -> None:
        cp.record_done(rng, rows, detail)
        self.save(cp)

    def mark_failed(self, cp: TableCheckpoint, rng: TokenRange, error: str) -> None:
        cp.record_failed(rng, error)
        self.save(cp)


def fresh(table: str, plan: list[TokenRange], started_at: str,
          carried: TableCheckpoint | None) -> TableCheckpoint:
    """A new checkpoint of ``plan`` holding the finished ranges of ``carried`` (marked as
    carried); its failures are not carried: this run tries those ranges again."""
    cp = TableCheckpoint(table, list(plan), started_at=started_at)
    if carried is not None:
        cp.done.update(carried.done)
        cp.details.update(carried.details)
        cp.carried = set(carried.done)
    return cp

