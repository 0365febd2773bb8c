"""The request path of one client connection once its handshake is done: pure, no I/O.

Theory of operation (mitmproxy's layers, zdm-proxy's rules): a :class:`RequestHandler`
imports neither asyncio nor the server.  It is given

* ``send``, one callable per cluster: ``send(flags, opcode, body, callback)`` forwards a
  request on that cluster's connection and later calls ``callback(outcome)`` exactly once,
  with the answer frame or a :class:`~zdm.proxy.aggregate.Failure`;
* ``reply(stream, frame)``, which writes ``frame`` to the client as the answer on ``stream``;
* a :class:`Context` shared by the worker's connections: the routing (read when a request
  arrives, so a routing change applies to later requests and never moves one in flight),
  the prepared-id cache, the counters, the virtual topology and the clock.

Each request is decoded only as far as :func:`~zdm.proxy.routing.decide` needs, sent where
it says, and answered through a small pending object (:class:`_Single`, :class:`_Dual`,
:class:`_AsyncRead`) that holds what its answer needs.  Writes sent to both clusters carry
one client-side timestamp (added when the client sent none), so both store the same
writetime.  A cluster that forgot a prepared statement answers UNPREPARED: the handler
prepares it there again and resends, for an EXECUTE and for the children of a BATCH.

Invariant: every request accepted (``in_flight`` incremented) is answered exactly once.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

from zdm.cql import messages as m
from zdm.cql.classify import Statement, StatementKind, classify
from zdm.cql.constants import (CUSTOM_PAYLOAD, SKIP_METADATA, WITH_PAGING_STATE, ErrorCode, Opcode,
                               ResultKind)
from zdm.cql.errors import ProtocolError
from zdm.cql.frame import Frame
from zdm.phases.model import Cluster, Routing
from zdm.phases.divergences import new_record
from zdm.proxy import aggregate, keys
from zdm.proxy.keys import RowKey, render
from zdm.proxy.aggregate import Outcome
from zdm.proxy.prepared import PreparedCache, PreparedEntry
from zdm.proxy.routing import Destination, decide
from zdm.proxy.stats import ProxyStats
from zdm.proxy.topology import Instance, VirtualTopology
from zdm.scope import Scope

log = logging.getLogger("zdm.proxy")

Callback = Callable[[Outcome], None]
Send = Callable[[int, int, bytes, Callback], None]
Reply = Callable[[int, Frame], None]
Record = Callable[[dict, Callable[[BaseException | None], None] | None], None]

#: the answer to OPTIONS: what the proxy lets a client negotiate
SUPPORTED_BODY = m.encode_supported({
    "CQL_VERSION": ["3.4.7"], "COMPRESSION": [], "PROTOCOL_VERSIONS": ["3/v3", "4/v4", "5/v5"]})

_UNPREPARED_CODE = ErrorCode.UNPREPARED.to_bytes(4, "big")


def now_us() -> int:
    return time.time_ns() // 1000


class Context:
    """What every client connection of one worker shares."""

    __slots__ = ("routing", "scope", "prepared", "stats", "topology", "me", "clock", "draining",
                 "name", "divergences", "secondary_timeout")

    def __init__(self, *, routing: Routing, topology: VirtualTopology, me: Instance,
                 scope: Scope = Scope(), prepared: PreparedCache | None = None,
                 stats: ProxyStats | None = None, clock: Callable[[], int] = now_us,
                 name: str = "zdm-proxy", divergences: Record | None = None,
                 secondary_timeout: float | None = None) -> None:
        self.routing = routing
        self.scope = scope  # statements outside it go to origin only
        self.topology = topology
        self.me = me
        self.prepared = prepared if prepared is not None else PreparedCache()
        self.stats = stats if stats is not None else ProxyStats()
        self.clock = clock  # microseconds since the epoch, for client-side timestamps
        self.draining = False
        self.name = name  # this proxy, as its records name it
        #: divergences(record, done): keeps a record durably (zdm.phases.divergences)
        self.divergences = divergences
        #: `proxy.secondary_write_failure: record`: how long the secondary may take before a
        #: write it has not answered is recorded and acknowledged; None: `fail` mode
        self.secondary_timeout = secondary_timeout


def error_frame(version: int, stream: int, code: int, message: str, *,
                unprepared_id: bytes | None = None) -> Frame:
    body = m.encode_error(code, message, unprepared_id=unprepared_id)
    return Frame(version, True, 0, stream, Opcode.ERROR, body)


def failure_frame(version: int, stream: int, outcome: Outcome) -> Frame:
    """The frame the client gets for ``outcome``: the cluster's own, or an error for silence."""
    if isinstance(outcome, Frame):
        return outcome
    return error_frame(version, stream, ErrorCode.SERVER_ERROR, f"zdm proxy: {outcome.message}")


