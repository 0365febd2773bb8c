"""The ``cassandra`` state store: the migration's state in a keyspace on target, so the
proxies on several hosts, and zdm commands run anywhere, share it with no shared filesystem.

Tables of ``state_keyspace`` (default ``zdm_state``, created on first use)::

    migration    (id, seq)  one partition: static revision and body (the MigrationState
                            JSON), and one clustering row per journal entry (seq = the
                            revision the change wrote)
    proxies      (name)     each proxy's record, a map of field -> JSON value
    divergences  (id)       the records proxies shipped from their hosts, and when each
                            was resolved
    runs         (kind, tbl)             the current run of the copy or the validation of a
                                         table: its id, plan and parameters
    ranges       ((kind, tbl, run), range)  one row per finished range of that run

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
- Nothing here holds a password or key: the session is target's, from zdm.yaml.
"""

from __future__ import annotations

import json
import logging
import threading
from contextlib import ExitStack
from typing import Any, Iterable, Mapping

from zdm.config import Config
from zdm.connect import session
from zdm.errors import ZdmError
from zdm.state.divergences import Divergences
from zdm.phases.errors import ConcurrentModification, StateCorrupt, UnknownProxy
from zdm.phases.evidence import iso, utcnow
from zdm.phases.state import MigrationState, StateFormatError, decode, encode
from zdm.state.store import StateStore, check_proxy_name

log = logging.getLogger("zdm.state")

#: the partition of the migration table that holds this migration
_ID = "migration"

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {ks}.migration (id text, seq bigint, revision bigint static, "
    "body text static, entry text, PRIMARY KEY (id, seq)) WITH CLUSTERING ORDER BY (seq DESC)",
    "CREATE TABLE IF NOT EXISTS {ks}.proxies (name text PRIMARY KEY, fields map<text, text>)",
    "CREATE TABLE IF NOT EXISTS {ks}.divergences (id text PRIMARY KEY, record text, resolved text)",
    "CREATE TABLE IF NOT EXISTS {ks}.runs (kind text, tbl text, run text, body text, "
    "PRIMARY KEY ((kind, tbl)))",
    "CREATE TABLE IF NOT EXISTS {ks}.ranges (kind text, tbl text, run text, range text, record text, "
    "PRIMARY KEY ((kind, tbl, run), range))",
)
_TABLE_NAMES = {"migration", "proxies", "divergences", "runs", "ranges"}


class StateStoreUnavailable(ZdmError):
    """The cluster that holds the state cannot be read or written right now."""


