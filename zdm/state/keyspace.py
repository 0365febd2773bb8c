"""The state keyspace on target (``state_store: cassandra``): one session, its tables, and
statements run with their failures named. The state store and the checkpoint store both
keep what they keep here, through :class:`StateKeyspace`.

Tables of ``state_keyspace`` (default ``zdm_state``, created on first use)::

    migration    (id, seq)  one partition: static revision and body (the MigrationState
                            JSON), and one clustering row per journal entry (seq = the
                            revision the change wrote)
    proxies      (name)     each proxy's record, a map of field -> JSON value
    divergences  (id)       the records proxies shipped from their hosts, and when each
                            was resolved
    runs         (kind, tbl)             the current run of the copy or the validation of a
                                         table: its id, plan and parameters
    ranges       ((kind, tbl, run), range)  one row per finished (or given-up) range of that run

Invariants:
- A statement runs at LOCAL_QUORUM, or LOCAL_SERIAL when a read must see every committed
  lightweight transaction; conditional writes use LOCAL_SERIAL for their Paxos phase.
- A driver failure becomes :class:`StateStoreUnavailable`, naming what could not be done
  and where: a command never fails with a bare driver exception.
- Nothing here holds a password or key: the session is target's, from zdm.yaml.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any, Callable

from zdm.config import Config
from zdm.errors import ZdmError

# The driver's own modules are imported where a statement is made, not here: the proxy
# imports zdm.state for its file store and never needs the driver (a quarter of a second).

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


class StateKeyspace:
    """target's session for ``state_keyspace``: connected, and the keyspace made, on first use."""

    def __init__(self, config: Config, *, timeout: float = 10.0) -> None:
        self.config = config
        self.name = config.state_keyspace
        self.timeout = timeout
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None
        self._session = None
        self._prepared: dict[str, Any] = {}

    def describe(self) -> str:
        return f"keyspace {self.name} on target"

    def session(self):
        with self._lock:
            if self._session is None:
                # the driver's cluster module is large: a proxy's workers import this package
                # for its divergence records and never connect here
                from zdm.clusters.connect import session as connect

                stack = ExitStack()
                try:
                    sess = stack.enter_context(connect(self.config.target, name="target"))
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
        ks = meta.keyspaces.get(self.name)
        if ks is not None and _TABLE_NAMES <= set(ks.tables):
            return
        try:
            if ks is None:
                sess.execute(f"CREATE KEYSPACE IF NOT EXISTS {self.name} WITH replication = "
                             f"{_replication(meta)}", timeout=60)
            for ddl in _TABLES:
                sess.execute(ddl.format(ks=self.name), timeout=60)
        except (Unauthorized, InvalidRequest) as exc:
            raise ZdmError(f"cannot create the state keyspace {self.name} on target: {exc}",
                           hint=f"create keyspace {self.name} yourself (on Astra DB: in its console), "
                                "and let target's user create tables in it; or set "
                                "state_keyspace to one that exists") from None
        sess.cluster.control_connection.wait_for_schema_agreement(wait_time=30)

    def run(self, cql: str, params: tuple = (), *, serial: bool = False, what: str):
        """Execute a prepared ``cql`` (``{ks}`` is the keyspace); failures are named by ``what``
        ("read the state": "cannot read the state in the state store (...)")."""
        from cassandra import ConsistencyLevel

        def bound():
            stmt = self.statement(cql).bind(params)
            stmt.consistency_level = ConsistencyLevel.LOCAL_SERIAL if serial else ConsistencyLevel.LOCAL_QUORUM
            return stmt
        return self.execute(bound, what=what)

    def statement(self, cql: str):
        """``cql`` (``{ks}`` is the keyspace) prepared, once per session."""
        sess = self.session()
        stmt = self._prepared.get(cql)
        if stmt is None:
            stmt = self._prepared[cql] = sess.prepare(cql.format(ks=self.name))
        return stmt

    def execute(self, make: Callable[[], Any], *, what: str, cas_timeout_raises: bool = False):
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
