"""Checkpoints in the state keyspace on target (``state_store: cassandra``).

Two tables of the state keyspace (:mod:`zdm.state.keyspace` makes them)::

    runs    ((kind, tbl))            the current run of a table: its id, and as JSON its
                                     plan and when the first run of this copy started
    ranges  ((kind, tbl, run), range) one row per range of that run that ended, its record
                                     as JSON: a finished one's {"rows", "detail"?, and
                                     "carried": true when it came from an earlier run},
                                     or a given-up one's {"failed": its last error}

``load`` rebuilds the checkpoint from these: the finished ranges are ``done`` (those marked
so are ``carried``), the failed ones ``failed`` except those that finished ranges wholly
cover (a resumed run may cut the ring differently from the failed pieces; ``mark_done``
deletes such a record, but a crash between the two writes may leave one).

Invariants:
- A range row is written only once every row of the range is on target, and
  ``mark_done`` returns only once the cluster acknowledged it (LOCAL_QUORUM), as the file
  store's fsync: a resumed run never skips a range whose rows are not all written.
- ``start`` writes the new run's row last (after the ranges it carries over): a run
  replaced half-way leaves the earlier checkpoint readable, never a run row without its
  plan or its carried ranges.  The old run's range rows are
  deleted after (they name a run no longer current, so a leftover is never read).
- A failed range's record is never counted as done: a resumed run tries that range again,
  and finishing it under the same range key overwrites the record.
- Only the coordinator writes, so none of this needs a lightweight transaction.
"""

from __future__ import annotations

import json
import uuid

from zdm.config import Config
from zdm.ranges.ring import TokenRange, subtract
from zdm.state.checkpoint import FORMAT, CheckpointStore, TableCheckpoint, fresh
from zdm.state.keyspace import StateKeyspace


class CassandraCheckpointStore(CheckpointStore):
    def __init__(self, config: Config, kind: str = "migrate") -> None:
        self.kind = kind
        self.keyspace = StateKeyspace(config)
        self._runs: dict[str, str] = {}  # table -> its current run id, as this store wrote or read it

    def describe(self) -> str:
        return f"{self.keyspace.name}.runs and .ranges on target"

    def close(self) -> None:
        self.keyspace.close()

    def _current(self, table: str):
        return self.keyspace.run("SELECT run, body FROM {ks}.runs WHERE kind = ? AND tbl = ?",
                                 (self.kind, table), what=f"read the checkpoint of {table}").one()

    def load(self, table: str) -> TableCheckpoint | None:
        row = self._current(table)
        if row is None or not row.run:
            return None
        where = f"of {table} in {self.describe()}"
        try:
            body = json.loads(row.body)
            if body.get("format") != FORMAT:
                raise ValueError(f"unknown format {body.get('format')!r}")
            plan = [TokenRange.parse(k) for k in body["plan"]]
            cp = TableCheckpoint(table, plan, started_at=body.get("started_at", ""))
            for r in self.keyspace.run("SELECT range, record FROM {ks}.ranges WHERE kind = ? AND tbl = ? "
                                       "AND run = ?", (self.kind, table, row.run),
                                       what=f"read the finished ranges of {table}"):
                rng, record = TokenRange.parse(r.range), json.loads(r.record)
                if "failed" in record:
                    cp.failed[rng] = str(record["failed"])
                    continue
                cp.done[rng] = int(record["rows"])
                if record.get("detail") is not None:
                    cp.details[rng] = dict(record["detail"])
                if record.get("carried"):
                    cp.carried.add(rng)
            done = list(cp.done)
            for f in [f for f in cp.failed if f in cp.done or not subtract([f], done)]:
                del cp.failed[f]
        except (ValueError, KeyError, TypeError) as exc:
            raise self.corrupt(where, str(exc)) from None
        self._runs[table] = row.run
        return cp

    def start(self, table: str, plan: list[TokenRange], started_at: str = "",
              carried: TableCheckpoint | None = None) -> TableCheckpoint:
        previous = self._current(table)
        run = uuid.uuid4().hex
        cp = fresh(table, plan, started_at, carried)
        for rng, rows in cp.done.items():
            self._write_range(table, run, rng, rows, cp.details.get(rng), carried=True)
        body = json.dumps({"format": FORMAT, "table": table, "started_at": started_at,
                           "plan": [r.key() for r in plan]})
        self.keyspace.run("INSERT INTO {ks}.runs (kind, tbl, run, body) VALUES (?, ?, ?, ?)",
                          (self.kind, table, run, body), what=f"start the checkpoint of {table}")
        self._runs[table] = run
        if previous is not None and previous.run:
            self.keyspace.run("DELETE FROM {ks}.ranges WHERE kind = ? AND tbl = ? AND run = ?",
                              (self.kind, table, previous.run),
                              what=f"drop the earlier checkpoint of {table}")
        return cp

    def mark_done(self, cp: TableCheckpoint, rng: TokenRange, rows: int,
                  detail: dict | None = None) -> None:
        run = self._runs[cp.table]
        self._write_range(cp.table, run, rng, rows, detail)
        for f in cp.record_done(rng, rows, detail):
            if f != rng:  # the record under rng's own key was just overwritten
                self._delete_range(cp.table, run, f)

    def mark_failed(self, cp: TableCheckpoint, rng: TokenRange, error: str) -> None:
        run = self._runs[cp.table]
        self._put(cp.table, run, rng, json.dumps({"failed": error}))
        for f in cp.record_failed(rng, error):
            self._delete_range(cp.table, run, f)

    def _write_range(self, table: str, run: str, rng: TokenRange, rows: int, detail: dict | None,
                     carried: bool = False) -> None:
        self._put(table, run, rng, json.dumps({"rows": rows, **({"detail": detail} if detail is not None else {}),
                                               **({"carried": True} if carried else {})}))

    def _put(self, table: str, run: str, rng: TokenRange, record: str) -> None:
        self.keyspace.run("INSERT INTO {ks}.ranges (kind, tbl, run, range, record) VALUES (?, ?, ?, ?, ?)",
                          (self.kind, table, run, rng.key(), record),
                          what=f"checkpoint range {rng.key()} of {table}")

    def _delete_range(self, table: str, run: str, rng: TokenRange) -> None:
        self.keyspace.run("DELETE FROM {ks}.ranges WHERE kind = ? AND tbl = ? AND run = ? AND range = ?",
                          (self.kind, table, run, rng.key()),
                          what=f"drop the failed range {rng.key()} of {table}")
