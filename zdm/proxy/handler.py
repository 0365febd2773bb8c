"""The request path of one client connection once its handshake is done: pure, no I/O.

Theory of operation (mitmproxy's layers, zdm-proxy's rules): a :class:`RequestHandler`
imports neither asyncio nor the server.  It is given

* ``send``, one callable per cluster: ``send(flags, opcode, body, callback[, timeout])``
  forwards a request on that cluster's connection and later calls ``callback(outcome)``
  exactly once, with the answer frame or a :class:`~zdm.proxy.aggregate.Failure`;
* ``reply(stream, frame)``, which writes ``frame`` to the client as the answer on ``stream``;
* a :class:`Context` shared by the worker's connections: the routing (read when a request
  arrives, so a routing change applies to later requests and never moves one in flight),
  the scope, the prepared-id cache, the counters, the virtual topology and the clock.

Each request is decoded only as far as :func:`~zdm.proxy.routing.decide` needs, sent where
it says, and finished by a pending object (:mod:`~zdm.proxy.pending`).  Writes sent to both
clusters carry one client-side timestamp (added when the client sent none), so both store
the same writetime; with ``proxy.replace_cql_functions`` they also carry one generated value
for each ``now()``, ``uuid()``... (:mod:`~zdm.proxy.functions`).  Disagreements between the
clusters are counted and recorded by :mod:`~zdm.proxy.divergence`.

Invariant: every request accepted (``in_flight`` incremented) is answered exactly once.
"""

from __future__ import annotations

import time
from typing import Callable, Collection, Iterable, Mapping

from zdm.cql import messages as m
from zdm.cql.classify import Statement, StatementKind, classify
from zdm.cql.compression import offered
from zdm.cql.constants import (CUSTOM_PAYLOAD, MAX_VERSION, SKIP_METADATA, SUPPORTED_VERSIONS,
                               WITH_PAGING_STATE, ErrorCode, Opcode, ResultKind)
from zdm.cql.errors import ProtocolError
from zdm.cql.frame import Frame
from zdm.phases.model import Cluster, Routing
from zdm.proxy import divergence, functions
from zdm.proxy.aggregate import Outcome
from zdm.proxy.pending import AsyncRead, Dual, Route, Single, error_frame, failure_frame
from zdm.proxy.prepared import PreparedCache, PreparedEntry
from zdm.proxy.routing import REFUSALS, Destination, decide
from zdm.proxy.cluster_topology import ClusterTopology
from zdm.proxy.routing_key import Partition, children_partition, execute_partition, key_markers
from zdm.proxy.schema import KeySchema
from zdm.proxy.stats import ProxyStats
from zdm.proxy.topology import Instance, VirtualTopology
from zdm.scope import Scope

Callback = Callable[[Outcome], None]
Send = Callable[..., None]
Reply = Callable[[int, Frame], None]
Record = Callable[[dict, Callable[[BaseException | None], None] | None], None]
Replicas = Callable[[Cluster, "Partition", tuple[PreparedEntry, ...]], Send | None]

__all__ = ["Context", "RequestHandler", "error_frame", "failure_frame", "now_us", "supported_body"]


def supported_body(max_version: int = MAX_VERSION, compression: Iterable[str] = ()) -> bytes:
    """The answer to OPTIONS: what the proxy lets a client negotiate: the protocol versions
    both clusters speak and ``compression``, the algorithms both offer on the version asked
    (:func:`zdm.cql.compression.offered`)."""
    return m.encode_supported({"CQL_VERSION": ["3.4.7"], "COMPRESSION": list(compression),
                               "PROTOCOL_VERSIONS": [f"{v}/v{v}" for v in SUPPORTED_VERSIONS
                                                     if v <= max_version]})


def now_us() -> int:
    return time.time_ns() // 1000


