"""One client connection: the handshake, then the pure request handler.

Theory of operation: a :class:`ClientSession` starts with nothing but the client
connection, so a client that connects and never speaks costs a few kilobytes.  Its
STARTUP opens one connection to origin and one to target (the asynchronous part:
:meth:`ClientSession._startup`), replays the STARTUP to both and settles the logins
(:mod:`~zdm.proxy.auth`).  Once both clusters are ready the session hands the
connection to a :class:`~zdm.proxy.handler.RequestHandler`, which never awaits
anything; from then on the client's frames go straight to it.

Invariants:

* A STARTUP whose body cannot be decoded is refused with a PROTOCOL_ERROR at once,
  before anything asynchronous starts.  So is one asking for a compression the proxy
  cannot give (an unknown algorithm, Snappy on v5), with Cassandra's wording; as on a
  node, the connection stays open for another STARTUP.
* Compression is per connection: the client's leg uses what its STARTUP asked for; each
  cluster's leg uses the same algorithm when that cluster offers it (its SUPPORTED
  answer, learned by the control connections) and none otherwise.  The proxy inflates
  what it reads and compresses what it writes on each leg (:mod:`~zdm.proxy.connection`).
* Every handshake request is answered (``in_flight`` counts them, so a drain that
  meets a handshake waits only for it), and every task's exception is retrieved.
* Closing either side closes the rest: a cluster connection opened after the client
  left is closed as soon as it is open, and nothing keeps a closed session alive.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Mapping

from zdm.cql import messages as m
from zdm.cql.compression import Codec, negotiate
from zdm.cql.constants import SUPPORTED_VERSIONS, ErrorCode, Opcode
from zdm.cql.errors import ProtocolError, UnsupportedVersion
from zdm.cql.frame import Frame, encode_unsupported_version
from zdm import logs
from zdm.errors import ZdmError
from zdm.phases.model import Cluster
from zdm.proxy.auth import client_credentials_go_to, login
from zdm.proxy.connection import BackendConnection, ClientConnection
from zdm.proxy.dialer import Dialer
from zdm.proxy.handler import Context, RequestHandler, error_frame, failure_frame
from zdm.proxy.reconnect import Waiting, handshake
from zdm.proxy.token_aware import NodeLinks, SessionReplicas

log = logging.getLogger("zdm.proxy")

#: new connections tried when a cluster connection is lost past the handshake
MOVE_ATTEMPTS = 3


class ClientSession:
    __slots__ = ("client", "ctx", "dialer", "credentials", "forward_to_origin", "on_closed", "version",
                 "backends", "auth_cluster", "handler", "closed", "_handshaking", "_task", "who", "codec",
                 "startup", "client_auth", "login_cluster", "moving", "links", "replicas")

    def __init__(self, client: ClientConnection, *, ctx: Context, dialer: Dialer,
                 credentials: Mapping[Cluster, tuple[str, str] | None],
                 on_closed: Callable[["ClientSession"], None], forward_to_origin: bool = False,
                 conn_id: str = "?", links: NodeLinks | None = None) -> None:
        self.client = client
        self.who = logs.client(conn_id, client.peer)  # what every log line about it carries
        self.ctx = ctx
        self.dialer = dialer
        self.credentials = credentials  # the proxy's own, per cluster
        #: proxy.forward_client_credentials_to_origin: when both need a login, origin gets the client's
        self.forward_to_origin = forward_to_origin
        self.on_closed = on_closed
        self.version: int | None = None
        self.codec: Codec | None = None  # the client's compression, once its STARTUP asked
        #: what a new cluster connection replays (zdm.proxy.reconnect): the STARTUP's options
        #: (less COMPRESSION), and the client's AUTH_RESPONSEs to the cluster that took its login
        self.startup: dict[str, str] = {}
        self.client_auth: list[bytes] = []
        self.login_cluster: Cluster | None = None
        #: the clusters whose lost connection is being replaced, and the requests waiting for it
        self.moving: dict[Cluster, Waiting] = {}
        self.backends: dict[Cluster, BackendConnection] = {}
        self.auth_cluster: Cluster | None = None  # set while the client's login is under way
        self.handler: RequestHandler | None = None
        #: the worker's node links (token-aware forwarding), and this connection's share of them
        self.links = links
        self.replicas: SessionReplicas | None = None
        self.closed = False
        self._handshaking = 0  # handshake requests not yet answered
        self._task: asyncio.Task | None = None
        client.on_frame = self._handshake_frame
        client.on_protocol_error = self.protocol_error
        client.on_lost = self.client_closed

    @property
    def in_flight(self) -> int:
        return self._handshaking + (self.handler.in_flight if self.handler is not None else 0)

    # -- lifecycle -----------------------------------------------------------------
    def client_closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._close_backends()
        self.handler = None
        if self.replicas is not None:
            self.replicas.close()
            self.replicas = None
        self.on_closed(self)

    def _backend_lost(self, backend: BackendConnection, reason: str) -> None:
        # the requests in flight on it were already failed with `reason`
        if self.closed or self.backends.get(backend.cluster) is not backend:
            return  # closed by the session itself, or replaced already
        self.dialer.lost(backend)
        if self.handler is not None and not self.ctx.draining:
            # past the handshake: move to another node, the client stays connected
            self._move(backend.cluster, reason)
            return
        log.info("closing the client connection: %s", reason, extra=self.who)
        asyncio.get_running_loop().call_soon(self.client.close)
        self._close_backends()

    def _move(self, cluster: Cluster, reason: str) -> None:
        log.info("%s; moving to another %s node", reason, cluster.value, extra=self.who)
        waiting = self.moving[cluster] = Waiting(cluster, self.dialer.config.proxy.request_timeout_s)
        self.handler.rebind(cluster, waiting.send)
        task = asyncio.ensure_future(self._moved(cluster, self.backends[cluster], waiting))
        task.add_done_callback(_retrieved)

    async def _moved(self, cluster: Cluster, lost: BackendConnection, waiting: Waiting) -> None:
        handler = self.handler
        avoid, backend, problem = lost.endpoint, None, None
        for _ in range(MOVE_ATTEMPTS):  # a node may fail in its turn while it is being set up
            try:
                backend = await self.dialer.dial(
                    cluster, avoid=avoid, on_lost=self._backend_lost,
                    on_event=self.event_received if cluster is Cluster.ORIGIN else None)
            except ZdmError as exc:  # the dial tried every node
                backend, problem = None, exc.message
                break
            backend.codec = lost.codec
            if self.closed:
                break
            problem = await handshake(
                backend, self.version, self.startup, credentials=self.credentials.get(cluster),
                client_auth=self.client_auth if cluster is self.login_cluster else [],
                keyspace=handler.keyspace, register=handler.registered if cluster is Cluster.ORIGIN else None)
            if problem is None:
                break
            backend.close()  # not the session's yet: its loss is this loop's to handle
            self.dialer.lost(backend)
            avoid, backend = backend.endpoint, None
        if self.closed:
            if backend is not None:
                backend.close()
            waiting.fail("the client connection closed")
            return
        if backend is None:
            log.warning("no other %s node could take the client connection (%s); closing it",
                        cluster.value, problem, extra=self.who)
            waiting.fail(f"{cluster.value}: {problem}")
            self.client.close()
            self._close_backends()
            return
        self.backends[cluster] = backend
        log.info("moved to %s %s:%s", cluster.value, *backend.address, extra=self.who)
        del self.moving[cluster]
        send = backend.sender(self.version)
        handler.rebind(cluster, send, node=f"{backend.address[0]}:{backend.address[1]}")
        waiting.release(send)

    def _close_backends(self) -> None:
        for backend in self.backends.values():
            backend.close()

    def protocol_error(self, exc: ProtocolError) -> None:
        """Malformed input from the client: answer with the error, then close this client only."""
        version = exc.version if exc.version in (3, 4, 5) else (self.version or 4)
        if isinstance(exc, UnsupportedVersion) and exc.version == 0x16 and self.version is None:
            # 0x16 is a TLS handshake record: a TLS client on this plaintext port
            log.warning("a TLS client connected to this plaintext port; set proxy.tls to serve TLS, "
                        "or connect without TLS", extra=self.who)
            self.client.close()
            return
        if isinstance(exc, UnsupportedVersion):
            # normal negotiation: drivers try their newest version first, then downgrade
            supported = tuple(v for v in SUPPORTED_VERSIONS if v <= self.ctx.max_version)
            self.client.write(encode_unsupported_version(exc.version, exc.stream, supported))
            log.info("%s", exc.message, extra=self.who)
        else:
            self.client.reply(exc.stream or 0, error_frame(version, exc.stream or 0, exc.code,
                                                           f"zdm proxy: {exc.message}"))
            log.warning("%s; closing the client connection", exc.message, extra=self.who)
        self.client.close()

    def event_received(self, frame: Frame) -> None:
        """EVENT from origin: schema changes pass; topology and status changes describe
        origin's nodes, which the client never sees, so they are dropped."""
        try:
            info = m.decode_event(frame.body, flags=frame.flags)
        except ProtocolError:
            return
        if info.event_type == "SCHEMA_CHANGE" and self.handler is not None:
            self.client.reply(-1, frame)

    # -- the handshake ---------------------------------------------------------------
    def _handshake_frame(self, frame: Frame) -> None:
        op = frame.opcode
        if frame.version > self.ctx.max_version:  # a cluster behind the proxy lacks it
            raise UnsupportedVersion(frame.version, stream=frame.stream,
                                     supported=tuple(v for v in SUPPORTED_VERSIONS
                                                     if v <= self.ctx.max_version))
        if op == Opcode.OPTIONS:
            self.client.reply(frame.stream, Frame(frame.version, True, 0, frame.stream,
                                                  Opcode.SUPPORTED, self.ctx.supported_bodies[frame.version]))
        elif self.ctx.draining:
            self.client.reply(frame.stream, error_frame(
                frame.version, frame.stream, ErrorCode.OVERLOADED,
                "zdm proxy is shutting down; retry on another node"))
        elif self._task is not None and not self._task.done():
            raise ProtocolError(f"{getattr(op, 'name', op)} while the handshake is under way",
                                stream=frame.stream, version=frame.version)
        elif op == Opcode.STARTUP and self.version is None:
            try:
                options = m.decode_startup(frame.body)
            except ProtocolError as exc:
                raise ProtocolError(f"malformed STARTUP: {exc.message}", stream=frame.stream,
                                    version=frame.version) from None
            try:
                codec = negotiate(options.pop("COMPRESSION", None), frame.version)
            except ProtocolError as exc:  # answered as a node does: the client may try again
                self.client.reply(frame.stream, error_frame(frame.version, frame.stream, exc.code,
                                                            exc.message))
                log.warning("client asked for compression the proxy cannot give: %s", exc.message,
                            extra=self.who)
                return
            self.version, self.codec, self.startup = frame.version, codec, dict(options)
            self._start(self._startup(frame, options, codec))
        elif op == Opcode.AUTH_RESPONSE and self.auth_cluster is not None:
            self._start(self._auth_response(frame))
        else:
            raise ProtocolError(f"{getattr(op, 'name', op)} before the handshake completed",
                                stream=frame.stream, version=frame.version)

    def _start(self, coro) -> None:
        self._handshaking += 1
        self._task = asyncio.ensure_future(coro)
        self._task.add_done_callback(self._handshake_done)

    def _handshake_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()  # retrieved, always
        if exc is not None:
            log.error("handshake failed: %r", exc, extra=self.who)
            self._handshaking = 0
            self.client.close()

    def _answer(self, frame: Frame, answer: Frame) -> None:
        self._handshaking -= 1
        self.client.reply(frame.stream, answer)

    async def _startup(self, frame: Frame, options: dict[str, str], codec: Codec | None) -> None:
        version = frame.version
        try:
            await self._open_backends()
        except ZdmError as exc:
            self._answer(frame, error_frame(version, frame.stream, ErrorCode.SERVER_ERROR,
                                            f"zdm proxy: {exc.message}"))
            self.client.close()
            return
        if self.closed:
            return
        requests = []
        for cluster in Cluster:
            backend = self.backends[cluster]
            # each cluster's leg is compressed only with what that cluster offers
            if codec is not None and codec.name in self.ctx.compression[cluster]:
                backend.codec = codec
                body = m.encode_startup({**options, "COMPRESSION": codec.name})
            else:
                body = m.encode_startup(options)
            requests.append(backend.request(version, Opcode.STARTUP, body))
        answers = await asyncio.gather(*requests)
        if self.closed:
            return
        by_cluster = dict(zip(Cluster, answers))
        for cluster, answer in by_cluster.items():
            if not isinstance(answer, Frame) or answer.opcode == Opcode.ERROR:
                self._answer(frame, answer if isinstance(answer, Frame) else error_frame(
                    version, frame.stream, ErrorCode.SERVER_ERROR,
                    f"zdm proxy: {cluster.value}: {answer.message}"))
                if isinstance(answer, Frame) and _is_version_error(answer):
                    self.version = None  # the driver downgrades and retries
                return
        for backend in self.backends.values():
            backend.in_handshake = False
            backend.version = version
            backend.start_compression()
        needs_login = {c for c, a in by_cluster.items() if a.opcode == Opcode.AUTHENTICATE}
        if not needs_login:
            self._finish(frame, Opcode.READY, b"")
            return
        self.auth_cluster = client_credentials_go_to(needs_login, forward_to_origin=self.forward_to_origin)
        self.login_cluster = self.auth_cluster
        for cluster in needs_login - {self.auth_cluster}:
            problem = await login(self.backends[cluster], self.credentials.get(cluster), version,
                                  m.decode_authenticate(by_cluster[cluster].body))
            if problem is not None:
                self._answer(frame, error_frame(version, frame.stream, ErrorCode.BAD_CREDENTIALS,
                                                problem))
                return
        authenticator = m.decode_authenticate(by_cluster[self.auth_cluster].body)
        self._finish(frame, Opcode.AUTHENTICATE, m.encode_authenticate(authenticator), ready=False)

    async def _open_backends(self) -> None:
        """Connect to both clusters; raises ZdmError naming the one that is unreachable."""
        results = await asyncio.gather(
            self.dialer.dial(Cluster.ORIGIN, on_event=self.event_received, on_lost=self._backend_lost),
            self.dialer.dial(Cluster.TARGET, on_lost=self._backend_lost),
            return_exceptions=True)
        for cluster, result in zip(Cluster, results):
            if isinstance(result, BackendConnection):
                self.backends[cluster] = result
        problems = [r for r in results if isinstance(r, BaseException)]
        if self.closed or problems:
            self._close_backends()
        if problems:
            raise problems[0]

    def _finish(self, frame: Frame, opcode: int, body: bytes, *, ready: bool = True) -> None:
        self._answer(frame, Frame(frame.version, True, 0, frame.stream, opcode, body))
        # the answer leaves plain, as drivers expect it; what follows may be compressed
        if frame.version >= 5:
            self.client.start_segments(self.codec)
        elif self.codec is not None:
            self.client.start_compression(self.codec)
        if ready:
            self._ready()

    async def _auth_response(self, frame: Frame) -> None:
        self.client_auth.append(frame.body)  # replayed on a new connection to that cluster
        answer = await self.backends[self.auth_cluster].request(frame.version, Opcode.AUTH_RESPONSE,
                                                                frame.body)
        if self.closed:
            return
        if isinstance(answer, Frame) and answer.opcode == Opcode.AUTH_SUCCESS:
            self._answer(frame, answer)
            self.auth_cluster = None
            self._ready()
            return
        # an AUTH_CHALLENGE goes back to the client, which answers with another AUTH_RESPONSE
        self._answer(frame, failure_frame(frame.version, frame.stream, answer))

    def _ready(self) -> None:
        """The handshake is done: from now on the request handler gets every frame."""
        version = self.version
        if self.links is not None and version >= 4:  # v3 PREPARED results name no key markers
            self.replicas = self.links.join(self)
        handler = RequestHandler(self.ctx, version,
                                 {c: b.sender(version) for c, b in self.backends.items()},
                                 self.client.reply, who=self.who,
                                 nodes={c: f"{b.address[0]}:{b.address[1]}" for c, b in self.backends.items()},
                                 replicas=self.replicas)
        self.handler = handler
        self.client.on_frame = handler.frame_received


def _retrieved(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("moving a cluster connection failed: %r", task.exception())


def _is_version_error(answer: Frame) -> bool:
    info = m.decode_error(answer.body, flags=answer.flags)
    return info.code == ErrorCode.PROTOCOL_ERROR and "version" in info.message.lower()
