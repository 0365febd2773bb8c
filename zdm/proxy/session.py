"""One client's session through the proxy: handshake, routing, prepared ids, aggregation.

Theory of operation: a session owns one connection to origin and one to target,
opened when the client connects.  The client's STARTUP is replayed to both; the
proxy answers OPTIONS itself and the ``system.local`` / ``peers`` reads
(:mod:`~zdm.proxy.topology`).  After the handshake every request is classified
(:func:`~zdm.cql.classify.classify`, cached by query text) and sent where
:func:`~zdm.proxy.routing.decide_statement` says, with the routing captured when
the request arrives, so a routing change never moves a request in flight.

Credentials follow zdm-proxy's rules: when both clusters require a login, the
client presents *target's* credentials, which are replayed to target, and the
proxy logs into origin with the configured origin credentials; when only one
cluster requires a login, the client's credentials go to that one.

Writes sent to both clusters get one client-side timestamp (when the client sent
none), so both clusters store the same writetime.  Each request to a cluster
holds a stream id of that cluster's connection; answers come back through
callbacks into :class:`_Dual` (both clusters) or straight to the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from zdm.cql import messages as m
from zdm.cql.classify import StatementKind, classify
from zdm.cql.constants import CUSTOM_PAYLOAD, WITH_PAGING_STATE, ErrorCode, Opcode, ResultKind
from zdm.cql.errors import ProtocolError, UnsupportedVersion
from zdm.cql.frame import Frame, encode_unsupported_version
from zdm.phases.model import Cluster
from zdm.proxy import aggregate
from zdm.proxy.connection import BackendConnection, ClientConnection, Outcome
from zdm.proxy.prepared import PreparedEntry
from zdm.proxy.routing import Decision, Destination, decide_read, decide_statement, other

if TYPE_CHECKING:
    from zdm.proxy.server import ProxyServer

log = logging.getLogger("zdm.proxy")



def error_frame(version: int, stream: int, code: int, message: str, *,
                unprepared_id: bytes | None = None) -> Frame:
    body = m.encode_error(code, message, unprepared_id=unprepared_id)
    return Frame(version, True, 0, stream, Opcode.ERROR, body)


def _failure_frame(version: int, stream: int, outcome: Outcome) -> Frame:
    if isinstance(outcome, Frame):
        return outcome
    return error_frame(version, stream, ErrorCode.SERVER_ERROR, f"zdm proxy: {outcome.message}")


class _Dual:
    """A request sent to both clusters; answers the client once both outcomes are in."""

    __slots__ = ("session", "stream", "version", "primary", "outcomes", "on_success")

    def __init__(self, session: "ClientSession", stream: int, version: int, primary: Cluster,
                 on_success=None) -> None:
        self.session = session
        self.stream = stream
        self.version = version
        self.primary = primary
        self.outcomes: dict[Cluster, Outcome] = {}
        self.on_success = on_success

    def callback(self, cluster: Cluster):
        def done(outcome: Outcome) -> None:
            self.outcomes[cluster] = outcome
            if len(self.outcomes) == 2:
                self._complete()
        return done

    def _complete(self) -> None:
        primary = self.outcomes[self.primary]
        secondary = self.outcomes[other(self.primary)]
        chosen = aggregate.choose(primary, secondary)
        if self.on_success is not None and not aggregate.failed(primary) \
                and not aggregate.failed(secondary):
            chosen = self.on_success(self.outcomes) or chosen
        self.session.respond(self.stream, _failure_frame(self.version, self.stream, chosen))


class ClientSession:
    def __init__(self, server: "ProxyServer", client: ClientConnection) -> None:
        self.server = server
        self.client = client
        self.version: int | None = None
        self.ready = False
        self.keyspace: str | None = None
        self.backends: dict[Cluster, BackendConnection] = {}
        self.auth_cluster: Cluster | None = None
        self.in_flight = 0
        self.closed = False
        self._opening = asyncio.ensure_future(self._open_backends())

    # -- lifecycle -----------------------------------------------------------------
    async def _open_backends(self) -> str | None:
        """Connect to both clusters; the problem (told to the client at STARTUP), or None."""
        try:
            pairs = await asyncio.gather(*(self.server.open_backend(c, self) for c in Cluster))
        except Exception as exc:  # noqa: BLE001 - a cluster is unreachable
            return f"zdm proxy: {getattr(exc, 'message', exc)}"
        for cluster, backend in zip(Cluster, pairs):
            self.backends[cluster] = backend
        if self.closed:
            self._close_backends()
        return None

    def backend_lost(self, backend: BackendConnection, reason: str) -> None:
        # the driver reconnects; pending requests were already failed with `reason`
        log.info("closing client %s: %s", self.client.peer, reason)
        self.closed = True
        asyncio.get_running_loop().call_soon(self.client.close)
        self._close_backends()

    def client_closed(self) -> None:
        self.closed = True
        self.server.session_closed(self)
        if self._opening.done():
            self._close_backends()
        else:
            self._opening.cancel()  # a half-open cluster connection is closed by the cancel

    def _close_backends(self) -> None:
        for backend in self.backends.values():
            backend.close()

    def protocol_error(self, exc: ProtocolError) -> None:
        """Malformed input from the client: answer with the error, then close this client only."""
        version = exc.version if exc.version in (3, 4, 5) else (self.version or 4)
        if isinstance(exc, UnsupportedVersion):
            # normal negotiation: drivers try their newest version first, then downgrade
            self.client.write(encode_unsupported_version(exc.version, exc.stream))
            log.info("client %s: %s", self.client.peer, exc.message)
        else:
            frame = error_frame(version, exc.stream or 0, exc.code, f"zdm proxy: {exc.message}")
            self.client.write(frame.header(), frame.body)
            log.warning("client %s: %s; closing its connection", self.client.peer, exc.message)
        self.client.close()

    # -- replies ---------------------------------------------------------------------
    def respond(self, stream: int, frame: Frame) -> None:
        """Send ``frame`` to the client as the answer on ``stream``."""
        self.in_flight -= 1
        self.client.write(frame.header(stream), frame.body)
        if self.in_flight == 0 and self.server.draining:
            self.server.session_idle(self)

    def _reply_local(self, frame: Frame, opcode: int, body: bytes) -> None:
        self.in_flight += 1
        self.respond(frame.stream, Frame(frame.version, True, 0, frame.stream, opcode, body))

    def _error(self, frame: Frame, code: int, message: str, **kw) -> None:
        self.in_flight += 1
        self.respond(frame.stream, error_frame(frame.version, frame.stream, code, message, **kw))

    # -- dispatch --------------------------------------------------------------------
    def frame_received(self, frame: Frame) -> None:
        op = frame.opcode
        if op == Opcode.OPTIONS:
            self._reply_local(frame, Opcode.SUPPORTED, self.server.supported_body)
            return
        if self.server.draining:
            self._error(frame, ErrorCode.OVERLOADED, "zdm proxy is shutting down; retry on another node")
            return
        if not self.ready:
            self._handshake_frame(frame)
            return
        if frame.version != self.version:
            raise ProtocolError(f"frame of protocol v{frame.version} on a v{self.version} connection",
                                stream=frame.stream, version=self.version)
        if op == Opcode.QUERY:
            self._query(frame)
        elif op == Opcode.EXECUTE:
            self._execute(frame)
        elif op == Opcode.BATCH:
            self._batch(frame)
        elif op == Opcode.PREPARE:
            self._prepare(frame)
        elif op == Opcode.REGISTER:
            self._single(frame, frame.body, Cluster.ORIGIN)
        elif op == Opcode.STARTUP:
            raise ProtocolError("STARTUP sent twice on one connection", stream=frame.stream,
                                version=frame.version)
        else:
            raise ProtocolError(f"unexpected {getattr(op, 'name', op)} request", stream=frame.stream,
                                version=frame.version)

    # -- handshake ---------------------------------------------------------------------
    def _handshake_frame(self, frame: Frame) -> None:
        if frame.opcode == Opcode.STARTUP and self.version is None:
            self.version = frame.version
            self.in_flight += 1
            asyncio.ensure_future(self._startup(frame))
        elif frame.opcode == Opcode.AUTH_RESPONSE and self.auth_cluster is not None:
            self.in_flight += 1
            asyncio.ensure_future(self._auth_response(frame))
        else:
            raise ProtocolError(f"{getattr(frame.opcode, 'name', frame.opcode)} before the "
                                "handshake completed", stream=frame.stream, version=frame.version)

    async def _startup(self, frame: Frame) -> None:
        problem = await self._opening
        if problem is not None:
            self.respond(frame.stream, error_frame(frame.version, frame.stream, ErrorCode.SERVER_ERROR,
                                                   problem))
            self.client.close()
            return
        options = m.decode_startup(frame.body)
        options.pop("COMPRESSION", None)  # the proxy offers none
        body = m.encode_startup(options)
        answers = await asyncio.gather(*(self.backends[c].request(frame.version, Opcode.STARTUP, body)
                                         for c in Cluster))
        by_cluster = dict(zip(Cluster, answers))
        for cluster, answer in by_cluster.items():
            if not isinstance(answer, Frame) or answer.opcode == Opcode.ERROR:
                self.respond(frame.stream, self._startup_failure(frame, cluster, answer))
                if isinstance(answer, Frame) and self._is_version_error(answer):
                    self.version = None  # the driver downgrades and retries
                return
        needs_auth = {c for c, a in by_cluster.items() if a.opcode == Opcode.AUTHENTICATE}
        for backend in self.backends.values():
            backend.in_handshake = False
            backend.version = frame.version
        if not needs_auth:
            self._finish_handshake(frame, Opcode.READY, b"")
            return
        self.auth_cluster = Cluster.TARGET if len(needs_auth) == 2 else next(iter(needs_auth))
        for cluster in needs_auth - {self.auth_cluster}:
            problem = await self.server.login(self.backends[cluster], frame.version)
            if problem is not None:
                self.respond(frame.stream, error_frame(frame.version, frame.stream,
                                                       ErrorCode.BAD_CREDENTIALS, problem))
                return
        authenticator = m.decode_authenticate(by_cluster[self.auth_cluster].body)
        self._finish_handshake(frame, Opcode.AUTHENTICATE, m.encode_authenticate(authenticator),
                               ready=False)

    def _is_version_error(self, answer: Frame) -> bool:
        info = m.decode_error(answer.body, flags=answer.flags)
        return info.code == ErrorCode.PROTOCOL_ERROR and "version" in info.message.lower()

    def _startup_failure(self, frame: Frame, cluster: Cluster, answer: Outcome) -> Frame:
        if isinstance(answer, Frame):
            return answer
        return error_frame(frame.version, frame.stream, ErrorCode.SERVER_ERROR,
                           f"zdm proxy: {cluster.value}: {answer.message}")

    def _finish_handshake(self, frame: Frame, opcode: int, body: bytes, *, ready: bool = True) -> None:
        self.in_flight -= 1
        self.client.write(Frame(frame.version, True, 0, frame.stream, opcode, body).header(), body)
        if frame.version >= 5:
            self.client.start_segments()
        if ready:
            self.ready = True

    async def _auth_response(self, frame: Frame) -> None:
        answer = await self.backends[self.auth_cluster].request(frame.version, Opcode.AUTH_RESPONSE,
                                                                frame.body)
        if isinstance(answer, Frame) and answer.opcode == Opcode.AUTH_SUCCESS:
            self.in_flight -= 1
            self.client.write(answer.header(frame.stream), answer.body)
            self.ready = True
            return
        self.respond(frame.stream, _failure_frame(frame.version, frame.stream, answer))

    # -- requests ------------------------------------------------------------------------
    def _query(self, frame: Frame) -> None:
        info = m.decode_query(frame.body, frame.version, flags=frame.flags)
        stmt = classify(info.query)
        keyspace = info.keyspace or self.keyspace
        routing = self.server.routing
        decision = decide_statement(stmt, keyspace, routing)
        dest = decision.destination
        if dest is Destination.PROXY:
            self._reply_local(frame, Opcode.RESULT,
                              self.server.topology_answer(stmt.table, info.query))
            return
        if dest is Destination.BOTH:
            body = frame.body
            if stmt.is_write and not info.has_timestamp:
                body = m.add_default_timestamp(Opcode.QUERY, body, frame.version,
                                               time.time_ns() // 1000, flags=frame.flags)
            on_success = self._use_succeeded if stmt.kind is StatementKind.USE else None
            self._dual(frame, body, body, routing.primary, on_success)
            return
        self._read(frame, frame.body, frame.body, decision, info.flags & WITH_PAGING_STATE)

    def _read(self, frame: Frame, origin_body: bytes, target_body: bytes, decision: Decision,
              paged: int) -> None:
        cluster = Cluster.ORIGIN if decision.destination is Destination.ORIGIN else Cluster.TARGET
        body = origin_body if cluster is Cluster.ORIGIN else target_body
        if decision.async_secondary and not paged:
            # paging states are cluster-specific: only first pages are read twice
            self._read_async(frame, cluster, origin_body, target_body)
        else:
            self._single(frame, body, cluster)

    def _single(self, frame: Frame, body: bytes, cluster: Cluster, entry: PreparedEntry | None = None) -> None:
        self.in_flight += 1
        stream = frame.stream
        version = frame.version

        def done(outcome: Outcome) -> None:
            if entry is not None and self._unprepared(outcome):
                self._reprepare_and_retry(frame, body, cluster, entry, done_final)
                return
            done_final(outcome)

        def done_final(outcome: Outcome) -> None:
            if isinstance(outcome, Frame):
                self.respond(stream, outcome)
            else:
                self.respond(stream, _failure_frame(version, stream, outcome))

        self.backends[cluster].send(version, frame.flags, frame.opcode, body, done)

    def _read_async(self, frame: Frame, primary: Cluster, origin_body: bytes, target_body: bytes,
                    entry: PreparedEntry | None = None) -> None:
        """Phase 3: answer from the primary; also read the secondary and compare, off the
        client's path (its answer is never returned)."""
        self.in_flight += 1
        stream, version = frame.stream, frame.version
        results: dict[Cluster, Outcome] = {}
        stats = self.server.stats

        def record(cluster: Cluster, outcome: Outcome) -> None:
            results[cluster] = outcome
            if cluster is primary:
                self.respond(stream, outcome if isinstance(outcome, Frame)
                             else _failure_frame(version, stream, outcome))
            if len(results) == 2:
                stats.compare_async_read(results[primary], results[other(primary)], version)

        for cluster, body in ((Cluster.ORIGIN, origin_body), (Cluster.TARGET, target_body)):
            def done(outcome: Outcome, cluster=cluster) -> None:
                record(cluster, outcome)
            callback = done if entry is None else self._with_reprepare(frame, body, cluster, entry, done)
            self.backends[cluster].send(version, frame.flags, frame.opcode, body, callback)

    def _dual(self, frame: Frame, origin_body: bytes, target_body: bytes, primary: Cluster,
              on_success=None, entry: PreparedEntry | None = None) -> None:
        self.in_flight += 1
        dual = _Dual(self, frame.stream, frame.version, primary, on_success)
        for cluster, body in ((Cluster.ORIGIN, origin_body), (Cluster.TARGET, target_body)):
            callback = dual.callback(cluster)
            if entry is not None:
                callback = self._with_reprepare(frame, body, cluster, entry, callback)
            self.backends[cluster].send(frame.version, frame.flags, frame.opcode, body, callback)

    def _use_succeeded(self, outcomes: dict[Cluster, Outcome]) -> None:
        answer = outcomes[Cluster.ORIGIN]
        if m.result_kind(answer.body, flags=answer.flags) == ResultKind.SET_KEYSPACE:
            self.keyspace = m.decode_set_keyspace(answer.body, flags=answer.flags)
        return None

    # -- prepared statements ----------------------------------------------------------
    def _prepare(self, frame: Frame) -> None:
        info = m.decode_prepare(frame.body, frame.version, flags=frame.flags)
        keyspace = info.keyspace or self.keyspace
        stmt = classify(info.query)

        def both_prepared(outcomes: dict[Cluster, Outcome]) -> Frame:
            o, t = outcomes[Cluster.ORIGIN], outcomes[Cluster.TARGET]
            po = m.decode_prepared_result(o.body, frame.version, flags=o.flags)
            pt = m.decode_prepared_result(t.body, frame.version, flags=t.flags)
            self.server.prepared.put(PreparedEntry(info.query, keyspace, stmt, po.prepared_id,
                                                   pt.prepared_id, po.result_metadata_id,
                                                   pt.result_metadata_id))
            return o  # the client always sees origin's id

        self._dual(frame, frame.body, frame.body, Cluster.ORIGIN, both_prepared)

    def _execute(self, frame: Frame) -> None:
        body = frame.body
        if frame.flags & CUSTOM_PAYLOAD:
            prepared_id = m.decode_execute(body, frame.version, flags=frame.flags).prepared_id
        else:  # the hot path: <id> is the [short bytes] at the start of the body
            prepared_id = body[2:2 + int.from_bytes(body[:2], "big")]
        entry = self.server.prepared.get(prepared_id)
        if entry is None:
            self._error(frame, ErrorCode.UNPREPARED,
                        "zdm proxy: statement not prepared through this proxy; re-prepare it",
                        unprepared_id=prepared_id)
            return
        target_body = self._for_target(frame, entry)
        stmt = entry.statement
        routing = self.server.routing
        decision = decide_statement(stmt, entry.keyspace, routing)
        if decision.destination is Destination.BOTH:
            origin_body = body
            if stmt.is_write:  # unchanged when the client sent a timestamp
                ts = time.time_ns() // 1000
                origin_body = m.add_default_timestamp(Opcode.EXECUTE, origin_body, frame.version, ts,
                                                      flags=frame.flags)
                if target_body is body:
                    target_body = origin_body
                else:
                    target_body = m.add_default_timestamp(Opcode.EXECUTE, target_body, frame.version, ts,
                                                          flags=frame.flags)
            self._dual(frame, origin_body, target_body, routing.primary, entry=entry)
            return
        if decision.destination is Destination.PROXY:
            decision = decide_read(routing)  # prepared system.local reads: served by the primary
        cluster = Cluster.ORIGIN if decision.destination is Destination.ORIGIN else Cluster.TARGET
        if decision.async_secondary and \
                not m.decode_execute(body, frame.version, flags=frame.flags).flags & WITH_PAGING_STATE:
            self._read_async(frame, cluster, body, target_body, entry)
            return
        self._single(frame, body if cluster is Cluster.ORIGIN else target_body, cluster, entry)

    def _for_target(self, frame: Frame, entry: PreparedEntry) -> bytes:
        if entry.target_id == entry.origin_id and entry.target_metadata_id == entry.origin_metadata_id:
            return frame.body
        return m.replace_execute_id(frame.body, frame.version, entry.target_id,
                                    entry.target_metadata_id, flags=frame.flags)

    def _batch(self, frame: Frame) -> None:
        info = m.decode_batch(frame.body, frame.version, flags=frame.flags)
        ids = [c.prepared_id for c in info.children if c.kind == 1]
        cache = self.server.prepared
        for pid in ids:
            if cache.get(pid) is None:
                self._error(frame, ErrorCode.UNPREPARED,
                            "zdm proxy: batch child not prepared through this proxy; re-prepare it",
                            unprepared_id=pid)
                return
        origin_body = frame.body
        if not info.has_timestamp:
            origin_body = m.add_default_timestamp(Opcode.BATCH, origin_body, frame.version,
                                                  time.time_ns() // 1000, flags=frame.flags)
        mapping = cache.target_ids(ids)
        target_body = m.replace_batch_ids(origin_body, frame.version, mapping, flags=frame.flags) \
            if mapping else origin_body
        self._dual(frame, origin_body, target_body, self.server.routing.primary)

    def _unprepared(self, outcome: Outcome) -> bool:
        if not isinstance(outcome, Frame) or outcome.opcode != Opcode.ERROR:
            return False
        return m.decode_error(outcome.body, flags=outcome.flags).code == ErrorCode.UNPREPARED

    def _with_reprepare(self, frame, body, cluster, entry, callback):
        def done(outcome: Outcome) -> None:
            if self._unprepared(outcome):
                self._reprepare_and_retry(frame, body, cluster, entry, callback)
            else:
                callback(outcome)
        return done

    def _reprepare_and_retry(self, frame: Frame, body: bytes, cluster: Cluster, entry: PreparedEntry,
                             callback) -> None:
        """A cluster lost a prepared statement: prepare it again there and retry once."""
        backend = self.backends[cluster]
        prepare = m.encode_prepare(entry.query, frame.version,
                                   keyspace=entry.keyspace if frame.version >= 5 else None)
        if frame.version < 5 and entry.keyspace and entry.keyspace != self.keyspace:
            callback(error_frame(frame.version, frame.stream, ErrorCode.UNPREPARED,
                                 "zdm proxy: statement must be prepared again",
                                 unprepared_id=entry.origin_id))
            return
        self.server.stats.reprepares += 1

        def prepared(outcome: Outcome) -> None:
            if not isinstance(outcome, Frame) or outcome.opcode != Opcode.RESULT:
                callback(outcome)
                return
            result = m.decode_prepared_result(outcome.body, frame.version, flags=outcome.flags)
            retry_body = body
            if cluster is Cluster.TARGET:
                entry.target_id, entry.target_metadata_id = result.prepared_id, result.result_metadata_id
            else:
                entry.origin_metadata_id = result.result_metadata_id
            if result.prepared_id != m.decode_execute(body, frame.version, flags=frame.flags).prepared_id:
                retry_body = m.replace_execute_id(body, frame.version, result.prepared_id,
                                                  result.result_metadata_id, flags=frame.flags)
            backend.send(frame.version, frame.flags, frame.opcode, retry_body, callback)

        backend.send(frame.version, 0, Opcode.PREPARE, prepare, prepared)

    # -- events --------------------------------------------------------------------------
    def event_received(self, frame: Frame) -> None:
        """EVENT from origin: schema changes pass; topology and status changes describe
        origin's nodes, which the client never sees, so they are dropped."""
        try:
            info = m.decode_event(frame.body, flags=frame.flags)
        except ProtocolError:
            return
        if info.event_type == "SCHEMA_CHANGE" and self.ready:
            self.client.write(frame.header(-1), frame.body)
