"""The proxy server: the listener, cluster connections, shared state, live routing, shutdown.

Theory of operation: :meth:`ProxyServer.start` first talks to both clusters over
control connections (proving them reachable, learning which require a login, and
reading origin's ``system.local`` for the virtual topology), then listens.  One
periodic tick fails overdue requests, sends heartbeats (OPTIONS) on idle cluster
connections, picks up routing changes from the state directory (applying them to
new requests only) and publishes this instance's health and async-read counters
there.  :meth:`ProxyServer.shutdown` stops accepting, answers new requests with
OVERLOADED, waits for in-flight requests to drain, then closes everything.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging
import os
import socket
import time
from dataclasses import dataclass, field

from zdm.config import ClusterConfig, Config, parse_host_port
from zdm.cql import messages as m
from zdm.cql.constants import Opcode, ResultKind
from zdm.cql.frame import Frame
from zdm.cql.types import deserialize
from zdm.errors import ZdmError
from zdm.phases.model import Cluster, Phase, Routing, routing_for
from zdm.proxy.connection import BackendConnection, ClientConnection, Outcome
from zdm.proxy.prepared import PreparedCache
from zdm.proxy.session import ClientSession
from zdm.proxy.topology import CLUSTER_FACTS, Instance, VirtualTopology

log = logging.getLogger("zdm.proxy")

TICK_SECONDS = 0.5
CONTROL_VERSION = 4  # the proxy's own requests; every supported cluster speaks v4


class ProxyError(ZdmError):
    """The proxy cannot start or run."""


@dataclass
class ProxyStats:
    client_connections: int = 0
    reprepares: int = 0
    heartbeats: int = 0
    async_requests: int = 0
    async_errors: int = 0
    async_mismatches: int = 0
    async_since: str = field(default_factory=lambda: _utc_now())

    def compare_async_read(self, primary: Outcome, secondary: Outcome, version: int) -> None:
        self.async_requests += 1
        p_ok = isinstance(primary, Frame) and primary.opcode == Opcode.RESULT
        s_ok = isinstance(secondary, Frame) and secondary.opcode == Opcode.RESULT
        if not p_ok:
            return
        if not s_ok:
            self.async_errors += 1
            return
        try:
            same = _rows(primary, version) == _rows(secondary, version)
        except Exception:  # noqa: BLE001 - an undecodable answer counts as a mismatch
            same = False
        if not same:
            self.async_mismatches += 1

    def async_reads(self) -> dict:
        return {"requests": self.async_requests, "errors": self.async_errors,
                "mismatches": self.async_mismatches, "since": self.async_since}


def _rows(frame: Frame, version: int):
    if m.result_kind(frame.body, flags=frame.flags) != ResultKind.ROWS:
        return m.result_kind(frame.body, flags=frame.flags)
    return m.decode_rows(frame.body, version, flags=frame.flags).rows


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class ProxyServer:
    def __init__(self, config: Config, *, state_store=None, name: str | None = None,
                 routing: Routing | None = None) -> None:
        self.config = config
        pc = config.proxy
        self.listen = (pc.listen_host, pc.listen_port)
        self.name = name or pc.name or f"{pc.listen_host}:{pc.listen_port}"
        self.store = state_store
        self.routing = routing or routing_for(Phase.PROXY)
        self.routing_revision: int | None = None
        self.prepared = PreparedCache()
        self.stats = ProxyStats()
        self.draining = False
        self.sessions: set[ClientSession] = set()
        self.supported_body = m.encode_supported({
            "CQL_VERSION": ["3.4.7"], "COMPRESSION": [],
            "PROTOCOL_VERSIONS": ["3/v3", "4/v4", "5/v5"]})
        self.requires_auth: dict[Cluster, bool] = {}
        self.topology: VirtualTopology | None = None
        self.me: Instance | None = None
        self._round_robin = {c: itertools.cycle(self._cluster(c).endpoints()) for c in Cluster}
        self._server: asyncio.base_events.Server | None = None
        self._tick_task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._state_stamp = None
        self._control: dict[Cluster, BackendConnection] = {}
        self._reconnecting: set[Cluster] = set()

    def _cluster(self, cluster: Cluster) -> ClusterConfig:
        return self.config.origin if cluster is Cluster.ORIGIN else self.config.target

    # -- start / stop ------------------------------------------------------------------
    async def start(self) -> None:
        facts = await self._probe_clusters()
        instances = [Instance(*parse_host_port(i)) for i in self.config.proxy.instances] or \
            [Instance(*self.listen)]
        self.me = Instance(*self.listen)
        if self.me not in instances:
            raise ProxyError(f"this proxy listens on {self.listen[0]}:{self.listen[1]}, which is not "
                             f"among proxy.instances ({', '.join(self.config.proxy.instances)})",
                             hint="add it to proxy.instances in zdm.yaml, or fix proxy.listen_port")
        self.topology = VirtualTopology(instances, facts)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: ClientConnection(self._new_session, max_frame_bytes=self.config.proxy.max_frame_bytes),
                self.listen[0], self.listen[1], reuse_address=True)
        except OSError as exc:
            raise ProxyError(f"cannot listen on {self.listen[0]}:{self.listen[1]}: {exc.strerror}",
                             hint="another process uses that port: stop it or set proxy.listen_port") from None
        if self.store is not None:
            self.store.register_proxy(self.name, f"{self.listen[0]}:{self.listen[1]}")
            self._apply_state(initial=True)
        self._tick_task = asyncio.ensure_future(self._tick_forever())
        log.info("proxy %s listening on %s:%s", self.name, *self.listen)

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    async def shutdown(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish, answer new ones OVERLOADED, close."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + drain_timeout
        while any(s.in_flight > 0 for s in self.sessions) and time.monotonic() < deadline:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
        for session in list(self.sessions):
            session.client.close()
        for backend in self._control.values():
            backend.close()
        if self._tick_task is not None:
            self._tick_task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
        if self.store is not None:
            # a stopped proxy must not hold up routing changes; `zdm proxy start` registers again
            self.store.deregister_proxy(self.name)

    # -- clusters --------------------------------------------------------------------------
    async def _connect(self, cluster: Cluster, on_event=None, on_lost=None) -> BackendConnection:
        cfg = self._cluster(cluster)
        address = next(self._round_robin[cluster])
        loop = asyncio.get_running_loop()
        backend = BackendConnection(cluster, address, max_frame_bytes=self.config.proxy.max_frame_bytes,
                                    request_timeout=self.config.proxy.request_timeout_s,
                                    on_event=on_event, on_lost=on_lost)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: backend, *address), cfg.connect_timeout_s)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ProxyError(f"{cluster.value} ({address[0]}:{address[1]}) is not reachable: "
                             f"{exc or 'timed out'}",
                             hint=f"check {cluster.value}.contact_points / {cluster.value}.port") from None
        sock = backend.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return backend

    async def open_backend(self, cluster: Cluster, session: ClientSession) -> BackendConnection:
        on_event = session.event_received if cluster is Cluster.ORIGIN else None
        return await self._connect(cluster, on_event=on_event, on_lost=session.backend_lost)

    async def login(self, backend: BackendConnection, version: int) -> str | None:
        """Log ``backend`` in with the configured credentials; the problem, or None."""
        creds = self._cluster(backend.cluster).credentials
        name = backend.cluster.value
        if creds is None:
            return (f"zdm proxy: {name} requires a login and zdm.yaml has no {name}.username/"
                    f"password for the proxy to use")
        answer = await backend.request(version, Opcode.AUTH_RESPONSE,
                                       m.encode_auth_token(m.plain_sasl_token(*creds)))
        while isinstance(answer, Frame) and answer.opcode == Opcode.AUTH_CHALLENGE:
            answer = await backend.request(version, Opcode.AUTH_RESPONSE,
                                           m.encode_auth_token(m.plain_sasl_token(*creds)))
        if isinstance(answer, Frame) and answer.opcode == Opcode.AUTH_SUCCESS:
            return None
        if isinstance(answer, Frame) and answer.opcode == Opcode.ERROR:
            info = m.decode_error(answer.body, flags=answer.flags)
            return f"zdm proxy: {name} refused the proxy's configured credentials: {info.message}"
        return f"zdm proxy: {name}: {getattr(answer, 'message', answer)}"

    async def _probe_clusters(self) -> dict:
        """Control connections: reachability, auth requirements, origin's cluster facts."""
        for cluster in Cluster:
            await self._open_control(cluster)
        return await self._read_local(self._control[Cluster.ORIGIN])

    async def _open_control(self, cluster: Cluster) -> None:
        backend = await self._connect(cluster)
        self._control[cluster] = backend
        answer = await backend.request(CONTROL_VERSION, Opcode.STARTUP,
                                       m.encode_startup({"CQL_VERSION": "3.0.0"}))
        backend.in_handshake = False
        if not isinstance(answer, Frame) or answer.opcode == Opcode.ERROR:
            detail = m.decode_error(answer.body).message if isinstance(answer, Frame) else answer.message
            raise ProxyError(f"{cluster.value} refused the proxy's connection: {detail}")
        self.requires_auth[cluster] = answer.opcode == Opcode.AUTHENTICATE
        if self.requires_auth[cluster]:
            problem = await self.login(backend, CONTROL_VERSION)
            if problem is not None and cluster is Cluster.ORIGIN:
                raise ProxyError(problem.removeprefix("zdm proxy: "),
                                 hint=f"set {cluster.value}.username and {cluster.value}.password "
                                      "(or password_env) in zdm.yaml")
            # target: clients bring target's credentials; the proxy needs none of its own

    async def _reconnect_control(self, cluster: Cluster) -> None:
        try:
            await self._open_control(cluster)
            log.info("control connection to %s restored", cluster.value)
        except Exception as exc:  # noqa: BLE001 - retried on a later tick
            log.warning("control connection to %s: %s", cluster.value, exc)
        finally:
            self._reconnecting.discard(cluster)

    async def _read_local(self, backend: BackendConnection) -> dict:
        answer = await backend.request(CONTROL_VERSION, Opcode.QUERY,
                                       m.encode_query("SELECT * FROM system.local WHERE key='local'",
                                                      version=CONTROL_VERSION))
        if not isinstance(answer, Frame) or answer.opcode != Opcode.RESULT:
            raise ProxyError("cannot read origin's system.local: "
                             f"{m.decode_error(answer.body).message if isinstance(answer, Frame) else answer.message}")
        rows = m.decode_rows(answer.body, CONTROL_VERSION)
        if not rows.rows:
            raise ProxyError("origin's system.local is empty")
        row = rows.rows[0]
        out = {}
        for spec, raw in zip(rows.columns, row):
            if spec.name in CLUSTER_FACTS:
                out[spec.name] = deserialize(spec.type, raw)
        return out

    # -- sessions ------------------------------------------------------------------------
    def _new_session(self, client: ClientConnection) -> ClientSession:
        session = ClientSession(self, client)
        self.sessions.add(session)
        self.stats.client_connections += 1
        return session

    def session_closed(self, session: ClientSession) -> None:
        self.sessions.discard(session)
        self._idle.set()

    def session_idle(self, session: ClientSession) -> None:
        self._idle.set()

    def topology_answer(self, table: str, query: str) -> bytes:
        return self.topology.answer(table, query, self.me)

    # -- the periodic tick -----------------------------------------------------------------
    async def _tick_forever(self) -> None:
        last_publish = 0.0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            try:
                self._tick(now)
                if now - last_publish >= 1.0:
                    self._apply_state()
                    self._publish_health(running=True)
                    last_publish = now
            except Exception:  # noqa: BLE001 - the tick must survive anything
                log.exception("proxy tick failed")

    def _tick(self, now: float) -> None:
        for cluster, control in self._control.items():
            if control.closed and cluster not in self._reconnecting and not self.draining:
                self._reconnecting.add(cluster)
                asyncio.ensure_future(self._reconnect_control(cluster))
        heartbeat = self.config.proxy.heartbeat_interval_s
        backends = [b for s in self.sessions for b in s.backends.values()]
        backends.extend(self._control.values())
        for backend in backends:
            backend.sweep(now)
            if not backend.closed and not backend.in_handshake and now - backend.last_activity > heartbeat:
                self.stats.heartbeats += 1
                backend.send(backend.version, 0, Opcode.OPTIONS, b"", _heartbeat_answered(backend))

    def _apply_state(self, initial: bool = False) -> None:
        """Pick up a routing change from the state directory; acknowledge it."""
        if self.store is None:
            return
        stamp = self.store.state_stamp()
        if stamp == self._state_stamp and not initial:
            return
        self._state_stamp = stamp
        state = self.store.load()
        if state.routing != self.routing:
            log.info("routing: %s -> %s (phase %s)", self.routing, state.routing, state.phase.label)
        self.routing = state.routing
        self.routing_revision = state.routing_status.revision
        self._registered(self.store.ack_routing, self.name, self.routing_revision)

    def _registered(self, write, *args, **fields) -> None:
        """A write to this proxy's record; re-registers if an operator deregistered it while running."""
        from zdm.phases import UnknownProxy

        try:
            write(*args, **fields)
        except UnknownProxy:
            log.warning("proxy %s was deregistered while running; registering it again", self.name)
            self.store.register_proxy(self.name, f"{self.listen[0]}:{self.listen[1]}")
            write(*args, **fields)

    def _publish_health(self, *, running: bool) -> None:
        if self.store is None:
            return
        connected = {c: not b.closed for c, b in self._control.items()}
        self._registered(
            self.store.update_proxy, self.name, address=f"{self.listen[0]}:{self.listen[1]}", pid=os.getpid(),
            heartbeat_at=_utc_now() if running else None, running=running,
            origin_connected=connected.get(Cluster.ORIGIN, False),
            target_connected=connected.get(Cluster.TARGET, False),
            async_reads=self.stats.async_reads(),
            client_connections=len(self.sessions))


def _heartbeat_answered(backend: BackendConnection):
    def done(outcome: Outcome) -> None:
        if not isinstance(outcome, Frame):  # no answer: the connection is dead; drop it
            log.warning("heartbeat on %s failed (%s); closing it", backend.name, outcome.message)
            backend.close()
    return done


async def serve(config: Config, *, store=None, name: str | None = None, ready=None) -> None:
    """Run a proxy until SIGTERM/SIGINT, then shut down gracefully."""
    import signal

    server = ProxyServer(config, state_store=store, name=name)
    await server.start()
    if ready is not None:
        ready(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining in-flight requests")
    await server.shutdown()


def run(config: Config, **kwargs) -> None:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        uvloop = None
    if uvloop is not None:
        uvloop.run(serve(config, **kwargs))
    else:
        asyncio.run(serve(config, **kwargs))
