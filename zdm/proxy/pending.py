"""Requests waiting for their answers: one object per request in flight, no closure.

Theory of operation: the request handler sends a request and leaves a pending object to
finish it: :class:`Single` (one cluster answers the client), :class:`Dual` (both clusters;
the client gets zdm-proxy's choice once both are in) or :class:`AsyncRead` (phase 3: the
primary answers the client at once, the secondary's answer is only compared).  Each holds
what its answer needs and calls back into the handler, which it knows only by the few
methods it uses (``answer``, ``send_to``, ``reprepare``, ``resend_body``, ...): nothing here
imports asyncio, the handler, or the server.

A cluster that forgot a prepared statement answers UNPREPARED (:class:`_Recovering`).  The
client sees exactly what the cluster would have shown it: when the cluster whose answer the
client receives (the primary, or origin for what only origin runs) forgets a statement the
client wrote, the client gets that UNPREPARED, under the id it knows, and its driver prepares
again -- reading the new result metadata and bind types after a schema change, as it would
directly.  The proxy prepares again and resends on its own only where the client cannot: on
the secondary cluster (whose answer the client never sees), for statements the proxy rewrote
(function replacement), and on the primary of a write the secondary has already applied (a
retry by the client would apply it there twice).  Each at most once per statement and cluster.
"""

from __future__ import annotations

import time
from typing import Callable

from zdm.cql import messages as m
from zdm.cql.constants import ErrorCode, Opcode
from zdm.cql.frame import Frame
from zdm.phases.model import Cluster
from zdm.proxy import aggregate
from zdm.proxy.aggregate import Outcome
from zdm.proxy.prepared import PreparedEntry
from zdm.proxy.routing_key import Partition

Callback = Callable[[Outcome], None]
#: where token-aware forwarding may send a request's first sends: its partition and the
#: statements it runs (:mod:`~zdm.proxy.token_aware`); a resend after UNPREPARED goes home
Route = tuple[Partition, tuple[PreparedEntry, ...]]

_UNPREPARED_CODE = ErrorCode.UNPREPARED.to_bytes(4, "big")

#: errors that mean a cluster could not take a write just now (it may later): what record
#: mode records; any other error (a bad statement, a missing table) fails the write as usual
OUTAGE_ERRORS = frozenset({
    ErrorCode.SERVER_ERROR, ErrorCode.UNAVAILABLE, ErrorCode.OVERLOADED, ErrorCode.IS_BOOTSTRAPPING,
    ErrorCode.WRITE_TIMEOUT, ErrorCode.WRITE_FAILURE, ErrorCode.READ_TIMEOUT, ErrorCode.READ_FAILURE,
    ErrorCode.CDC_WRITE_FAILURE, ErrorCode.CAS_WRITE_UNKNOWN, ErrorCode.TRUNCATE_ERROR})


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


def is_outage(outcome: Outcome) -> bool:
    """No answer in time, a lost connection, or an error of :data:`OUTAGE_ERRORS`."""
    if not isinstance(outcome, Frame):
        return True
    if outcome.opcode != Opcode.ERROR:
        return False
    return m.decode_error(outcome.body, flags=outcome.flags).code in OUTAGE_ERRORS


class _Recovering:
    """Resend once a cluster that answered UNPREPARED has the statement again, or hand the
    UNPREPARED to the client when its driver is the one to prepare again."""

    __slots__ = ()

    def client_prepares(self) -> bool:
        """True when an UNPREPARED from the cluster whose answer the client gets goes to the
        client: it runs the statements the client prepared (not a rewrite of the proxy's)."""
        if self.frame.opcode == Opcode.EXECUTE:
            return self.entry is not None and self.entry.exec_query is None
        return getattr(self, "plan", None) is None

    def for_client(self, cluster: Cluster, outcome: Outcome) -> Outcome:
        """``outcome``, with the prepared id of an UNPREPARED from ``cluster`` turned into the
        id the client knows (target may run a statement under an id of its own)."""
        pid = unprepared_id(outcome)
        if pid is None:
            return outcome
        entry = self.handler.ctx.prepared.on_cluster(cluster, pid)
        if entry is None or entry.origin_id == pid:
            return outcome
        message = m.decode_error(outcome.body, flags=outcome.flags).message
        return error_frame(outcome.version, outcome.stream, ErrorCode.UNPREPARED, message,
                           unprepared_id=entry.origin_id)

    def _forgotten(self, cluster: Cluster, outcome: Outcome) -> PreparedEntry | None:
        """The statement ``cluster`` forgot, when ``outcome`` is an UNPREPARED this request
        may still recover from; else None."""
        pid = unprepared_id(outcome)
        if pid is None or self.retries_left <= 0:
            return None
        return self.entry if self.frame.opcode == Opcode.EXECUTE else \
            self.handler.ctx.prepared.on_cluster(cluster, pid)

    def recover(self, cluster: Cluster, outcome: Frame, body: bytes, done: Callback) -> bool:
        """True when the ERROR ``outcome`` is an UNPREPARED this request recovers from (``done``
        will get the resent request's outcome); False to take ``outcome`` as it is."""
        entry = self._forgotten(cluster, outcome)
        if entry is None:
            return False
        handler = self.handler
        self.retries_left -= 1
        frame = self.frame

        def then(instead: Outcome | None) -> None:
            if instead is not None:
                done(instead)
                return
            handler.send_to(cluster, frame.flags, frame.opcode,
                            handler.resend_body(cluster, frame, body, entry, self), done)

        handler.reprepare(cluster, entry, frame, then)
        return True