class CassandraStateStore(StateStore):
    kind = "cassandra"

    def __init__(self, config: Config, *, timeout: float = 10.0) -> None:
        self.config = config
        self.keyspace = config.state_keyspace
        self.timeout = timeout
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None
        self._session = None
        self._prepared: dict[str, Any] = {}

    def describe(self) -> str:
        return f"keyspace {self.keyspace} on target"

    # -- the session -----------------------------------------------------------------
    def session(self):
        """target's session, connected (and the keyspace made) on first use."""
        with self._lock:
            if self._session is None:
                stack = ExitStack()
                try:
                    sess = stack.enter_context(session(self.config.target, name="target"))
                    self._ensure_schema(sess)
                except BaseException:
                    stack.close()
                    raise
                self._stack, self._session = stack, sess
            return self._session

    def close(self) -> None:
        with self._lock:
            if self._stack is not None:
                self._stack.close()
            self._stack = self._session = None
            self._prepared.clear()

    def _ensure_schema(self, sess) -> None:
        from cassandra import InvalidRequest, Unauthorized

        meta = sess.cluster.metadata
        ks = meta.keyspaces.get(self.keyspace)
        if ks is not None and _TABLE_NAMES <= set(ks.tables):
            return
        try:
            if ks is None:
                sess.execute(f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} WITH replication = "
                             f"{_replication(meta)}", timeout=60)
            for ddl in _TABLES:
                sess.execute(ddl.format(ks=self.keyspace), timeout=60)
        except (Unauthorized, InvalidRequest) as exc:
            raise ZdmError(f"cannot create the state keyspace {self.keyspace} on target: {exc}",
                           hint=f"create keyspace {self.keyspace} yourself (on Astra DB: in its console), "
                                "and let target's user create tables in it; or set "
                                "state_keyspace to one that exists") from None
        sess.cluster.control_connection.wait_for_schema_agreement(wait_time=30)

    def _run(self, cql: str, params: tuple = (), *, serial: bool = False, what: str):
        """Execute a prepared ``cql`` (``{ks}`` is the keyspace); failures are named."""
        from cassandra import ConsistencyLevel

        def bound():
            stmt = self._statement(cql).bind(params)
            stmt.consistency_level = ConsistencyLevel.LOCAL_SERIAL if serial else ConsistencyLevel.LOCAL_QUORUM
            return stmt
        return self._execute(bound, what=what)

    def _statement(self, cql: str):
        sess = self.session()
        stmt = self._prepared.get(cql)
        if stmt is None:
            stmt = self._prepared[cql] = sess.prepare(cql.format(ks=self.keyspace))
        return stmt

    def _execute(self, make, *, what: str, cas_timeout_raises: bool = False):
        """Run the statement ``make()`` builds; a driver failure becomes StateStoreUnavailable
        (a CAS write timeout is re-raised when the caller settles it)."""
        from cassandra import ConsistencyLevel, DriverException, WriteTimeout

        try:
            stmt = make()
            stmt.serial_consistency_level = ConsistencyLevel.LOCAL_SERIAL
            return self.session().execute(stmt, timeout=self.timeout)
        except WriteTimeout:
            if cas_timeout_raises:
                raise
            raise StateStoreUnavailable(f"cannot {what} in the state store ({self.describe()}): "
                                        "target did not answer in time",
                                        hint="check that target is up, then retry") from None
        except DriverException as exc:
            raise StateStoreUnavailable(
                f"cannot {what} in the state store ({self.describe()}): {type(exc).__name__}: {exc}",
                hint="state_store: cassandra keeps the migration's state on target; check that "
                     "target is up and reachable from this host, then retry") from None

    # -- the state -------------------------------------------------------------------
    def load(self, *, serial: bool = True) -> MigrationState:
        row = self._run("SELECT revision, body FROM {ks}.migration WHERE id = ? LIMIT 1", (_ID,),
                        serial=serial, what="read the state").one()
        if row is None or row.revision in (None, 0) or not row.body:
            return MigrationState()
        try:
            state = decode(row.body.encode())
        except StateFormatError as exc:
            raise StateCorrupt(f"{self.keyspace}.migration (on target)", str(exc),
                               journal=f"in the entry column of {self.keyspace}.migration") from None
        if state.revision != row.revision:
            raise StateCorrupt(f"{self.keyspace}.migration (on target)",
                               f"its body is revision {state.revision}, its revision column {row.revision}",
                               journal=f"in the entry column of {self.keyspace}.migration")
        return state

    def state_stamp(self) -> int | None:
        row = self._run("SELECT revision FROM {ks}.migration WHERE id = ? LIMIT 1", (_ID,),
                        what="poll the state").one()
        return None if row is None else row.revision

    def read_journal(self, limit: int | None = None) -> list[dict[str, Any]]:
        if limit:
            rows = self._run("SELECT seq, entry FROM {ks}.migration WHERE id = ? LIMIT ?", (_ID, limit),
                             what="read the journal")
        else:
            rows = self._run("SELECT seq, entry FROM {ks}.migration WHERE id = ?", (_ID,),
                             what="read the journal")
        return [json.loads(r.entry) for r in reversed(list(rows)) if r.seq is not None and r.entry]

    def _load_for_update(self) -> MigrationState:
        return self.load(serial=True)

    def _commit(self, new: MigrationState, *, expected_revision: int,
                journal: Mapping[str, Any] | None) -> None:
        from cassandra import ConsistencyLevel, WriteTimeout
        from cassandra.query import BatchStatement

        if new.revision != expected_revision + 1:
            raise ValueError(f"new revision {new.revision} must follow {expected_revision}")
        body = encode(new).decode()
        if expected_revision == 0:  # the partition's first change: make the row to compare with
            self._run("INSERT INTO {ks}.migration (id, revision, body) VALUES (?, 0, '') IF NOT EXISTS",
                      (_ID,), what="create the state")

        def batch():
            stmt = BatchStatement(consistency_level=ConsistencyLevel.LOCAL_QUORUM)
            stmt.add(self._statement("UPDATE {ks}.migration SET revision = ?, body = ? WHERE id = ? "
                                     "IF revision = ?"), (new.revision, body, _ID, expected_revision))
            if journal is not None:
                entry = json.dumps(journal, sort_keys=True, ensure_ascii=False)
                stmt.add(self._statement("INSERT INTO {ks}.migration (id, seq, entry) VALUES (?, ?, ?)"),
                         (_ID, new.revision, entry))
            return stmt
        try:
            result = self._execute(batch, what="write the state", cas_timeout_raises=True)
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
        self._run("INSERT INTO {ks}.proxies (name, fields) VALUES (?, ?)", (name, _encode(fields)),
                  what=f"register proxy {name}")

    def deregister_proxy(self, name: str) -> None:
        check_proxy_name(name)
        self._run("DELETE FROM {ks}.proxies WHERE name = ?", (name,), what=f"deregister proxy {name}")

    def update_proxy(self, name: str, /, **fields: Any) -> dict[str, Any]:
        check_proxy_name(name)
        fields.pop("name", None)
        result = self._run("UPDATE {ks}.proxies SET fields = fields + ? WHERE name = ? IF EXISTS",
                           (_encode(fields), name), what=f"update proxy {name}'s record")
        if not result.was_applied:
            raise UnknownProxy(name)
        row = self._run("SELECT fields FROM {ks}.proxies WHERE name = ?", (name,),
                        what=f"read proxy {name}'s record").one()
        return _decode(name, row.fields if row is not None else {})

    def proxy_records(self) -> dict[str, dict[str, Any]]:
        rows = self._run("SELECT name, fields FROM {ks}.proxies", what="read the proxies' records")
        return dict(sorted((r.name, _decode(r.name, r.fields or {})) for r in rows))

    # -- divergences -----------------------------------------------------------------
    def divergences(self) -> "ClusterDivergences":
        return ClusterDivergences(self)


