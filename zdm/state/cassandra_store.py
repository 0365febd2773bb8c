"""The ``cassandra`` state store: the migration's state in a keyspace on target, so the
proxies on several hosts, and zdm commands run anywhere, share it with no shared filesystem.

Its tables, and the session every statement goes through, are :mod:`zdm.state.keyspace`'s.

Invariants:
- Every change of the state is one lightweight transaction on its partition: the new body
  and revision ``IF revision = <the one read>``, with its journal row in the same
  conditional batch, so the journal never misses or repeats a change.  A commit whose
  outcome the cluster did not report (a CAS timeout) is read back at SERIAL before it is
  called failed.
- The state is read at SERIAL for a read-modify-write (no stale read starts one), and at
  LOCAL_QUORUM for the stamp proxies poll (it changes only once a change is committed).
- A proxy writes only its own row: a merge into its map ``IF EXISTS``, so a proxy an
  operator deregistered is told (UnknownProxy) instead of reappearing half-written.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable, Mapping

from zdm.clock import iso, utcnow
from zdm.config import Config
from zdm.phases.errors import ConcurrentModification, StateCorrupt, UnknownProxy
from zdm.phases.state import MigrationState, StateFormatError, decode, encode
from zdm.state.divergences import Divergences
from zdm.state.keyspace import StateKeyspace, StateStoreUnavailable
from zdm.state.store import StateStore, check_proxy_name

log = logging.getLogger("zdm.state")

#: the partition of the migration table that holds this migration
_ID = "migration"


class CassandraStateStore(StateStore):
    kind = "cassandra"

    def __init__(self, config: Config, *, timeout: float = 10.0) -> None:
        self.keyspace = StateKeyspace(config, timeout=timeout)

    def describe(self) -> str:
        return self.keyspace.describe()

    def close(self) -> None:
        self.keyspace.close()

    # -- the state -------------------------------------------------------------------
    def load(self, *, serial: bool = True) -> MigrationState:
        row = self.keyspace.run("SELECT revision, body FROM {ks}.migration WHERE id = ? LIMIT 1", (_ID,),
                                serial=serial, what="read the state").one()
        if row is None or row.revision in (None, 0) or not row.body:
            return MigrationState()
        try:
            state = decode(row.body.encode())
        except StateFormatError as exc:
            raise StateCorrupt(f"{self.keyspace.name}.migration (on target)", str(exc),
                               journal=f"in the entry column of {self.keyspace.name}.migration") from None
        if state.revision != row.revision:
            raise StateCorrupt(f"{self.keyspace.name}.migration (on target)",
                               f"its body is revision {state.revision}, its revision column {row.revision}",
                               journal=f"in the entry column of {self.keyspace.name}.migration")
        return state

    def state_stamp(self) -> int | None:
        row = self.keyspace.run("SELECT revision FROM {ks}.migration WHERE id = ? LIMIT 1", (_ID,),
                                what="poll the state").one()
        return None if row is None else row.revision

    def read_journal(self, limit: int | None = None) -> list[dict[str, Any]]:
        if limit:
            rows = self.keyspace.run("SELECT seq, entry FROM {ks}.migration WHERE id = ? LIMIT ?", (_ID, limit),
                                     what="read the journal")
        else:
            rows = self.keyspace.run("SELECT seq, entry FROM {ks}.migration WHERE id = ?", (_ID,),
                                     what="read the journal")
        return [json.loads(r.entry) for r in reversed(list(rows)) if r.seq is not None and r.entry]

    def _load_for_update(self) -> MigrationState:
        return self.load(serial=True)

    def _commit(self, new: MigrationState, *, expected_revision: int,
                journal: Mapping[str, Any] | None) -> None:
        # the driver only here: the proxy imports this module and never runs this (see keyspace.py)
        from cassandra import ConsistencyLevel, WriteTimeout
        from cassandra.query import BatchStatement

        if new.revision != expected_revision + 1:
            raise ValueError(f"new revision {new.revision} must follow {expected_revision}")
        body = encode(new).decode()
        if expected_revision == 0:  # the partition's first change: make the row to compare with
            self.keyspace.run("INSERT INTO {ks}.migration (id, revision, body) VALUES (?, 0, '') IF NOT EXISTS",
                              (_ID,), what="create the state")

        def batch():
            stmt = BatchStatement(consistency_level=ConsistencyLevel.LOCAL_QUORUM)
            stmt.add(self.keyspace.statement("UPDATE {ks}.migration SET revision = ?, body = ? WHERE id = ? "
                                             "IF revision = ?"), (new.revision, body, _ID, expected_revision))
            if journal is not None:
                entry = json.dumps(journal, sort_keys=True, ensure_ascii=False)
                stmt.add(self.keyspace.statement("INSERT INTO {ks}.migration (id, seq, entry) VALUES (?, ?, ?)"),
                         (_ID, new.revision, entry))
            return stmt
        try:
            result = self.keyspace.execute(batch, what="write the state", cas_timeout_raises=True)
        except WriteTimeout:
            # the change may or may not have been applied: a SERIAL read settles it
            found = self.load(serial=True)
            if found.revision == new.revision and encode(found) == encode(new):
                return
            if found.revision == expected_revision:
                raise StateStoreUnavailable(
                    f"target did not confirm the change of the migration state in time; it was not "
                    f"applied (still revision {expected_revision})", hint="retry") from None
            raise ConcurrentModification(expected_revision, found.revision) from None
        if not result.was_applied:
            found = result.one().revision
            raise ConcurrentModification(expected_revision, -1 if found is None else found)

    # -- proxies ---------------------------------------------------------------------
    def register_proxy(self, name: str, address: str) -> None:
        check_proxy_name(name)
        fields = {"address": address, "registered_at": iso(utcnow()), "acked_revision": None,
                  "acked_at": None}
        self.keyspace.run("INSERT INTO {ks}.proxies (name, fields) VALUES (?, ?)", (name, _encode(fields)),
                          what=f"register proxy {name}")

    def deregister_proxy(self, name: str) -> None:
        check_proxy_name(name)
        self.keyspace.run("DELETE FROM {ks}.proxies WHERE name = ?", (name,), what=f"deregister proxy {name}")

    def update_proxy(self, name: str, /, **fields: Any) -> dict[str, Any]:
        check_proxy_name(name)
        fields.pop("name", None)
        result = self.keyspace.run("UPDATE {ks}.proxies SET fields = fields + ? WHERE name = ? IF EXISTS",
                                   (_encode(fields), name), what=f"update proxy {name}'s record")
        if not result.was_applied:
            raise UnknownProxy(name)
        row = self.keyspace.run("SELECT fields FROM {ks}.proxies WHERE name = ?", (name,),
                                what=f"read proxy {name}'s record").one()
        return _decode(name, row.fields if row is not None else {})

    def proxy_records(self) -> dict[str, dict[str, Any]]:
        rows = self.keyspace.run("SELECT name, fields FROM {ks}.proxies", what="read the proxies' records")
        return dict(sorted((r.name, _decode(r.name, r.fields or {})) for r in rows))

    # -- divergences -----------------------------------------------------------------
    def divergences(self) -> "ClusterDivergences":
        return ClusterDivergences(self.keyspace)


class ClusterDivergences(Divergences):
    """The divergence records the proxies shipped to the state keyspace."""

    def __init__(self, keyspace: StateKeyspace) -> None:
        self.keyspace = keyspace

    def _rows(self):
        return self.keyspace.run("SELECT id, record, resolved FROM {ks}.divergences",
                                 what="read the divergence records")

    def records(self) -> list[dict[str, Any]]:
        out = []
        for r in self._rows():
            try:
                out.append(json.loads(r.record))
            except (TypeError, ValueError):
                out.append({"id": r.id, "kind": "unreadable", "keyspace": None, "table": None})
        return sorted(out, key=lambda r: (r.get("at") or "", r.get("id") or ""))

    def resolved_ids(self) -> set[str]:
        return {r.id for r in self._rows() if r.resolved}

    def resolve(self, ids: Iterable[str], how: str) -> int:
        n = 0
        stamp = json.dumps({"how": how, "at": iso(utcnow())})
        for i in ids:
            self.keyspace.run("UPDATE {ks}.divergences SET resolved = ? WHERE id = ?", (stamp, i),
                              what="resolve a divergence record")
            n += 1
        return n

    def ship(self, records: Iterable[dict[str, Any]]) -> int:
        """Copy records written on a proxy's host here (idempotent: a record's row is its id,
        and shipping it again leaves its resolution alone)."""
        n = 0
        for r in records:
            self.keyspace.run("INSERT INTO {ks}.divergences (id, record) VALUES (?, ?)",
                              (r["id"], json.dumps(r, sort_keys=True)), what="ship a divergence record")
            n += 1
        return n


def _encode(fields: Mapping[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v, sort_keys=True) for k, v in fields.items()}


def _decode(name: str, fields: Mapping[str, str]) -> dict[str, Any]:
    try:
        record = {k: json.loads(v) for k, v in fields.items()}
    except (TypeError, ValueError):
        # unreadable: registered but unacknowledged, so it holds routing changes up
        return {"name": name, "acked_revision": None}
    return {**record, "name": name}