class Single(_Recovering):
    """A request for one cluster; its answer goes to the client."""

    __slots__ = ("handler", "frame", "cluster", "body", "entry", "retries_left", "on_success", "kind",
                 "t0")

    def __init__(self, handler, frame: Frame, cluster: Cluster, body: bytes,
                 entry: PreparedEntry | None, retries: int, on_success=None) -> None:
        self.handler = handler
        self.kind = "writes"  # the request's type and when it arrived, for the metrics (t0 0: off)
        self.t0 = 0.0
        self.frame = frame
        self.cluster = cluster
        self.body = body
        self.entry = entry
        self.retries_left = retries
        self.on_success = on_success

    def send(self, route: Route | None = None) -> None:
        self.handler.send_to(self.cluster, self.frame.flags, self.frame.opcode, self.body, self.done, None, route)

    def done(self, outcome: Outcome) -> None:
        if outcome.__class__ is Frame and outcome.opcode == Opcode.ERROR and unprepared_id(outcome):
            if self.client_prepares():
                outcome = self.for_client(self.cluster, outcome)
            elif self.retries_left and self.recover(self.cluster, outcome, self.body, self.done):
                return
        frame = self.frame
        failed = aggregate.failed(outcome)
        if self.on_success is not None and not failed:
            self.on_success(outcome, None)
        if failed and self.t0 and self.kind != "writes":
            self.handler.ctx.stats.failed_reads[self.cluster.value] += 1
        self.handler.answer(frame.stream, outcome if isinstance(outcome, Frame)
                            else failure_frame(frame.version, frame.stream, outcome), self)


class Dual(_Recovering):
    """A request for both clusters; the client gets one answer once both are in."""

    __slots__ = ("handler", "frame", "origin_body", "target_body", "entry", "on_success",
                 "origin", "target", "retries_left", "conditional", "primary", "recordable", "plan",
                 "kind", "t0")

    def __init__(self, handler, frame: Frame, origin_body: bytes, target_body: bytes,
                 entry: PreparedEntry | None, retries: int, on_success=None) -> None:
        self.handler = handler
        self.kind, self.t0 = "writes", 0.0
        # a PREPARE answers with origin's id, always; everything else with the primary's answer
        self.primary = Cluster.ORIGIN if frame.opcode == Opcode.PREPARE else handler.ctx.routing.primary
        self.frame = frame
        self.origin_body = origin_body
        self.target_body = target_body
        self.entry = entry
        self.retries_left = retries
        self.on_success = on_success
        self.origin: Outcome | None = None  # each cluster's outcome, once it is in
        self.target: Outcome | None = None
        self.conditional = False  # an LWT: the two results are compared
        self.recordable = False   # a data write that record mode may record
        self.plan = None          # a BATCH rebuilt per cluster (function replacement)

    def send(self, route: Route | None = None) -> None:
        handler, frame = self.handler, self.frame
        # in record mode the secondary gets only the shorter wait; what it misses is recorded
        wait = handler.ctx.secondary_timeout if self.recordable else None
        handler.send_to(Cluster.ORIGIN, frame.flags, frame.opcode, self.origin_body, self.origin_done,
                        wait if self.primary is Cluster.TARGET else None, route)
        handler.send_to(Cluster.TARGET, frame.flags, frame.opcode, self.target_body, self.target_done,
                        wait if self.primary is Cluster.ORIGIN else None, route)

    def origin_done(self, outcome: Outcome) -> None:
        self.origin = outcome
        if self.target is not None:
            self._complete()

    def target_done(self, outcome: Outcome) -> None:
        self.target = outcome
        if self.origin is not None:
            self._complete()

    def _recoveries(self, p: Outcome, s: Outcome) -> list[Cluster]:
        """The clusters whose UNPREPARED the proxy recovers from itself, once both answered.
        The primary's goes to the client (whose driver prepares again) unless the proxy
        rewrote the statement, or the secondary applied the request already; the secondary's
        is recovered only if the primary took the request (otherwise the client retries it)."""
        secondary = Cluster.TARGET if self.primary is Cluster.ORIGIN else Cluster.ORIGIN
        p_unprepared = self._forgotten(self.primary, p) is not None
        s_unprepared = self._forgotten(secondary, s) is not None
        if not p_unprepared and not s_unprepared:
            return []
        if not self.client_prepares():
            return [c for c, u in ((self.primary, p_unprepared), (secondary, s_unprepared)) if u]
        if p_unprepared:
            return [self.primary] if not aggregate.failed(s) else []
        return [secondary] if not aggregate.failed(p) else []

    def _complete(self) -> None:
        handler, frame = self.handler, self.frame
        p, s = (self.origin, self.target) if self.primary is Cluster.ORIGIN else (self.target, self.origin)
        if (p.__class__ is Frame and p.opcode == Opcode.ERROR) or \
                (s.__class__ is Frame and s.opcode == Opcode.ERROR):
            recover = self._recoveries(p, s)
            if recover:
                for cluster in recover:  # both unset first: a recovery may finish at once
                    setattr(self, cluster.value, None)
                for cluster in recover:
                    outcome = p if cluster is self.primary else s
                    if cluster is Cluster.ORIGIN:
                        self.recover(cluster, outcome, self.origin_body, self.origin_done)
                    else:
                        self.recover(cluster, outcome, self.target_body, self.target_done)
                return
            p = self.for_client(self.primary, p)
        if self.recordable and not aggregate.failed(p) and is_outage(s):
            handler.record_secondary_failure(self, p, s)  # answers once the record is durable
            return
        origin_failed, target_failed = aggregate.failed(self.origin), aggregate.failed(self.target)
        if not origin_failed and not target_failed:
            if self.on_success is not None:
                self.on_success(self.origin, self.target)
            if self.conditional:
                handler.compare_lwt(self)
        elif self.t0:
            handler.ctx.stats.failed_writes["both" if origin_failed and target_failed else
                                            "origin" if origin_failed else "target"] += 1
        handler.answer(frame.stream, failure_frame(frame.version, frame.stream,
                                                   aggregate.choose(p, s)), self)