def unprepared_id(outcome: Outcome) -> bytes | None:
    """The prepared id of an UNPREPARED error, else None."""
    if not isinstance(outcome, Frame) or outcome.opcode != Opcode.ERROR:
        return None
    body = outcome.body
    if not outcome.flags and body[:4] != _UNPREPARED_CODE:
        return None  # the common case, decided without decoding
    info = m.decode_error(body, flags=outcome.flags)
    return info.unprepared_id if info.code == ErrorCode.UNPREPARED else None


class RequestHandler:
    __slots__ = ("ctx", "version", "keyspace", "in_flight", "_send_origin", "_send_target", "_reply")

    def __init__(self, ctx: Context, version: int, send: Mapping[Cluster, Send], reply: Reply, *,
                 keyspace: str | None = None) -> None:
        self.ctx = ctx
        self.version = version
        self.keyspace = keyspace  # the connection's keyspace, as USE set it on both clusters
        self.in_flight = 0
        self._send_origin = send[Cluster.ORIGIN]
        self._send_target = send[Cluster.TARGET]
        self._reply = reply

    # -- in and out ------------------------------------------------------------------
    def frame_received(self, frame: Frame) -> None:
        """Handle one request; a malformed one raises ProtocolError (answered by the caller)."""
        try:
            self._dispatch(frame)
        except ProtocolError as exc:
            if exc.stream is None:
                exc.stream = frame.stream
            if exc.version is None:
                exc.version = self.version
            raise

    def answer(self, stream: int, frame: Frame) -> None:
        """Send ``frame`` to the client as the answer to the request on ``stream``."""
        self.in_flight -= 1
        self.ctx.stats.requests += 1
        self._reply(stream, frame)

    def _dispatch(self, frame: Frame) -> None:
        op = frame.opcode
        if frame.version != self.version:
            raise ProtocolError(f"frame of protocol v{frame.version} on a v{self.version} connection")
        if op == Opcode.OPTIONS:
            self._local(frame, Opcode.SUPPORTED, SUPPORTED_BODY)
        elif self.ctx.draining:
            self._error(frame, ErrorCode.OVERLOADED, "zdm proxy is shutting down; retry on another node")
        elif op == Opcode.EXECUTE:
            self._execute(frame)
        elif op == Opcode.QUERY:
            self._query(frame)
        elif op == Opcode.BATCH:
            self._batch(frame)
        elif op == Opcode.PREPARE:
            self._prepare(frame)
        elif op == Opcode.REGISTER:
            self._forward(frame, decide(op, None, None, False, self.ctx.routing), frame.body, frame.body)
        elif op in (Opcode.STARTUP, Opcode.AUTH_RESPONSE):
            raise ProtocolError(f"{op.name} after the handshake completed")
        else:
            raise ProtocolError(f"unexpected {getattr(op, 'name', op)} request")

    def _local(self, frame: Frame, opcode: int, body: bytes) -> None:
        self.in_flight += 1
        self.answer(frame.stream, Frame(frame.version, True, 0, frame.stream, opcode, body))

    def _error(self, frame: Frame, code: int, message: str, **kw) -> None:
        self.in_flight += 1
        self.answer(frame.stream, error_frame(frame.version, frame.stream, code, message, **kw))

    def _forward(self, frame: Frame, decision, origin_body: bytes, target_body: bytes,
                 entry: PreparedEntry | None = None, on_success=None, statements: int = 0,
                 stmt: Statement | None = None) -> None:
        """Send a request where ``decision`` says (not PROXY), with each cluster's body.
        ``statements``: how many prepared statements it uses (an UNPREPARED answer is
        recovered from once per statement and cluster); ``stmt``: what it runs."""
        self.in_flight += 1
        dest = decision.destination
        retries = statements or (1 if entry is not None else 0)
        if dest is Destination.BOTH:
            dual = _Dual(self, frame, origin_body, target_body, entry, 2 * retries, on_success)
            if stmt is not None:
                dual.conditional = stmt.conditional
                dual.recordable = stmt.is_write and self.ctx.secondary_timeout is not None
            dual.send()
        elif decision.async_secondary:
            primary = Cluster.ORIGIN if dest is Destination.ORIGIN else Cluster.TARGET
            _AsyncRead(self, frame, primary, origin_body, target_body, entry, 2 * retries,
                       self.table_of(stmt, entry)).send()
        else:
            if decision.async_skipped:
                self.ctx.stats.skipped_async_read(self.table_of(stmt, entry))
            if dest is Destination.ORIGIN:
                _Single(self, frame, Cluster.ORIGIN, origin_body, entry, retries, on_success).send()
            else:
                _Single(self, frame, Cluster.TARGET, target_body, entry, retries, on_success).send()

    def table_of(self, stmt: Statement | None, entry: PreparedEntry | None = None) -> str:
        """``keyspace.table`` of what a request runs, for the per-table counters."""
        if stmt is None:
            return "?"
        keyspace = stmt.keyspace or (entry.keyspace if entry is not None else self.keyspace)
        return f"{keyspace}.{stmt.table}"

    # -- QUERY ---------------------------------------------------------------------------
    def _query(self, frame: Frame) -> None:
        info = m.decode_query(frame.body, frame.version, flags=frame.flags)
        stmt = classify(info.query)
        decision = decide(Opcode.QUERY, stmt, self.keyspace, bool(info.flags & WITH_PAGING_STATE),
                          self.ctx.routing, self.ctx.scope)
        if decision.destination is Destination.PROXY:
            ctx = self.ctx
            self._local(frame, Opcode.RESULT, ctx.topology.answer(stmt.table, info.query, ctx.me))
            return
        body = frame.body
        if decision.destination is Destination.BOTH and stmt.is_write and not info.has_timestamp:
            body = m.add_default_timestamp(Opcode.QUERY, body, frame.version, self.ctx.clock(),
                                           flags=frame.flags)
        on_success = self._use_succeeded if stmt.kind is StatementKind.USE else None
        self._forward(frame, decision, body, body, on_success=on_success, stmt=stmt)

    def _use_succeeded(self, answer: Frame, _target: Frame | None) -> None:
        if m.result_kind(answer.body, flags=answer.flags) == ResultKind.SET_KEYSPACE:
            self.keyspace = m.decode_set_keyspace(answer.body, flags=answer.flags)

    # -- PREPARE / EXECUTE -----------------------------------------------------------------
    def _prepare(self, frame: Frame) -> None:
        info = m.decode_prepare(frame.body, frame.version, flags=frame.flags)
        keyspace = info.keyspace or self.keyspace
        stmt = classify(info.query)
        ctx = self.ctx

        def prepared(o: Frame, t: Frame | None) -> None:
            """Both clusters (or origin alone, for what target never executes) prepared it;
            the client gets origin's answer, and so origin's id."""
            version = frame.version
            po = m.decode_prepared_result(o.body, version, flags=o.flags)
            pt = m.decode_prepared_result(t.body, version, flags=t.flags) if t is not None else None
            meta = m.decode_prepared_metadata(o.body, version, flags=o.flags)
            virtual = decide(Opcode.EXECUTE, stmt, keyspace, False, ctx.routing).destination \
                is Destination.PROXY
            ctx.prepared.put(PreparedEntry(info.query, keyspace, stmt, po.prepared_id,
                                           pt.prepared_id if pt else None, po.result_metadata_id,
                                           pt.result_metadata_id if pt else None,
                                           meta.columns if virtual else None, meta.binds))

        self._forward(frame, decide(Opcode.PREPARE, stmt, keyspace, False, ctx.routing, ctx.scope),
                      frame.body, frame.body, on_success=prepared)

    def _execute(self, frame: Frame) -> None:
        body = frame.body
        version = frame.version
        if frame.flags & CUSTOM_PAYLOAD:
            prepared_id = m.decode_execute(body, version, flags=frame.flags).prepared_id
        else:  # the hot path: <id> is the [short bytes] at the start of the body
            prepared_id = body[2:2 + int.from_bytes(body[:2], "big")]
        ctx = self.ctx
        ctx.stats.executes += 1
        entry = ctx.prepared.get(prepared_id)
        if entry is None:
            ctx.stats.unknown_prepared += 1
            self._error(frame, ErrorCode.UNPREPARED,
                        "zdm proxy: statement not prepared through this proxy worker; re-prepare it",
                        unprepared_id=prepared_id)
            return
        stmt = entry.statement
        query_flags = m.execute_query_flags(body, version, flags=frame.flags) if stmt.is_read else 0
        decision = decide(Opcode.EXECUTE, stmt, entry.keyspace, bool(query_flags & WITH_PAGING_STATE),
                          ctx.routing, ctx.scope)
        dest = decision.destination
        if dest is Destination.PROXY:
            self._local(frame, Opcode.RESULT, self._virtual_answer(entry, query_flags))
            return
        target_body = body if entry.target_id is None else _for_target(frame, entry)
        if dest is Destination.BOTH and stmt.is_write:  # kept if the client sent a timestamp
            ts = ctx.clock()
            origin_body = m.add_default_timestamp(Opcode.EXECUTE, body, version, ts, flags=frame.flags)
            target_body = origin_body if target_body is body else \
                m.add_default_timestamp(Opcode.EXECUTE, target_body, version, ts, flags=frame.flags)
            body = origin_body
        self._forward(frame, decision, body, target_body, entry, stmt=stmt)

    def _virtual_answer(self, entry: PreparedEntry, query_flags: int) -> bytes:
        ctx = self.ctx
        stmt = entry.statement
        if entry.result_columns is None:
            return ctx.topology.answer(stmt.table, entry.query, ctx.me)
        return ctx.topology.answer_prepared(stmt.table, entry.query, entry.result_columns, ctx.me,
                                            no_metadata=bool(query_flags & SKIP_METADATA))

    # -- BATCH -----------------------------------------------------------------------------
    def _batch(self, frame: Frame) -> None:
        info = m.decode_batch(frame.body, frame.version, flags=frame.flags)
        ids = [c.prepared_id for c in info.children if c.kind == 1]
        ctx = self.ctx
        for pid in ids:
            if ctx.prepared.get(pid) is None:
                ctx.stats.unknown_prepared += 1
                self._error(frame, ErrorCode.UNPREPARED,
                            "zdm proxy: batch child not prepared through this proxy worker; "
                            "re-prepare it", unprepared_id=pid)
                return
        origin_body = frame.body
        if not info.has_timestamp:
            origin_body = m.add_default_timestamp(Opcode.BATCH, origin_body, frame.version,
                                                  ctx.clock(), flags=frame.flags)
        children = () if ctx.scope.everything else tuple(
            classify(c.query) if c.kind == 0 else ctx.prepared.get(c.prepared_id).statement
            for c in info.children)
        decision = decide(Opcode.BATCH, None, self.keyspace, False, ctx.routing, ctx.scope, children)
        target_body = self.batch_for_target(frame, origin_body, ids) \
            if decision.destination is Destination.BOTH else origin_body
        conditional = _conditional_batch(info.children, ctx.prepared)
        self._forward(frame, decision, origin_body, target_body, statements=len(set(ids)),
                      stmt=Statement(StatementKind.BATCH, conditional=conditional))

    def batch_for_target(self, frame: Frame, origin_body: bytes, ids: list[bytes]) -> bytes:
        mapping = self.ctx.prepared.target_ids(ids)
        return m.replace_batch_ids(origin_body, frame.version, mapping, flags=frame.flags) \
            if mapping else origin_body

    # -- a write the secondary did not take (record mode) ----------------------------------
    def record_secondary_failure(self, dual: "_Dual", primary: Frame, secondary: Outcome) -> None:
        """The primary took the write, the secondary failed or did not answer in time: keep a
        durable record of each row it wrote (with the writetime used), then acknowledge the
        primary's answer; if the record cannot be kept, the client gets the failure."""
        frame, ctx = dual.frame, self.ctx
        body = dual.origin_body if dual.primary is Cluster.ORIGIN else dual.target_body
        writetime = m.request_timestamp(frame.opcode, body, frame.version, flags=frame.flags)
        reason = secondary.message if not isinstance(secondary, Frame) else \
            m.decode_error(secondary.body, flags=secondary.flags).message
        rows = self.request_keys(frame, dual.entry) or [(None, None, None)]
        if ctx.divergences is None:
            self.answer(frame.stream, failure_frame(frame.version, frame.stream, secondary))
            return
        left = [len(rows), None]  # records not yet durable, the first error

        def durable(error: BaseException | None) -> None:
            left[0] -= 1
            left[1] = left[1] or error
            if left[0]:
                return
            if left[1] is not None:
                self.answer(frame.stream, failure_frame(frame.version, frame.stream, secondary))
            else:
                self.answer(frame.stream, primary)

        secondary_name = "target" if dual.primary is Cluster.ORIGIN else "origin"
        for keyspace, table, key in rows:
            ctx.stats.secondary_writes_recorded += 1
            ctx.stats.table(f"{keyspace}.{table}").secondary_writes_recorded += 1
            ctx.divergences(new_record("secondary_write", keyspace, table, key.to_json() if key else None,
                                       source=dual.primary.value, proxy=ctx.name, writetime=writetime,
                                       detail=f"{secondary_name}: {reason}"), durable)

    # -- lightweight transactions ------------------------------------------------------------
    def compare_lwt(self, frame: Frame, entry: PreparedEntry | None, origin: Frame, target: Frame) -> None:
        """Both clusters ran a conditional write: if they decided differently, the rows now
        differ -- count it, and keep the key durably for validation to re-check and repair."""
        version = frame.version
        if _lwt_outcome(origin, version) == _lwt_outcome(target, version):
            return
        ctx = self.ctx
        primary = ctx.routing.primary
        detail = (f"applied on origin: {_applied(origin, version)}, "
                  f"on target: {_applied(target, version)}")
        ctx.stats.lwt_divergences += 1
        for keyspace, table, key in self.request_keys(frame, entry):
            per_table = ctx.stats.table(f"{keyspace}.{table}")
            per_table.lwt_divergences += 1
            shown = render(key) if key is not None else f"{keyspace}.{table} (key unknown)"
            if shown not in per_table.samples:
                log.warning("LWT divergence on %s: %s; recorded for `zdm validate`", shown, detail)
            per_table.sample(shown)
            if ctx.divergences is not None:
                ctx.divergences(new_record("lwt", keyspace, table, key.to_json() if key else None,
                                           source=primary.value, proxy=ctx.name, detail=detail), None)

    def request_keys(self, frame: Frame, entry: PreparedEntry | None
                     ) -> list[tuple[str | None, str | None, RowKey | None]]:
        """(keyspace, table, key) of each statement a request runs (a BATCH runs several)."""
        version, flags = frame.version, frame.flags
        if frame.opcode == Opcode.EXECUTE and entry is not None:
            return [self._entry_key(entry, m.execute_values(frame.body, version, flags=flags))]
        if frame.opcode == Opcode.QUERY:
            info = m.decode_query(frame.body, version, flags=flags)
            return [self._text_key(info.query, m.query_values(frame.body, version, flags=flags))]
        if frame.opcode == Opcode.BATCH:
            out = []
            for child in m.decode_batch(frame.body, version, flags=flags).children:
                child_entry = self.ctx.prepared.get(child.prepared_id) if child.kind == 1 else None
                if child_entry is not None:
                    out.append(self._entry_key(child_entry, list(child.values)))
                elif child.kind == 0:
                    out.append(self._text_key(child.query, list(child.values)))
            return out
        return []

    def _entry_key(self, entry: PreparedEntry, values: list[bytes | None]):
        stmt = entry.statement
        keyspace = stmt.keyspace or entry.keyspace
        if not entry.binds:
            return self._text_key(entry.query, values, keyspace)
        return keyspace, stmt.table, keys.from_bound_values(keyspace, stmt.table, entry.binds, values)

    def _text_key(self, query: str, values: list[bytes | None], keyspace: str | None = None):
        stmt = classify(query)
        keyspace = stmt.keyspace or keyspace or self.keyspace
        key = keys.from_text(query, values)
        if key is not None:
            key = key._replace(keyspace=keyspace)
        return keyspace, stmt.table, key

    # -- a cluster forgot a prepared statement -------------------------------------------
    def reprepare(self, cluster: Cluster, entry: PreparedEntry, frame: Frame,
                  then: Callable[[Outcome | None], None]) -> None:
        """PREPARE ``entry`` on ``cluster`` again; ``then(None)`` once done, or
        ``then(outcome)`` with the answer the client should get instead."""
        version = frame.version
        if version < 5 and entry.keyspace and entry.keyspace != self.keyspace:
            # v4 prepares in the connection's keyspace: only the driver can do it right
            then(error_frame(version, frame.stream, ErrorCode.UNPREPARED,
                             "zdm proxy: statement must be prepared again",
                             unprepared_id=entry.origin_id))
            return
        self.ctx.stats.reprepares += 1
        body = m.encode_prepare(entry.query, version, keyspace=entry.keyspace if version >= 5 else None)

        def prepared(outcome: Outcome) -> None:
            if not isinstance(outcome, Frame) or outcome.opcode != Opcode.RESULT:
                then(outcome)
                return
            result = m.decode_prepared_result(outcome.body, version, flags=outcome.flags)
            if cluster is Cluster.TARGET:
                self.ctx.prepared.retarget(entry, result.prepared_id, result.result_metadata_id)
            else:
                entry.origin_metadata_id = result.result_metadata_id
                if result.prepared_id != entry.origin_id:  # the client's id no longer works
                    then(error_frame(version, frame.stream, ErrorCode.UNPREPARED,
                                     "zdm proxy: statement must be prepared again",
                                     unprepared_id=entry.origin_id))
                    return
            then(None)

        (self._send_origin if cluster is Cluster.ORIGIN else self._send_target)(
            0, Opcode.PREPARE, body, prepared)

    def resend_body(self, cluster: Cluster, frame: Frame, body: bytes, entry: PreparedEntry | None,
                    origin_body: bytes) -> bytes:
        """The body to send ``cluster`` again once it has prepared the statements anew."""
        if frame.opcode == Opcode.EXECUTE:
            if cluster is Cluster.ORIGIN:
                return body
            return m.replace_execute_id(body, frame.version, entry.target_id, entry.target_metadata_id,
                                        flags=frame.flags)
        if cluster is Cluster.ORIGIN:
            return origin_body
        ids = [c.prepared_id for c in m.decode_batch(origin_body, frame.version, flags=frame.flags).children
               if c.kind == 1]
        return self.batch_for_target(frame, origin_body, ids)

    def send(self, cluster: Cluster, frame: Frame, body: bytes, callback: Callback) -> None:
        (self._send_origin if cluster is Cluster.ORIGIN else self._send_target)(
            frame.flags, frame.opcode, body, callback)


