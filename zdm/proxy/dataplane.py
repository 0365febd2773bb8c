"""The client connections one event loop serves, and what they share.

Theory of operation: a proxy instance has one :class:`DataPlane` per worker process (an
in-process proxy has exactly one).  The instance's listener accepts each client
connection and hands the socket to the data plane of the least busy worker
(:meth:`DataPlane.adopt`); from then on that connection lives here: its
:class:`~zdm.proxy.session.ClientSession`, its two cluster connections, and the
:class:`~zdm.proxy.handler.Context` shared by every connection of this loop (routing,
prepared ids, counters, the virtual topology).  A tick twice a second fails overdue
requests and sends heartbeats on idle cluster connections.  Nothing here reads or
writes files: routing changes and counters cross to the instance as plain values.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from typing import Callable, Collection, Mapping

from zdm.config import Config
from zdm.cql.constants import MAX_VERSION, ErrorCode, Opcode
from zdm.cql.frame import Frame
from zdm.state.divergences import DivergenceLog, DivergenceWriter
from zdm.phases.model import Cluster, ReadMode, Routing
from zdm.proxy.aggregate import Outcome
from zdm.proxy.connection import BackendConnection, ClientConnection
from zdm.proxy.dialer import Dialer
from zdm.proxy.handler import Context
from zdm.proxy.refusal import Refusal
from zdm.proxy.session import ClientSession
from zdm.proxy.token_aware import NodeLinks
from zdm.proxy.topology import Instance, VirtualTopology
from zdm.clusters.tls import server_context
from zdm.clusters.tls_diagnosis import classify, short_error
from zdm.scope import Scope

log = logging.getLogger("zdm.proxy")

#: how long a client on the TLS port has to start and finish its handshake
TLS_HANDSHAKE_TIMEOUT = 10.0


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"

TICK_SECONDS = 0.5


class DataPlane:
    def __init__(self, config: Config, topology: VirtualTopology, me: Instance, routing: Routing, *,
                 name: str = "zdm-proxy", max_version: int = MAX_VERSION,
                 compression: Mapping[Cluster, Collection[str]] | None = None,
                 on_connection_ended: Callable[[], None] | None = None) -> None:
        self.config = config
        self.name = name  # this data plane's writer name in the divergence records
        pc = config.proxy
        self.ctx = Context(routing=routing, topology=topology, me=me, scope=Scope.of(config),
                           name=name, divergences=self._record,
                           secondary_timeout=pc.secondary_write_timeout_s
                           if pc.secondary_write_failure == "record" else None,
                           replace_functions=pc.replace_cql_functions, max_version=max_version,
                           compression=compression, metrics=pc.metrics_enabled,
                           token_aware=pc.token_aware)
        self._divergences: DivergenceWriter | None = None
        self._tls = server_context(pc.tls) if pc.tls is not None else None
        self.dialer = Dialer(config)
        # new cluster connections go to the nodes the control connection found, each proxy
        # instance starting at another one
        self.dialer.topology = self.ctx.clusters.get
        self.dialer.spread = topology.instances.index(me) if me in topology.instances else 0
        if pc.metrics_enabled:
            stats = self.ctx.stats
            self.dialer.node_stats = lambda cluster, address: stats.node(cluster.value, address)
            self.dialer.on_failure = lambda cluster: stats.failed_connections.__setitem__(
                cluster.value, stats.failed_connections[cluster.value] + 1)
        #: connections to replicas, shared by the client connections of one login
        self.links = NodeLinks(self.dialer, topology=self.ctx.clusters.get,
                               stats=self.ctx.stats if pc.metrics_enabled else None) if pc.token_aware else None
        self.credentials = {Cluster.ORIGIN: config.origin.credentials,
                            Cluster.TARGET: config.target.credentials}
        self.sessions: set[ClientSession] = set()
        #: client connections handed to this plane and not yet closed
        self.connections = 0
        self._accepted = 0  # connections served, ever: their ids
        self.on_connection_ended = on_connection_ended
        self._tick_task: asyncio.Task | None = None

    @property
    def stats(self):
        return self.ctx.stats

    @property
    def routing(self) -> Routing:
        return self.ctx.routing

    def set_routing(self, routing: Routing) -> None:
        """Requests that arrive from now on are routed by ``routing``; entering async reads
        (again) opens a new window of async-read counters."""
        old = self.ctx.routing
        if routing != old:
            log.debug("routing: %s -> %s", old, routing)
        if routing.read_mode is ReadMode.DUAL_ASYNC and old.read_mode is not ReadMode.DUAL_ASYNC:
            self.ctx.stats.reset_async()
        self.ctx.routing = routing

    def _record(self, record: dict, done: Callable[[BaseException | None], None] | None) -> None:
        """Keep a divergence record durably, off the event loop; ``done`` runs on the loop."""
        if self._divergences is None:
            self._divergences = DivergenceLog(self.config.state_dir).writer(self.name)
        if done is None:
            self._divergences.append(record)
            return
        loop = asyncio.get_running_loop()
        self._divergences.append(record, lambda error: loop.call_soon_threadsafe(done, error))

    def start(self) -> None:
        self._tick_task = asyncio.ensure_future(self._tick_forever())

    # -- connections -------------------------------------------------------------------
    def adopt(self, sock: socket.socket) -> None:
        """Serve an accepted client connection (over TLS when proxy.tls is set)."""
        self.connections += 1
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop = asyncio.get_running_loop()
        serve = self._serve_tls(sock) if self._tls is not None else \
            loop.connect_accepted_socket(self._protocol, sock)
        task = loop.create_task(serve)
        task.add_done_callback(self._adopted)

    async def _serve_tls(self, sock: socket.socket) -> None:
        """TLS, unless the client speaks plaintext CQL: then it is told, and closed."""
        loop = asyncio.get_running_loop()
        peer = _peer(sock)
        readable = loop.create_future()
        loop.add_reader(sock.fileno(), lambda: readable.done() or readable.set_result(None))
        try:
            await asyncio.wait_for(readable, TLS_HANDSHAKE_TIMEOUT)
        finally:
            loop.remove_reader(sock.fileno())
        first = sock.recv(1, socket.MSG_PEEK)
        if first and first[0] & 0x7F in (3, 4, 5):  # a CQL request header, not a TLS record
            log.warning("client %s sent plaintext CQL to this TLS port (proxy.tls); told to use TLS", peer)
            await loop.connect_accepted_socket(lambda: Refusal(
                ErrorCode.PROTOCOL_ERROR, "zdm proxy: this port requires TLS (proxy.tls is set); "
                "connect with TLS, trusting the proxy's CA"), sock)
            self._connection_ended()
            return
        try:
            await loop.connect_accepted_socket(self._protocol, sock, ssl=self._tls,
                                               ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, OSError, asyncio.TimeoutError) as exc:
            failure = classify(exc)
            log.warning("TLS with client %s failed: %s (%s)", peer,
                        failure.value if failure is not None else type(exc).__name__, short_error(exc))
            sock.close()
            self._connection_ended()

    def _adopted(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.info("client connection lost before it was served: %s", task.exception())
        self._connection_ended()

    def _protocol(self) -> ClientConnection:
        return ClientConnection(self._new_session, max_frame_bytes=self.config.proxy.max_frame_bytes)

    def _new_session(self, client: ClientConnection) -> None:
        self._accepted += 1
        session = ClientSession(client, ctx=self.ctx, dialer=self.dialer, credentials=self.credentials,
                                on_closed=self._session_closed,
                                forward_to_origin=self.config.proxy.forward_client_credentials_to_origin,
                                conn_id=f"{self.name.rsplit('.', 1)[-1]}-{self._accepted}",
                                links=self.links)
        self.sessions.add(session)
        self.ctx.stats.client_connections += 1

    def _session_closed(self, session: ClientSession) -> None:
        self.sessions.discard(session)
        self._connection_ended()

    def _connection_ended(self) -> None:
        self.connections -= 1
        if self.on_connection_ended is not None:
            self.on_connection_ended()

    def snapshot(self) -> dict:
        """The counters, and this plane's gauges: client connections, prepared statements
        cached, and its connections to each cluster node."""
        nodes: dict[str, dict[str, int]] = {"origin": {}, "target": {}}
        for session in self.sessions:
            for cluster, backend in session.backends.items():
                if not backend.closed:
                    name = f"{backend.address[0]}:{backend.address[1]}"
                    nodes[cluster.value][name] = nodes[cluster.value].get(name, 0) + 1
        for backend in self.links.backends() if self.links is not None else ():
            name = f"{backend.address[0]}:{backend.address[1]}"
            nodes[backend.cluster.value][name] = nodes[backend.cluster.value].get(name, 0) + 1
        return {**self.ctx.stats.snapshot(),
                "gauges": {"client_connections": self.connections, "pscache_entries": len(self.ctx.prepared),
                           "connections": nodes}}

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self.sessions)

    async def drain(self, timeout: float) -> None:
        """Answer new requests OVERLOADED, wait (up to ``timeout``) for those in flight, then
        close every client connection."""
        self.ctx.draining = True
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for session in list(self.sessions):
            session.client.close()
        if self._tick_task is not None:
            self._tick_task.cancel()
        while self.sessions and time.monotonic() < deadline + 2:
            await asyncio.sleep(0.01)  # connection_lost of each closed client
        if self._divergences is not None:
            await asyncio.to_thread(self._divergences.close)

    # -- the tick --------------------------------------------------------------------------
    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                self.tick(time.monotonic())
            except Exception:  # noqa: BLE001 - the tick must survive anything
                log.exception("proxy tick failed")

    def tick(self, now: float) -> None:
        interval = self.config.proxy.heartbeat_interval_s
        stats = self.ctx.stats
        for session in self.sessions:
            for backend in session.backends.values():
                stats.heartbeats += keep_alive(backend, now, interval)
            for waiting in session.moving.values():  # requests waiting for a new connection
                waiting.sweep(now)
        if self.links is not None:
            for backend in list(self.links.backends()):
                stats.heartbeats += keep_alive(backend, now, interval)


def keep_alive(backend: BackendConnection, now: float, interval: float) -> int:
    """Fail overdue requests on ``backend``; send a heartbeat (OPTIONS) if it was idle for
    ``interval`` seconds.  Returns the number of heartbeats sent (0 or 1)."""
    backend.sweep(now)
    if backend.closed or backend.in_handshake or now - backend.last_activity <= interval:
        return 0
    backend.send(backend.version, 0, Opcode.OPTIONS, b"", _heartbeat_answered(backend))
    return 1


def _heartbeat_answered(backend: BackendConnection):
    def done(outcome: Outcome) -> None:
        if not isinstance(outcome, Frame):  # no answer: the connection is dead; drop it
            log.warning("heartbeat on %s failed (%s); closing it", backend.name, outcome.message)
            backend.close()
    return done