class Context:
    """What every client connection of one worker shares."""

    __slots__ = ("routing", "scope", "prepared", "stats", "topology", "me", "clock", "draining",
                 "name", "divergences", "secondary_timeout", "replace_functions", "max_version",
                 "compression", "supported_bodies", "metrics", "schema", "clusters", "token_aware",
                 "_token_aware_on")

    def __init__(self, *, routing: Routing, topology: VirtualTopology, me: Instance,
                 scope: Scope = Scope(), prepared: PreparedCache | None = None,
                 stats: ProxyStats | None = None, clock: Callable[[], int] = now_us,
                 name: str = "zdm-proxy", divergences: Record | None = None,
                 secondary_timeout: float | None = None, replace_functions: bool = False,
                 max_version: int = MAX_VERSION, metrics: bool = True,
                 compression: Mapping[Cluster, Collection[str]] | None = None,
                 schema: KeySchema | None = None,
                 clusters: Mapping[Cluster, ClusterTopology] | None = None,
                 token_aware: bool = False) -> None:
        self.routing = routing
        self.scope = scope  # statements outside it go to origin only
        self.topology = topology
        self.me = me
        self.prepared = prepared if prepared is not None else PreparedCache()
        self.stats = stats if stats is not None else ProxyStats()
        self.clock = clock  # microseconds since the epoch, for client-side timestamps
        self.draining = False
        self.name = name  # this proxy, as its records name it
        #: divergences(record, done): keeps a record durably (zdm.state.divergences)
        self.divergences = divergences
        #: `proxy.secondary_write_failure: record`: how long the secondary may take before a
        #: write it has not answered is recorded and acknowledged; None: `fail` mode
        self.secondary_timeout = secondary_timeout
        #: `proxy.replace_cql_functions`: now(), uuid()... get one value for both clusters
        self.replace_functions = replace_functions
        #: the newest protocol version both clusters speak: newer clients are told to downgrade
        self.max_version = max_version
        #: the compression algorithms each cluster offers (its SUPPORTED answer, lower case):
        #: a cluster connection is compressed only with one of them
        self.compression = {c: frozenset(a.lower() for a in (compression or {}).get(c, ()))
                            for c in Cluster}
        #: the answer to OPTIONS, per protocol version (v5 has no Snappy)
        self.supported_bodies = {v: supported_body(max_version, offered(v, *self.compression.values()))
                                 for v in SUPPORTED_VERSIONS}
        #: time every request (and count its failures) for the metrics
        self.metrics = metrics
        #: origin's primary keys (zdm.proxy.schema.KeySchema), as the instance last published
        #: them: only the records of divergences read it
        self.schema = schema
        #: each cluster's real topology (zdm.proxy.cluster_topology), as the instance last
        #: published it; a cluster whose topology was not read yet is absent
        self.clusters: dict[Cluster, ClusterTopology] = {}
        #: `proxy.token_aware`, and whether a cluster has several nodes to choose from: a
        #: request's partition is worked out only then (:mod:`~zdm.proxy.token_aware`)
        self._token_aware_on = token_aware
        self.token_aware = False
        for cluster, topology in (clusters or {}).items():
            self.set_cluster(cluster, topology)

    def set_cluster(self, cluster: Cluster, topology: ClusterTopology) -> None:
        """``cluster``'s topology as the instance just published it."""
        self.clusters[cluster] = topology
        self.token_aware = self._token_aware_on and any(len(t.nodes) > 1 for t in self.clusters.values())