#: errors that mean the cluster could not take the write just now (it may later): what record
#: mode records; any other error (a bad statement, a missing table) fails the write as usual
_OUTAGE_ERRORS = frozenset({
    ErrorCode.SERVER_ERROR, ErrorCode.UNAVAILABLE, ErrorCode.OVERLOADED, ErrorCode.IS_BOOTSTRAPPING,
    ErrorCode.WRITE_TIMEOUT, ErrorCode.WRITE_FAILURE, ErrorCode.READ_TIMEOUT, ErrorCode.READ_FAILURE,
    ErrorCode.CDC_WRITE_FAILURE, ErrorCode.CAS_WRITE_UNKNOWN, ErrorCode.TRUNCATE_ERROR})


def _outage(outcome: Outcome) -> bool:
    if not isinstance(outcome, Frame):
        return True  # no answer in time, or the connection is gone
    if outcome.opcode != Opcode.ERROR:
        return False
    return m.decode_error(outcome.body, flags=outcome.flags).code in _OUTAGE_ERRORS


def _lwt_outcome(frame: Frame, version: int):
    """What a conditional write answered: its rows ([applied] and, when not applied, the
    values found), or its result kind."""
    kind = m.result_kind(frame.body, flags=frame.flags)
    if kind != ResultKind.ROWS:
        return kind
    return m.decode_rows(frame.body, version, flags=frame.flags).rows


