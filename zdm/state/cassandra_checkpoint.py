"""Checkpoints in the state keyspace on target (``state_store: cassandra``).

Two tables of the state keyspace (:mod:`zdm.state.keyspace` makes them)::

    runs    ((kind, tbl))            the current run of a table: its id, and as JSON its
                                     plan and when the first run of this copy started
    ranges  ((kind, tbl, run), range) one row per finished range of that run: its rows

Invariants:
- A range row is written only once every row of the range is on target, and
  ``mark_done`` returns only once the cluster acknowledged it (LOCAL_QUORUM), as the file
  store's fsync: a resumed run never skips a range whose rows are not all written.
- ``start`` writes the new run's row last (after the ranges it carries over): a run
  replaced half-way leaves the earlier checkpoint readable, never a run row without its
  plan or its carried ranges.  The old run's range rows are
  deleted after (they name a run no longer current, so a leftover is never read).
- Only the coordinator writes, so none of this needs a lightweight transaction.
"""

from __future__ import annotations

import json
import uuid

from zdm.config import Config
from zdm.ranges.ring import TokenRange
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
                cp.done[rng] = int(record["rows"])
                if record.get("detail") is not None:
                    cp.details[rng] = dict(record["detail"])
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
            self._write_range(table, run, rng, rows, cp.details.get(rng))
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
        self._write_range(cp.table, self._runs[cp.table], rng, rows, detail)
        cp.done[rng] = rows
        if detail is not None:
            cp.details[rng] = detail

    def _write_range(self, table: str, run: str, rng: TokenRange, rows: int, detail: dict | None) -> None:
        record = json.dumps({"rows": rows, **({"detail": detail} if detail is not None else {})})
        self.keyspace.run("INSERT INTO {ks}.ranges (kind, tbl, run, range, record) VALUES (?, ?, ?, ?, ?)",
                          (self.kind, table, run, rng.key(), record),
                          what=f"checkpoint range {rng.key()} of {table}")
