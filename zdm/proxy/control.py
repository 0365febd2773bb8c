"""The proxy instance's own connections to the clusters (its control connections).

Theory of operation: before a proxy instance listens it opens one connection to each
cluster, proving both reachable, learning which of them require a login and which
compression algorithms each offers (its answer to OPTIONS, asked first, as drivers do),
and reading origin's ``system.local`` for the virtual topology.  The connections stay open: the
instance's tick reconnects a lost one and keeps idle ones alive with heartbeats, and
:attr:`ControlPlane.connected` is what the instance reports as its health.

Origin's connection also owns the proxy's knowledge of the tables' primary keys
(:mod:`~zdm.proxy.schema`): read from ``system_schema.columns`` once connected, it follows
origin's SCHEMA_CHANGE events, re-reading the keyspace or table an event names at that
moment (everything after a reconnect, as events may have been missed; a failed read is
tried again at the next tick), and hands each new snapshot to ``on_schema`` (the instance
publishes it to its workers).  A failed read keeps the last snapshot: the records of a
table it lacks name every column their statement pins (:mod:`~zdm.proxy.keys`).

Each cluster's connection also owns that cluster's real topology
(:mod:`~zdm.proxy.cluster_topology`): its nodes (``system.local``, ``system.peers_v2`` or,
before Cassandra 4.0, ``system.peers``) and its keyspaces' replication.  It registers for
TOPOLOGY_CHANGE, STATUS_CHANGE and SCHEMA_CHANGE before the first read (so no event falls
between the two), reads everything again on a topology event, a keyspace's schema change, a
reconnect and every :data:`TOPOLOGY_REFRESH_S` (events are not guaranteed: a fallback), and
applies a STATUS_CHANGE to the last snapshot at once.  Each new snapshot goes to
``on_topology(cluster, snapshot)`` (the instance publishes it to its workers).  The local DC
is chosen at start (``<cluster>.local_dc``, or the contact points' DC) and one the cluster
lacks is refused there; a failed read keeps the last snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from zdm.config import Config
from zdm.cql import messages as m
from zdm.cql.constants import ErrorCode, Opcode, ResultKind
from zdm.cql.errors import ProtocolError
from zdm.cql.frame import Frame
from zdm.cql.types import deserialize
from zdm.errors import ZdmError
from zdm.phases.model import Cluster
from zdm.proxy.auth import login
from zdm.proxy.cluster_topology import ClusterTopology, TopologyError, choose_local_dc, \
    from_system_tables, legacy_replication
from zdm.proxy.connection import BackendConnection
from zdm.proxy.dialer import Dialer
from zdm.proxy.dataplane import keep_alive
from zdm.proxy.schema import COLUMNS_QUERY, EMPTY, LEGACY_COLUMNS_QUERY, KeySchema, from_rows
from zdm.proxy.topology import CLUSTER_FACTS

log = logging.getLogger("zdm.proxy")

#: the protocol versions the proxy tries on its own connections, newest first
VERSIONS_TO_TRY = (5, 4, 3)
#: how often each cluster's topology is read again without any event saying it changed
TOPOLOGY_REFRESH_S = 60.0
#: after a TOPOLOGY_CHANGE, read again this much later too: a joining node's row in
#: system.peers may lack its tokens when the event arrives
TOPOLOGY_SETTLE_S = 5.0
#: the events each control connection follows
EVENTS = ("TOPOLOGY_CHANGE", "STATUS_CHANGE", "SCHEMA_CHANGE")


class ProxyError(ZdmError):
    """The proxy cannot start or run."""


class ControlPlane:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dialer = Dialer(config)
        self.connections: dict[Cluster, BackendConnection] = {}
        self.requires_auth: dict[Cluster, bool] = {}
        #: the highest protocol version each cluster speaks (negotiated as a driver does)
        self.versions: dict[Cluster, int] = {}
        #: the compression algorithms each cluster offers (the COMPRESSION of its SUPPORTED)
        self.compression: dict[Cluster, tuple[str, ...]] = {}
        self.heartbeats = 0
        self._reconnecting: set[Cluster] = set()
        self.closing = False
        #: origin's primary keys; on_schema(snapshot) is told of each new one
        self.schema: KeySchema = EMPTY
        self.on_schema: Callable[[KeySchema], None] | None = None
        #: (keyspace, table) to read again; (None, None): everything; table None: the keyspace
        self._stale: set[tuple[str | None, str | None]] = set()
        self._schema_task: asyncio.Future | None = None
        self._schema_failing = False
        #: each cluster's real topology; on_topology(cluster, snapshot) is told of each new one
        self.topologies: dict[Cluster, ClusterTopology] = {}
        self.dialer.topology = self.topologies.get  # a lost control connection goes to another node
        self.on_topology: Callable[[Cluster, ClusterTopology], None] | None = None
        self._topology_stale: set[Cluster] = set()
        self._topology_tasks: dict[Cluster, asyncio.Future] = {}
        self._topology_due: dict[Cluster, float] = {}
        #: when to read once more after a TOPOLOGY_CHANGE
        self._topology_settle: dict[Cluster, float] = {}
        self._topology_failing: set[Cluster] = set()
        #: per cluster, the peers table it has (system.peers_v2 from Cassandra 4.0)
        self._peers_table: dict[Cluster, str] = {}

    @property
    def connected(self) -> dict[Cluster, bool]:
        return {c: c in self.connections and not self.connections[c].closed for c in Cluster}

    async def probe(self) -> dict:
        """Open both control connections; origin's cluster facts (its system.local).  Each
        cluster's topology is read and its local DC chosen (a configured one it lacks is
        refused)."""
        for cluster in Cluster:
            await self._open(cluster)
            await self._watch(cluster)
            self._topology_stale.add(cluster)
            self._topology_tasks[cluster] = asyncio.ensure_future(self._refresh_topology(cluster, starting=True))
            await self._topology_tasks[cluster]  # the one reader: an early event waits for it
        facts = await self._read_local(self.connections[Cluster.ORIGIN], self.versions[Cluster.ORIGIN])
        self._stale.add((None, None))
        self._schema_task = asyncio.ensure_future(self._refresh_schema())  # the one reader
        await self._schema_task
        return facts

    def _config(self, cluster: Cluster):
        return self.config.origin if cluster is Cluster.ORIGIN else self.config.target

    @property
    def max_client_version(self) -> int:
        """The newest protocol version a client may use: one both clusters speak."""
        return min(self.versions.values())

    async def _open(self, cluster: Cluster) -> None:
        """Connect and log in, at the newest protocol version the cluster speaks."""
        known = self.versions.get(cluster)
        for version in ((known,) if known else VERSIONS_TO_TRY):
            try:
                backend = await self.dialer.dial(cluster)
            except ZdmError as exc:
                raise ProxyError(exc.message, hint=exc.hint) from None
            answer = await backend.request(version, Opcode.OPTIONS, b"")
            if isinstance(answer, Frame) and answer.opcode == Opcode.SUPPORTED:
                try:
                    offer = m.decode_supported(answer.body).get("COMPRESSION", ())
                except ProtocolError:
                    offer = ()  # a cluster that cannot say gets uncompressed connections
                self.compression[cluster] = tuple(offer)
                answer = await backend.request(version, Opcode.STARTUP,
                                               m.encode_startup({"CQL_VERSION": "3.0.0"}))
            if not isinstance(answer, Frame):
                tls_failure = await self.dialer.explain_lost(backend, answer.message)
                if tls_failure is not None:
                    self.dialer.failed(cluster)
                    raise ProxyError(tls_failure.message, hint=tls_failure.hint)
            refused = not isinstance(answer, Frame) or (answer.opcode == Opcode.ERROR and
                                                        _unsupported_version(answer))
            if refused and known is None and version != VERSIONS_TO_TRY[-1]:
                backend.close()  # as drivers do: a new connection, one version lower
                continue
            break
        self.connections[cluster] = backend
        self.versions[cluster] = backend.version = version
        backend.in_handshake = False
        if not isinstance(answer, Frame) or answer.opcode == Opcode.ERROR:
            detail = m.decode_error(answer.body).message if isinstance(answer, Frame) else answer.message
            raise ProxyError(f"{cluster.value} refused the proxy's connection: {detail}")
        self.requires_auth[cluster] = answer.opcode == Opcode.AUTHENTICATE
        if self.requires_auth[cluster]:
            creds = self.config.origin.credentials if cluster is Cluster.ORIGIN else \
                self.config.target.credentials
            problem = await login(backend, creds, version, m.decode_authenticate(answer.body))
            # the proxy logs into the cluster that does not get the client's credentials: origin,
            # or target with forward_client_credentials_to_origin
            own = Cluster.TARGET if self.config.proxy.forward_client_credentials_to_origin \
                else Cluster.ORIGIN
            if problem is not None and cluster in (own, Cluster.ORIGIN):
                raise ProxyError(problem.removeprefix("zdm proxy: "),
                                 hint=f"set {cluster.value}.username and {cluster.value}.password "
                                      "(or password_env) in zdm.yaml")

    async def _reconnect(self, cluster: Cluster) -> None:
        try:
            await self._open(cluster)
            log.info("control connection to %s restored", cluster.value)
            await self._watch(cluster)
            self._topology_stale.add(cluster)  # events may have been missed meanwhile
            if cluster is Cluster.ORIGIN:
                self._stale.add((None, None))
        except Exception as exc:  # noqa: BLE001 - retried on a later tick
            log.warning("control connection to %s: %s", cluster.value, exc)
        finally:
            self._reconnecting.discard(cluster)

    async def _read_local(self, backend: BackendConnection, version: int) -> dict:
        answer = await backend.request(version, Opcode.QUERY,
                                       m.encode_query("SELECT * FROM system.local WHERE key='local'",
                                                      version=version))
        if not isinstance(answer, Frame):
            raise ProxyError(f"cannot read origin's system.local: {answer.message}")
        if answer.opcode != Opcode.RESULT or m.result_kind(answer.body, flags=answer.flags) != ResultKind.ROWS:
            raise ProxyError("cannot read origin's system.local: "
                             f"{m.decode_error(answer.body, flags=answer.flags).message}")
        rows = m.decode_rows(answer.body, version, flags=answer.flags)
        if not rows.rows:
            raise ProxyError("origin's system.local is empty")
        return {spec.name: deserialize(spec.type, raw) for spec, raw in zip(rows.columns, rows.rows[0])
                if spec.name in CLUSTER_FACTS}

    # -- events ----------------------------------------------------------------------------
    async def _watch(self, cluster: Cluster) -> None:
        """Have the cluster send its topology, status and schema events on the control connection."""
        backend, version = self.connections[cluster], self.versions[cluster]
        backend.on_event = lambda frame: self._event(cluster, frame)
        answer = await backend.request(version, Opcode.REGISTER, m.encode_register(EVENTS))
        if not isinstance(answer, Frame) or answer.opcode != Opcode.READY:
            log.warning("%s did not accept the proxy's REGISTER for events; its topology (and "
                        "origin's tables' keys) are read again only periodically and after a "
                        "reconnect", cluster.value)

    def _event(self, cluster: Cluster, frame: Frame) -> None:
        try:
            info = m.decode_event(frame.body, flags=frame.flags)
        except Exception:  # noqa: BLE001 - an event we cannot read changes nothing
            return
        if info.event_type == "STATUS_CHANGE" and info.address is not None:
            self._status_changed(cluster, str(info.address[0]), info.address[1], info.change == "UP")
            return
        if info.event_type == "TOPOLOGY_CHANGE" or (info.event_type == "SCHEMA_CHANGE" and
                                                     info.target == "KEYSPACE"):
            self._topology_stale.add(cluster)
            if info.event_type == "TOPOLOGY_CHANGE":
                self._topology_settle[cluster] = time.monotonic() + TOPOLOGY_SETTLE_S
            self._start_topology_refresh(cluster)
        if info.event_type != "SCHEMA_CHANGE" or cluster is not Cluster.ORIGIN:
            return
        if info.target == "KEYSPACE":
            self._stale.add((info.keyspace, None))
        elif info.target == "TABLE":
            self._stale.add((info.keyspace, info.name))
        else:
            return
        self._start_refresh()  # now, not at the next tick: a new table's first LWT may be near

    def _start_refresh(self) -> None:
        if self._stale and (self._schema_task is None or self._schema_task.done()) and \
                self.connected[Cluster.ORIGIN] and Cluster.ORIGIN not in self._reconnecting:
            self._schema_task = asyncio.ensure_future(self._refresh_schema())

    async def _refresh_schema(self) -> None:
        """Read again what events (or a reconnect) made stale; publish a new snapshot if it
        changed anything."""
        schema = self.schema
        while self._stale:  # events that arrive while reading are read too
            stale, self._stale = self._stale, set()
            try:
                if (None, None) in stale:
                    schema = await self._read_schema()
                else:
                    for keyspace, table in stale:
                        schema = schema.replaced(await self._read_schema(keyspace, table),
                                                 keyspace=keyspace, table=table)
            except Exception as exc:  # noqa: BLE001 - tried again on a later tick
                self._stale |= stale
                if not self._schema_failing:
                    log.warning("cannot read origin's table definitions (%s); divergence records of "
                                "tables not known yet name every column their statement pins; "
                                "trying again each second", exc)
                self._schema_failing = True
                return
        if self._schema_failing:
            log.info("origin's table definitions read again")
            self._schema_failing = False
        if schema != self.schema:
            self.schema = schema
            log.debug("origin's primary keys: %d tables", len(schema))
            if self.on_schema is not None:
                self.on_schema(schema)

    async def _read_schema(self, keyspace: str | None = None, table: str | None = None) -> KeySchema:
        """Origin's primary key columns: every table's, or one keyspace's, or one table's."""
        try:
            return from_rows(await self._columns(COLUMNS_QUERY, "table_name", keyspace, table))
        except _NoSuchTable:  # Cassandra 2.x
            return from_rows(await self._columns(LEGACY_COLUMNS_QUERY, "columnfamily_name", keyspace, table))

    async def _columns(self, query: str, table_column: str, keyspace: str | None,
                       table: str | None) -> list[list]:
        values = []
        if keyspace is not None:
            query += " WHERE keyspace_name = ?"
            values.append(keyspace.encode())
            if table is not None:
                query += f" AND {table_column} = ?"
                values.append(table.encode())
        return [list(row.values()) for row in await self._rows(Cluster.ORIGIN, query, values or None)]

    # -- each cluster's topology -------------------------------------------------------------
    def _status_changed(self, cluster: Cluster, address: str, port: int, up: bool) -> None:
        topology = self.topologies.get(cluster)
        if topology is None:
            return
        fresh = topology.with_status(address, port, up)
        if fresh is topology:
            fresh = topology.with_status(address, None, up)  # a node announced with another port
        if fresh is not topology:
            log.info("%s: node %s is %s", cluster.value, address, "up" if up else "down")
            self._publish_topology(cluster, fresh)
        elif topology.node_at(address) is None:
            self._topology_stale.add(cluster)  # a node the snapshot lacks: read them again
            self._start_topology_refresh(cluster)

    def _publish_topology(self, cluster: Cluster, topology: ClusterTopology) -> None:
        self.topologies[cluster] = topology
        if self.on_topology is not None:
            self.on_topology(cluster, topology)

    def _start_topology_refresh(self, cluster: Cluster) -> None:
        task = self._topology_tasks.get(cluster)
        if cluster in self._topology_stale and (task is None or task.done()) and \
                self.connected[cluster] and cluster not in self._reconnecting:
            self._topology_tasks[cluster] = asyncio.ensure_future(self._refresh_topology(cluster))

    async def _refresh_topology(self, cluster: Cluster, *, starting: bool = False) -> None:
        """Read the cluster's topology again while something made it stale; publish a new
        snapshot if it changed.  The first one read gets its local DC: at start, a configured
        one the cluster lacks is refused (ProxyError)."""
        while cluster in self._topology_stale:  # an event that arrives while reading: read again
            self._topology_stale.discard(cluster)
            self._topology_due[cluster] = time.monotonic() + TOPOLOGY_REFRESH_S
            try:
                rows = await self._read_topology(cluster)
                # statuses as the events said them, including any that came while reading
                previous = self.topologies.get(cluster)
                fresh = from_system_tables(*rows, default_port=self._config(cluster).port,
                                           previous=previous)
            except Exception as exc:  # noqa: BLE001 - tried again a little later
                self._topology_due[cluster] = time.monotonic() + TOPOLOGY_SETTLE_S
                if cluster not in self._topology_failing:
                    log.warning("cannot read %s's topology (%s); %s; trying again every %d s",
                                cluster.value, exc, "its connections go to the contact points"
                                if cluster not in self.topologies else "routing by the last one read",
                                TOPOLOGY_SETTLE_S)
                self._topology_failing.add(cluster)
                return
            if cluster in self._topology_failing:
                log.info("%s's topology read again", cluster.value)
                self._topology_failing.discard(cluster)
            if previous is None:
                cfg = self._config(cluster)
                try:
                    local_dc = choose_local_dc(fresh, cfg.local_dc, cluster=cluster.value,
                                               contact_points=() if cfg.secure_connect_bundle
                                               else cfg.contact_points)
                except TopologyError as exc:
                    if starting:
                        raise ProxyError(exc.message, hint=exc.hint) from None
                    log.error("%s (%s)", exc.message, exc.hint)
                    local_dc = cfg.local_dc or fresh.dcs[0]
                fresh = fresh.with_local_dc(local_dc)
            elif fresh.local_dc not in fresh.dcs:
                log.warning("%s has no node in its local datacenter %s any more (datacenters: %s); "
                            "connections go to other datacenters' nodes", cluster.value,
                            fresh.local_dc, ", ".join(fresh.dcs))
            if fresh != self.topologies.get(cluster):
                log.info("%s: %s", cluster.value, fresh.describe())
                self._publish_topology(cluster, fresh)

    async def _read_topology(self, cluster: Cluster) -> tuple[dict, list[dict], dict[str, dict]]:
        """The rows of the cluster's nodes (system.local, its peers) and its keyspaces'
        replication, read on its control connection."""
        local = await self._rows(cluster, "SELECT * FROM system.local WHERE key='local'")
        if not local:
            raise ProxyError(f"{cluster.value}'s system.local is empty")
        peers_table = self._peers_table.get(cluster, "system.peers_v2")
        try:
            peers = await self._rows(cluster, f"SELECT * FROM {peers_table}")
        except _NoSuchTable:  # before Cassandra 4.0
            peers_table = "system.peers"
            peers = await self._rows(cluster, "SELECT * FROM system.peers")
        self._peers_table[cluster] = peers_table
        try:
            keyspaces = {row["keyspace_name"]: row["replication"] or {} for row in await self._rows(
                cluster, "SELECT keyspace_name, replication FROM system_schema.keyspaces")}
        except _NoSuchTable:  # Cassandra 2.x
            keyspaces = {row["keyspace_name"]: legacy_replication(row["strategy_class"], row["strategy_options"])
                         for row in await self._rows(cluster, "SELECT keyspace_name, strategy_class, "
                                                              "strategy_options FROM system.schema_keyspaces")}
        return local[0], peers, keyspaces

    async def _rows(self, cluster: Cluster, query: str, values: list[bytes] | None = None) -> list[dict]:
        """Every row of ``query`` (with its bound ``values``) on the cluster's control
        connection, page by page: column name -> value, in the columns' order."""
        backend, version = self.connections[cluster], self.versions[cluster]
        rows, paging_state = [], None
        while True:
            answer = await backend.request(version, Opcode.QUERY, m.encode_query(
                query, version=version, values=values, page_size=5000, paging_state=paging_state))
            if not isinstance(answer, Frame):
                raise ProxyError(answer.message)
            if answer.opcode != Opcode.RESULT:
                error = m.decode_error(answer.body, flags=answer.flags)
                if error.code == ErrorCode.INVALID:
                    raise _NoSuchTable(error.message)
                raise ProxyError(error.message)
            result = m.decode_rows(answer.body, version, flags=answer.flags)
            rows.extend({spec.name: deserialize(spec.type, cell) if cell is not None else None
                         for spec, cell in zip(result.columns, row)} for row in result.rows)
            if result.paging_state is None:
                return rows
            paging_state = result.paging_state

    def tick(self, now: float | None = None) -> None:
        """Reconnect a lost control connection; heartbeats on idle ones; read again the
        tables whose schema changed, and the topologies that are due."""
        now = time.monotonic() if now is None else now
        self._start_refresh()
        for cluster, due in list(self._topology_due.items()):
            if now >= due:
                self._topology_stale.add(cluster)
                self._topology_due[cluster] = now + TOPOLOGY_REFRESH_S
            if now >= self._topology_settle.get(cluster, float("inf")):
                self._topology_stale.add(cluster)
                del self._topology_settle[cluster]
            self._start_topology_refresh(cluster)
        for cluster, backend in list(self.connections.items()):
            if backend.closed:
                if cluster not in self._reconnecting and not self.closing:
                    self._reconnecting.add(cluster)
                    asyncio.ensure_future(self._reconnect(cluster))
                continue
            self.heartbeats += keep_alive(backend, now, self.config.proxy.heartbeat_interval_s)

    def close(self) -> None:
        self.closing = True
        for backend in self.connections.values():
            backend.close()


class _NoSuchTable(Exception):
    """The schema table asked for does not exist on this Cassandra version."""


def _unsupported_version(answer: Frame) -> bool:
    info = m.decode_error(answer.body, flags=answer.flags)
    return info.code == ErrorCode.PROTOCOL_ERROR and "version" in info.message.lower()