class AsyncRead(_Recovering):
    """Phase 3: answer from the primary; also read the secondary and compare, off the
    client's path (its answer is never returned)."""

    __slots__ = ("handler", "frame", "primary", "origin_body", "target_body", "entry", "origin",
                 "target", "retries_left", "table", "kind", "t0")

    def __init__(self, handler, frame: Frame, primary: Cluster, origin_body: bytes,
                 target_body: bytes, entry: PreparedEntry | None, retries: int, table: str) -> None:
        self.handler = handler
        self.kind, self.t0 = "reads_origin", 0.0
        self.frame = frame
        self.primary = primary
        self.origin_body = origin_body
        self.target_body = target_body
        self.entry = entry
        self.retries_left = retries
        self.table = table
        self.origin: Outcome | None = None
        self.target: Outcome | None = None

    def send(self, route: Route | None = None) -> None:
        handler, frame = self.handler, self.frame
        handler.send_to(Cluster.ORIGIN, frame.flags, frame.opcode, self.origin_body, self.origin_done, None, route)
        handler.send_to(Cluster.TARGET, frame.flags, frame.opcode, self.target_body, self.target_done, None, route)

    def origin_done(self, outcome: Outcome) -> None:
        if self._recovered(Cluster.ORIGIN, outcome, self.origin_body, self.origin_done):
            return
        self.origin = outcome
        self._record(Cluster.ORIGIN, outcome)

    def target_done(self, outcome: Outcome) -> None:
        if self._recovered(Cluster.TARGET, outcome, self.target_body, self.target_done):
            return
        self.target = outcome
        self._record(Cluster.TARGET, outcome)

    def _recovered(self, cluster: Cluster, outcome: Outcome, body: bytes, done: Callback) -> bool:
        """The primary's UNPREPARED goes to the client; the compared read prepares again."""
        if not self.retries_left or outcome.__class__ is not Frame or outcome.opcode != Opcode.ERROR:
            return False
        if cluster is self.primary and self.client_prepares():
            return False
        return self.recover(cluster, outcome, body, done)

    def _record(self, cluster: Cluster, outcome: Outcome) -> None:
        handler, frame = self.handler, self.frame
        if cluster is self.primary:
            if self.t0 and aggregate.failed(outcome):
                handler.ctx.stats.failed_reads[cluster.value] += 1
            handler.answer(frame.stream, failure_frame(frame.version, frame.stream,
                                                       self.for_client(cluster, outcome)), self)
        elif self.t0:  # the async read's own latency and failures, per node
            node = handler.ctx.stats.node(cluster.value, handler.nodes.get(cluster, "?"), async_reads=True)
            if isinstance(outcome, Frame):
                node.answered(time.monotonic() - self.t0, outcome)
            else:
                node.failed("client_timeout")
        if self.origin is not None and self.target is not None:
            p, s = (self.origin, self.target) if self.primary is Cluster.ORIGIN else (self.target, self.origin)
            handler.ctx.stats.compare_async_read(p, s, frame.version, self.table, self.describe)

    def describe(self) -> str:
        """The row this read asked for, as a sample of where the clusters differ."""
        return self.handler.describe(self.frame, self.entry)