class RequestHandler:
    __slots__ = ("ctx", "version", "keyspace", "in_flight", "nodes", "who", "registered",
                 "_send_origin", "_send_target", "_reply", "replicas")

    def __init__(self, ctx: Context, version: int, send: Mapping[Cluster, Send], reply: Reply, *,
                 keyspace: str | None = None, nodes: Mapping[Cluster, str] | None = None,
                 who: dict | None = None, replicas: Replicas | None = None) -> None:
        self.who = who or {}  # the connection, for log lines (zdm.logs.client)
        self.ctx = ctx
        self.version = version
        self.keyspace = keyspace  # the connection's keyspace, as USE set it on both clusters
        self.in_flight = 0
        self.nodes = dict(nodes or {})  # "host:port" of the node this connection uses on each cluster
        self.registered: bytes | None = None  # the client's REGISTER (events from origin)
        self._send_origin = send[Cluster.ORIGIN]
        self._send_target = send[Cluster.TARGET]
        self._reply = reply
        #: replicas(cluster, partition, entries): the send to a replica of ``partition`` on
        #: ``cluster`` that has prepared ``entries``, or None (:mod:`~zdm.proxy.token_aware`)
        self.replicas = replicas

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

    def answer(self, stream: int, frame: Frame, pending=None) -> None:
        """Send ``frame`` to the client as the answer to the request on ``stream`` (which
        ``pending`` was waiting for: it is timed)."""
        self.in_flight -= 1
        stats = self.ctx.stats
        stats.requests += 1
        if pending is not None and pending.t0:
            stats.finished(pending.kind, time.monotonic() - pending.t0)
        self._reply(stream, frame)

    def rebind(self, cluster: Cluster, send: Send, *, node: str | None = None) -> None:
        """From now on, send to ``cluster`` with ``send`` (a new connection, or a queue while
        one is made: :mod:`~zdm.proxy.reconnect`)."""
        if cluster is Cluster.ORIGIN:
            self._send_origin = send
        else:
            self._send_target = send
        if node is not None:
            self.nodes[cluster] = node

    def send_to(self, cluster: Cluster, flags: int, opcode: int, body: bytes, callback: Callback,
                timeout: float | None = None, route: Route | None = None) -> None:
        if route is not None:  # token-aware: a replica, when one is ready
            send = self.replicas(cluster, *route)
            if send is not None:
                send(flags, opcode, body, callback, timeout)
                return
        if cluster is Cluster.ORIGIN:
            self._send_origin(flags, opcode, body, callback, timeout)
        else:
            self._send_target(flags, opcode, body, callback, timeout)

    def _dispatch(self, frame: Frame) -> None:
        op = frame.opcode
        if frame.version != self.version:
            raise ProtocolError(f"frame of protocol v{frame.version} on a v{self.version} connection")
        if op == Opcode.OPTIONS:
            self._local(frame, Opcode.SUPPORTED, self.ctx.supported_bodies[frame.version])
        elif op == Opcode.EXECUTE:
            self._execute(frame)
        elif op == Opcode.QUERY:
            self._query(frame)
        elif op == Opcode.BATCH:
            self._batch(frame)
        elif op == Opcode.PREPARE:
            self._prepare(frame)
        elif op == Opcode.REGISTER:
            self.registered = frame.body
            self._forward(frame, self._decide(op), frame.body, frame.body)
        elif op in (Opcode.STARTUP, Opcode.AUTH_RESPONSE):
            raise ProtocolError(f"{op.name} after the handshake completed")
        else:
            raise ProtocolError(f"unexpected {getattr(op, 'name', op)} request")

    def _decide(self, opcode: int, stmt: Statement | None = None, keyspace: str | None = None,
                paged: bool = False, children: tuple[Statement, ...] = ()):
        """:func:`~zdm.proxy.routing.decide` with what this worker knows right now."""
        ctx = self.ctx
        return decide(opcode, stmt, session_keyspace=keyspace, paged=paged, routing=ctx.routing, scope=ctx.scope,
                      children=children, draining=ctx.draining, virtual_tables=ctx.topology.tables)

    def _refuse(self, frame: Frame, dest: Destination, stmt: Statement | None) -> None:
        if dest is Destination.DRAINING:
            self._error(frame, ErrorCode.OVERLOADED, "zdm proxy is shutting down; retry on another node")
        else:  # a virtual system table origin's release lacks (peers_v2 before 4.0)
            self._error(frame, ErrorCode.INVALID, f"unconfigured table {stmt.table}")

    def _local(self, frame: Frame, opcode: int, body: bytes) -> None:
        self.in_flight += 1
        self.answer(frame.stream, Frame(frame.version, True, 0, frame.stream, opcode, body))

    def _error(self, frame: Frame, code: int, message: str, **kw) -> None:
        self.in_flight += 1
        self.answer(frame.stream, error_frame(frame.version, frame.stream, code, message, **kw))

    def _forward(self, frame: Frame, decision, origin_body: bytes, target_body: bytes,
                 entry: PreparedEntry | None = None, on_success=None, statements: int = 0,
                 stmt: Statement | None = None, plan=None, partition: Partition | None = None,
                 entries: tuple[PreparedEntry, ...] = ()) -> None:
        """Send a request where ``decision`` says (not PROXY), with each cluster's body.
        ``statements``: how many prepared statements it uses (an UNPREPARED answer is
        recovered from once per statement and cluster); ``stmt``: what it runs."""
        dest = decision.destination
        if dest in REFUSALS:
            self._refuse(frame, dest, stmt)
            return
        self.in_flight += 1
        ctx = self.ctx
        retries = statements or (1 if entry is not None else 0)
        if dest is Destination.BOTH:
            pending = Dual(self, frame, origin_body, target_body, entry, 2 * retries, on_success)
            if stmt is not None:
                pending.conditional = stmt.conditional
                pending.recordable = stmt.is_write and ctx.secondary_timeout is not None
            pending.plan = plan
        elif decision.async_secondary:
            primary = Cluster.ORIGIN if dest is Destination.ORIGIN else Cluster.TARGET
            pending = AsyncRead(self, frame, primary, origin_body, target_body, entry, 2 * retries,
                                self.table_of(stmt, entry))
        else:
            if decision.async_skipped:
                ctx.stats.skipped_async_read(self.table_of(stmt, entry))
            if dest is Destination.ORIGIN:
                pending = Single(self, frame, Cluster.ORIGIN, origin_body, entry, retries, on_success)
            else:
                pending = Single(self, frame, Cluster.TARGET, target_body, entry, retries, on_success)
        if ctx.metrics:
            pending.kind = "writes" if stmt is None or not stmt.is_read else \
                "reads_origin" if dest is Destination.ORIGIN else "reads_target"
            pending.t0 = time.monotonic()
            ctx.stats.started(pending.kind)
        pending.send(None if partition is None else (partition, entries))

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
        ctx = self.ctx
        decision = self._decide(Opcode.QUERY, stmt, keyspace=self.keyspace,
                                paged=bool(info.flags & WITH_PAGING_STATE))
        if decision.destination is Destination.PROXY:
            self._local(frame, Opcode.RESULT, ctx.topology.answer(stmt.table, info.query, ctx.me))
            return
        body = frame.body
        if decision.destination is Destination.BOTH and stmt.is_write:
            now = ctx.clock()
            if ctx.replace_functions and (found := functions.calls(info.query)):
                body = m.replace_query(body, functions.with_literals(info.query, found, now),
                                       flags=frame.flags)
            if not info.has_timestamp:
                body = m.add_default_timestamp(Opcode.QUERY, body, frame.version, now, flags=frame.flags)
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
        decision = self._decide(Opcode.PREPARE, stmt, keyspace=keyspace)
        if ctx.replace_functions and stmt.is_write and decision.destination is Destination.BOTH \
                and (found := functions.calls(info.query)):
            rewritten = functions.with_markers(info.query, found)
            if rewritten is not None:
                self.in_flight += 1
                functions.PrepareRewritten(self, frame, info.query, keyspace, stmt, rewritten).send()
                return

        def prepared(o: Frame, t: Frame | None) -> None:
            """Both clusters (or origin alone, for what target never executes) prepared it;
            the client gets origin's answer, and so origin's id."""
            version = frame.version
            po = m.decode_prepared_result(o.body, version, flags=o.flags)
            pt = m.decode_prepared_result(t.body, version, flags=t.flags) if t is not None else None
            meta = m.decode_prepared_metadata(o.body, version, flags=o.flags)
            virtual = decide(Opcode.EXECUTE, stmt, session_keyspace=keyspace, paged=False,
                             routing=ctx.routing).destination is Destination.PROXY
            ctx.prepared.put(PreparedEntry(info.query, keyspace, stmt, po.prepared_id,
                                           pt.prepared_id if pt else None, po.result_metadata_id,
                                           pt.result_metadata_id if pt else None,
                                           meta.columns if virtual else None, meta.binds,
                                           key_markers=key_markers(meta)))

        self._forward(frame, decision, frame.body, frame.body, on_success=prepared)

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
        decision = self._decide(Opcode.EXECUTE, stmt, keyspace=entry.keyspace,
                                paged=bool(query_flags & WITH_PAGING_STATE))
        dest = decision.destination
        if dest is Destination.PROXY:
            self._local(frame, Opcode.RESULT, self._virtual_answer(entry, query_flags))
            return
        target_body = body if entry.target_id is None else _for_target(frame, entry)
        if dest is Destination.BOTH and stmt.is_write:  # kept if the client sent a timestamp
            ts = ctx.clock()
            if entry.slots:  # rewritten: both run it with the same generated values
                values = functions.fill(m.execute_values(body, version, flags=frame.flags), entry.slots, ts)
                target_body = m.rebuild_execute(body, version, entry.target_id, entry.target_metadata_id,
                                                values, flags=frame.flags)
                body = m.rebuild_execute(body, version, entry.origin_exec_id, entry.origin_exec_metadata_id,
                                         values, flags=frame.flags)
            origin_body = m.add_default_timestamp(Opcode.EXECUTE, body, version, ts, flags=frame.flags)
            target_body = origin_body if target_body is frame.body else \
                m.add_default_timestamp(Opcode.EXECUTE, target_body, version, ts, flags=frame.flags)
            body = origin_body
        partition = None
        if ctx.token_aware and entry.key_markers is not None and self.replicas is not None:
            partition = execute_partition(frame.body, version, entry.key_markers, flags=frame.flags)
        self._forward(frame, decision, body, target_body, entry, stmt=stmt, partition=partition,
                      entries=(entry,))

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
        statements = tuple(classify(c.query) if c.kind == 0 else ctx.prepared.get(c.prepared_id).statement
                           for c in info.children)
        decision = self._decide(Opcode.BATCH, keyspace=self.keyspace, children=statements)
        ts = None if info.has_timestamp else ctx.clock()
        plan = functions.BatchPlan.of(self, frame, info, ts) \
            if ctx.replace_functions and decision.destination is Destination.BOTH else None
        if plan is not None:
            origin_body, target_body = plan.build(Cluster.ORIGIN), plan.build(Cluster.TARGET)
        else:
            origin_body = frame.body if ts is None else \
                m.add_default_timestamp(Opcode.BATCH, frame.body, frame.version, ts, flags=frame.flags)
            target_body = self.batch_for_target(frame, origin_body, ids) \
                if decision.destination is Destination.BOTH else origin_body
        conditional = any(s.conditional for s in statements)
        partition, entries = None, ()
        if ctx.token_aware and self.replicas is not None and plan is None and len(ids) == len(info.children):
            entries = tuple(ctx.prepared.get(pid) for pid in ids)
            partition = children_partition(info.children, (e.key_markers for e in entries))
        self._forward(frame, decision, origin_body, target_body, statements=len(set(ids)),
                      stmt=Statement(StatementKind.BATCH, conditional=conditional), plan=plan,
                      partition=partition, entries=entries)

    def batch_for_target(self, frame: Frame, origin_body: bytes, ids: list[bytes]) -> bytes:
        mapping = self.ctx.prepared.target_ids(ids)
        return m.replace_batch_ids(origin_body, frame.version, mapping, flags=frame.flags) \
            if mapping else origin_body

    # -- disagreements (zdm.proxy.divergence) ------------------------------------------
    def compare_lwt(self, dual: Dual) -> None:
        divergence.compare_lwt(self.ctx, self.keyspace, dual)

    def record_secondary_failure(self, dual: Dual, primary: Frame, secondary: Outcome) -> None:
        divergence.record_secondary_failure(self.ctx, self.keyspace, dual, primary, secondary,
                                            lambda stream, frame: self.answer(stream, frame, dual))

    def describe(self, frame: Frame, entry: PreparedEntry | None) -> str:
        return divergence.describe(self.ctx, self.keyspace, frame, entry)

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
        body = m.encode_prepare(entry.run_query, version,
                                keyspace=entry.keyspace if version >= 5 else None)

        def prepared(outcome: Outcome) -> None:
            if not isinstance(outcome, Frame) or outcome.opcode != Opcode.RESULT:
                then(outcome)
                return
            result = m.decode_prepared_result(outcome.body, version, flags=outcome.flags)
            if cluster is Cluster.ORIGIN and entry.exec_query is None and \
                    result.prepared_id != entry.origin_id:  # the client's id no longer works
                then(error_frame(version, frame.stream, ErrorCode.UNPREPARED,
                                 "zdm proxy: statement must be prepared again",
                                 unprepared_id=entry.origin_id))
                return
            self.ctx.prepared.reprepared(entry, cluster, result.prepared_id, result.result_metadata_id)
            then(None)

        self.send_to(cluster, 0, Opcode.PREPARE, body, prepared)

    def resend_body(self, cluster: Cluster, frame: Frame, body: bytes, entry: PreparedEntry | None,
                    pending) -> bytes:
        """The body to send ``cluster`` again once it has prepared the statements anew."""
        if frame.opcode == Opcode.EXECUTE:
            if cluster is Cluster.ORIGIN and entry.exec_query is None:
                return body
            if cluster is Cluster.ORIGIN:
                return m.replace_execute_id(body, frame.version, entry.origin_exec_id,
                                            entry.origin_exec_metadata_id, flags=frame.flags)
            return m.replace_execute_id(body, frame.version, entry.target_id,
                                        entry.target_metadata_id if entry.exec_query else None,
                                        flags=frame.flags)
        plan = getattr(pending, "plan", None)
        if plan is not None:
            return plan.build(cluster)
        if cluster is Cluster.ORIGIN:
            return pending.origin_body
        ids = [c.prepared_id for c in m.decode_batch(pending.origin_body, frame.version,
                                                     flags=frame.flags).children if c.kind == 1]
        return self.batch_for_target(frame, pending.origin_body, ids)


def _for_target(frame: Frame, entry: PreparedEntry) -> bytes:
    """The client's EXECUTE under target's prepared id.  Its v5 result metadata id stays the
    client's: Cassandra derives that id from the result columns themselves, so target answers
    METADATA_CHANGED (with the columns) exactly when what the client holds is not what target
    returns, as it would to the client directly."""
    if entry.target_id == entry.origin_id:
        return frame.body
    return m.replace_execute_id(frame.body, frame.version, entry.target_id, flags=frame.flags)
