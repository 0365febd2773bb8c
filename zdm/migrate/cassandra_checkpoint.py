"""Checkpoints in the state keyspace on target (``state_store: cassandra``).

Two tables of the state keyspace (made by :mod:`zdm.phases.cassandra_store`)::

    runs    ((kind, tbl))            the current run of a table: its id, and as JSON its
                                     plan and when the first run of this copy started
    ranges  ((kind, tbl, run), range) one row per finished range of that run: its rows

Invariants:
- A range row is written only once every row of the range is on target, and
  ``mark_done`` returns only once the cluster acknowledged it (LOCAL_QUORUM), as the file
  store's fsync: a resumed run never skips a range whose rows are not all written.
- ``start`` writes the new run's row last: a run replaced half-way leaves the earlier
  checkpoint readable, never a run row without its plan.  The old run's range rows are
  deleted after (they name a run no longer current, so a leftover is never read).
- Only the coordinator writes, so none of this needs a lightweight transaction.
"""

from __future__ import annotations

import json
import uuid

from zdm.migrate.checkpoint import FORMAT, CheckpointStore, TableCheckpoint
from zdm.migrate.ring import TokenRange


class CassandraCheckpointStore(CheckpointStore):
    def __init__(self, config, kind: str = "migrate") -> None:
        from zdm.phases.cassandra_store import CassandraStateStore

        self.kind = kind
        self.state = CassandraStateStore(config)
        self._runs: dict[str, str] = {}  # table -> its current run id, as this store wrote or read it

    def describe(self) -> str:
        return f"{self.state.keyspace}.runs and .ranges on target"

    def close(self) -> None:
        self.state.close()

    def _current(self, table: str):
        return self.state._run("SELECT run, body FROM {ks}.runs WHERE kind = ? AND tbl = ?",
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
            done = {}
            for r in self.state._run("SELECT range, record FROM {ks}.ranges WHERE kind = ? AND tbl = ? "
                                     "AND run = ?", (self.kind, table, row.run),
                                     what=f"read the finished ranges of {table}"):
                done[TokenRange.parse(r.range)] = int(json.loads(r.record)["rows"])
        except (ValueError, KeyError, TypeError) as exc:
            raise self.corrupt(where, str(exc)) from None
        self._runs[table] = row.run
        return TableCheckpoint(table, plan, done, body.get("started_at", ""))

    def start(self, table: str, plan: list[TokenRange], started_at: str = "") -> TableCheckpoint:
        previous = self._current(table)
        run = uuid.uuid4().hex
        body = json.dumps({"format": FORMAT, "table": table, "started_at": started_at,
                           "plan": [r.key() for r in plan]})
        self.state._run("INSERT INTO {ks}.runs (kind, tbl, run, body) VALUES (?, ?, ?, ?)",
                        (self.kind, table, run, body), what=f"start the checkpoint of {table}")
        self._runs[table] = run
        if previous is not None and previous.run:
            self.state._run("DELETE FROM {ks}.ranges WHERE kind = ? AND tbl = ? AND run = ?",
                            (self.kind, table, previous.run),
                            what=f"drop the earlier checkpoint of {table}")
        return TableCheckpoint(table, list(plan), started_at=started_at)

    def mark_done(self, cp: TableCheckpoint, rng: TokenRange, rows: int) -> None:
        run = self._runs[cp.table]
        self.state._run("INSERT INTO {ks}.ranges (kind, tbl, run, range, record) VALUES (?, ?, ?, ?, ?)",
                        (self.kind, cp.table, run, rng.key(), json.dumps({"rows": rows})),
                        what=f"checkpoint range {rng.key()} of {cp.table}")
        cp.done[rng] = rows