class ClusterDivergences(Divergences):
    """The divergence records the proxies shipped to the state keyspace."""

    def __init__(self, store: CassandraStateStore) -> None:
        self.store = store

    def _rows(self):
        return self.store._run("SELECT id, record, resolved FROM {ks}.divergences",
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
            self.store._run("UPDATE {ks}.divergences SET resolved = ? WHERE id = ?", (stamp, i),
                            what="resolve a divergence record")
            n += 1
        return n

    def ship(self, records: Iterable[dict[str, Any]]) -> int:
        """Copy records written on a proxy's host here (idempotent: a record's row is its id,
        and shipping it again leaves its resolution alone)."""
        n = 0
        for r in records:
            self.store._run("INSERT INTO {ks}.divergences (id, record) VALUES (?, ?)",
                            (r["id"], json.dumps(r, sort_keys=True)), what="ship a divergence record")
            n += 1
        return n


def _replication(meta) -> str:
    """NetworkTopologyStrategy with up to 3 replicas in each of target's datacenters."""
    per_dc: dict[str, int] = {}
    for host in meta.all_hosts():
        if host.datacenter:
            per_dc[host.datacenter] = per_dc.get(host.datacenter, 0) + 1
    if not per_dc:
        return "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    dcs = ", ".join(f"'{dc}': {min(3, n)}" for dc, n in sorted(per_dc.items()))
    return "{'class': 'NetworkTopologyStrategy', " + dcs + "}"


def _encode(fields: Mapping[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v, sort_keys=True) for k, v in fields.items()}


def _decode(name: str, fields: Mapping[str, str]) -> dict[str, Any]:
    try:
        record = {k: json.loads(v) for k, v in fields.items()}
    except (TypeError, ValueError):
        # unreadable: registered but unacknowledged, so it holds routing changes up
        return {"name": name, "acked_revision": None}
    return {**record, "name": name}