def _applied(frame: Frame, version: int) -> str:
    rows = _lwt_outcome(frame, version)
    if isinstance(rows, list) and rows and rows[0] and rows[0][0] is not None:
        return "yes" if rows[0][0] != b"\x00" else "no"
    return "?"


def _conditional_batch(children, prepared: PreparedCache) -> bool:
    for child in children:
        stmt = classify(child.query) if child.kind == 0 else getattr(prepared.get(child.prepared_id),
                                                                      "statement", None)
        if stmt is not None and stmt.conditional:
            return True
    return False


def _query_text(frame: Frame, entry: PreparedEntry | None) -> str:
    if entry is not None:
        return entry.query[:200]
    if frame.opcode == Opcode.QUERY:
        return m.decode_query(frame.body, frame.version, flags=frame.flags).query[:200]
    return "?"


def _for_target(frame: Frame, entry: PreparedEntry) -> bytes:
    if entry.target_id == entry.origin_id and entry.target_metadata_id == entry.origin_metadata_id:
        return frame.body
    return m.replace_execute_id(frame.body, frame.version, entry.target_id, entry.target_metadata_id,
                                flags=frame.flags)


class _Recovering:
    """Shared by the pending requests: resend once a cluster that answered UNPREPARED has the
    statement again (at most once per prepared statement a request uses)."""

    __slots__ = ()

    def recover(self, cluster: Cluster, outcome: Frame, body: bytes, done: Callback) -> bool:
        """True when the ERROR ``outcome`` is an UNPREPARED this request recovers from (``done``
        will get the resent request's outcome); False to take ``outcome`` as it is."""
        pid = unprepared_id(outcome)
        if pid is None or self.retries_left <= 0:
            return False
        handler = self.handler
        entry = self.entry if self.frame.opcode == Opcode.EXECUTE else \
            handler.ctx.prepared.on_cluster(cluster, pid)
        if entry is None:
            return False
        self.retries_left -= 1
        frame = self.frame

        def then(instead: Outcome | None) -> None:
            if instead is not None:
                done(instead)
                return
            resend = handler.resend_body(cluster, frame, body, entry, self.origin_body)
            handler.send(cluster, frame, resend, done)

        handler.reprepare(cluster, entry, frame, then)
        return True


class _Single(_Recovering):
    """A request for one cluster; its answer goes to the client."""

    __slots__ = ("handler", "frame", "cluster", "origin_body", "body", "entry", "retries_left",
                 "on_success")

    def __init__(self, handler: RequestHandler, frame: Frame, cluster: Cluster, body: bytes,
                 entry: PreparedEntry | None, retries: int, on_success=None) -> None:
        self.handler = handler
        self.frame = frame
        self.cluster = cluster
        self.body = self.origin_body = body
        self.entry = entry
        self.retries_left = retries
        self.on_success = on_success

    def send(self) -> None:
        self.handler.send(self.cluster, self.frame, self.body, self.done)

    def done(self, outcome: Outcome) -> None:
        if self.retries_left and outcome.__class__ is Frame and outcome.opcode == Opcode.ERROR and \
                self.recover(self.cluster, outcome, self.body, self.done):
            return
        frame = self.frame
        if self.on_success is not None and not aggregate.failed(outcome):
            self.on_success(outcome, None)
        self.handler.answer(frame.stream, outcome if isinstance(outcome, Frame)
                            else failure_frame(frame.version, frame.stream, outcome))


class _Dual(_Recovering):
    """A request for both clusters; the client gets one answer once both are in."""

    __slots__ = ("handler", "frame", "origin_body", "target_body", "entry", "on_success",
                 "origin", "target", "retries_left", "conditional", "primary", "recordable")

    def __init__(self, handler: RequestHandler, frame: Frame, origin_body: bytes, target_body: bytes,
                 entry: PreparedEntry | None, retries: int, on_success) -> None:
        self.handler = handler
        # a PREPARE answers with origin's id, always; everything else with the primary's answer
        self.primary = Cluster.ORIGIN if frame.opcode == Opcode.PREPARE else handler.ctx.routing.primary
        self.recordable = False  # a data write that may be recorded when the secondary fails
        self.frame = frame
        self.origin_body = origin_body
        self.target_body = target_body
        self.entry = entry
        self.retries_left = retries
        self.on_success = on_success
        self.origin: Outcome | None = None  # each cluster's outcome, once it is in
        self.target: Outcome | None = None
        self.conditional = False  # an LWT: the two results are compared

    def send(self) -> None:
        handler, frame = self.handler, self.frame
        # in record mode the secondary gets only the shorter wait; what it misses is recorded
        wait = handler.ctx.secondary_timeout if self.recordable else None
        handler._send_origin(frame.flags, frame.opcode, self.origin_body, self.origin_done,
                             wait if self.primary is Cluster.TARGET else None)
        handler._send_target(frame.flags, frame.opcode, self.target_body, self.target_done,
                             wait if self.primary is Cluster.ORIGIN else None)

    def origin_done(self, outcome: Outcome) -> None:
        if self.retries_left and outcome.__class__ is Frame and outcome.opcode == Opcode.ERROR and \
                self.recover(Cluster.ORIGIN, outcome, self.origin_body, self.origin_done):
            return
        self.origin = outcome
        if self.target is not None:
            self._complete()

    def target_done(self, outcome: Outcome) -> None:
        if self.retries_left and outcome.__class__ is Frame and outcome.opcode == Opcode.ERROR and \
                self.recover(Cluster.TARGET, outcome, self.target_body, self.target_done):
            return
        self.target = outcome
        if self.origin is not None:
            self._complete()

    def _complete(self) -> None:
        handler, frame = self.handler, self.frame
        p, s = (self.origin, self.target) if self.primary is Cluster.ORIGIN else (self.target, self.origin)
        if self.recordable and not aggregate.failed(p) and _outage(s):
            handler.record_secondary_failure(self, p, s)  # answers once the record is durable
            return
        if not aggregate.failed(p) and not aggregate.failed(s):
            if self.on_success is not None:
                self.on_success(self.origin, self.target)
            if self.conditional:
                handler.compare_lwt(frame, self.entry, self.origin, self.target)
        handler.answer(frame.stream, failure_frame(frame.version, frame.stream,
                                                   aggregate.choose(p, s)))


class _AsyncRead(_Recovering):
    """Phase 3: answer from the primary; also read the secondary and compare, off the
    client's path (its answer is never returned)."""

    __slots__ = ("handler", "frame", "primary", "origin_body", "target_body", "entry", "origin",
                 "target", "retries_left", "table")

    def __init__(self, handler: RequestHandler, frame: Frame, primary: Cluster, origin_body: bytes,
                 target_body: bytes, entry: PreparedEntry | None, retries: int, table: str) -> None:
        self.table = table
        self.handler = handler
        self.frame = frame
        self.primary = primary
        self.origin_body = origin_body
        self.target_body = target_body
        self.entry = entry
        self.retries_left = retries
        self.origin: Outcome | None = None
        self.target: Outcome | None = None

    def send(self) -> None:
        handler, frame = self.handler, self.frame
        handler._send_origin(frame.flags, frame.opcode, self.origin_body, self.origin_done)
        handler._send_target(frame.flags, frame.opcode, self.target_body, self.target_done)

    def origin_done(self, outcome: Outcome) -> None:
        if self.retries_left and outcome.__class__ is Frame and outcome.opcode == Opcode.ERROR and \
                self.recover(Cluster.ORIGIN, outcome, self.origin_body, self.origin_done):
            return
        self.origin = outcome
        self._record(Cluster.ORIGIN, outcome)

    def target_done(self, outcome: Outcome) -> None:
        if self.retries_left and outcome.__class__ is Frame and outcome.opcode == Opcode.ERROR and \
                self.recover(Cluster.TARGET, outcome, self.target_body, self.target_done):
            return
        self.target = outcome
        self._record(Cluster.TARGET, outcome)

    def _record(self, cluster: Cluster, outcome: Outcome) -> None:
        handler, frame = self.handler, self.frame
        if cluster is self.primary:
            handler.answer(frame.stream, failure_frame(frame.version, frame.stream, outcome))
        if self.origin is not None and self.target is not None:
            p, s = (self.origin, self.target) if self.primary is Cluster.ORIGIN else (self.target, self.origin)
            handler.ctx.stats.compare_async_read(p, s, frame.version, self.table, self.describe)

    def describe(self) -> str:
        """The row this read asked for, as a sample of where the clusters differ."""
        found = self.handler.request_keys(self.frame, self.entry)
        return render(found[0][2]) if found and found[0][2] else _query_text(self.frame, self.entry)
