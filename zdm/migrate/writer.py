"""The copy's writes to target, batched: :class:`BatchWriter` binds each write and sends
it in an UNLOGGED batch (a COUNTER batch for counter tables) with writes of partitions on
the same target replicas (:mod:`zdm.ranges.batches` decides), a bounded number in flight.

Theory of operation: the open batch holds a slot of the :class:`~zdm.migrate.aio.WriteWindow`
from its first write on, taken before anything is bound, so no write waits for room
after its TTL was counted down: a TTL read in a page counts down from when the page
arrived to when its batch opened, and the batch is sent as soon as it is full, without
yielding to the event loop in between.  Callers :meth:`flush` before awaiting anything
else (a read of target, the rate limiter) for the same reason, and at the end of a page.
Each statement inside a batch keeps its own ``USING TIMESTAMP`` and ``TTL``.

A batch whose every write carries its timestamp, has no TTL and sets what it sets (no
counter update, no list element added: :func:`idempotent`) is marked idempotent, so the
write window sends it again when target fails it retryably (a node died or timed out:
:mod:`zdm.ranges.failover`); writing the same cells at the same timestamps twice leaves
target as once.  Any other batch that fails fails its range, which the coordinator redoes
from its first row.
"""

from __future__ import annotations

import time

from zdm.migrate import aio
from zdm.migrate.cells import Assignment, Op, Write
from zdm.migrate.schema import Kind, TableSpec
from zdm.migrate.statements import statement_for, values_for
from zdm.ranges.batches import Batcher, estimate_size


class BatchWriter:
    def __init__(self, ctx, spec: TableSpec) -> None:
        from cassandra.query import BatchType

        self._ctx = ctx
        self._spec = spec
        self._window = aio.WriteWindow(ctx.run.write_window)
        self._batcher = Batcher(ctx.batch_limits)
        self._groups = ctx.replica_groups(spec.keyspace)
        self._npk = len(spec.partition_key)
        self._type = BatchType.COUNTER if spec.is_counter else BatchType.UNLOGGED
        #: the columns by name, when some are not simple (their cells are counted apart)
        self._columns = ({c.name: c for c in spec.columns}
                       if any(c.kind is not Kind.SIMPLE for c in spec.columns) else None)
        self._opened_at = 0.0
        self._idempotent = True  # every write of the open batch is (see idempotent())
        self._inserts: dict[tuple[str, ...], object] = {}  # add_row's statements, by columns set

    async def add(self, write: Write, key: tuple, token: int, read_at: float | None = None) -> None:
        """Queue ``write`` for the row ``key`` (its partition's token on origin), read at
        ``read_at`` (monotonic clock; None: TTLs are not counted down)."""
        spec = self._spec
        cells = self._cells(write) if self._columns else len(write.assignments)
        await self._queue(statement_for(self._ctx, spec, write),
                          lambda elapsed: values_for(spec, write, key, elapsed_s=elapsed),
                          cells, write.ttl, key, token, read_at, idempotent(spec, write))

    async def add_row(self, row: tuple, columns: tuple[tuple[str, int], ...], key: tuple, token: int,
                      read_at: float | None) -> bool:
        """The copy's fast lane, for a scan row whose ``columns`` (name, offset: all simple and
        exact) are all in one (writetime, TTL): queue the one INSERT that
        :func:`zdm.migrate.plan.plan_simple` plans for it, without making its
        :class:`~zdm.migrate.cells.Write`. False, queueing nothing, for any other row (cells
        at several writetimes or TTLs, or none): the caller plans it."""
        names = []
        values = []
        meta = None
        for name, offset in columns:
            value = row[offset]
            if value is None:
                continue
            m = (row[offset + 1], row[offset + 2] or 0)
            if meta is None:
                meta = m
            elif m != meta:
                return False
            names.append(name)
            values.append(value)
        if meta is None:
            return False
        shape = tuple(names)
        stmt = self._inserts.get(shape)
        if stmt is None:
            probe = Write(0, 0, tuple(Assignment(n, Op.SET, None) for n in names), insert=True)
            stmt = self._inserts[shape] = statement_for(self._ctx, self._spec, probe)
        writetime, ttl = meta
        if ttl:
            def params(elapsed: int) -> list:
                return [*key, *values, writetime, max(1, ttl - elapsed)]
        else:
            def params(_elapsed: int) -> list:
                return [*key, *values, writetime, 0]
        await self._queue(stmt, params, len(names), ttl, key, token, read_at, not ttl)
        return True

    async def _queue(self, stmt, params, cells: int, ttl: int, key: tuple, token: int,
                     read_at: float | None, idem: bool) -> None:
        """Bind ``params(seconds since the row was read)`` to ``stmt`` and put it in the open
        batch, or in a new one when it does not fit."""
        batcher = self._batcher
        if not batcher.items:
            await self._open()
        elapsed = int(self._opened_at - read_at) if read_at is not None and ttl else 0
        bound = bind(stmt, params(elapsed))
        size = estimate_size(bound[1], cells)
        group = self._groups.group_of(token)
        partition = key[:self._npk]
        if not batcher.fits(group, partition, size):
            self._send()
            await self._open()
            if read_at is not None and ttl and int(self._opened_at - read_at) != elapsed:
                bound = bind(stmt, params(int(self._opened_at - read_at)))
        batcher.add(bound, group, partition, size)
        self._idempotent = self._idempotent and idem

    def flush(self) -> None:
        """Send the open batch, if any."""
        if self._batcher.items:
            self._send()

    async def drain(self) -> None:
        """Send the open batch and wait until every write is acknowledged (raises the first
        failure)."""
        self.flush()
        await self._window.drain()

    async def _open(self) -> None:
        await self._window.acquire()
        self._opened_at = time.monotonic()

    def _send(self) -> None:
        batch = batch_of(self._batcher.take(), self._type, self._ctx.write_cl, self._spec.keyspace)
        batch.is_idempotent = self._idempotent
        self._idempotent = True
        self._window.send(self._ctx.target, batch)

    def _cells(self, write: Write) -> int:
        """The cells ``write`` makes on target, a list element counting two (its path is a
        time UUID) and a counter three (its value is a context of shards)."""
        n = 0
        for a in write.assignments:
            column = self._columns[a.column]
            kind = column.kind
            if kind is Kind.SIMPLE or a.op is Op.FIELD:
                n += 1
            elif kind is Kind.COUNTER:
                n += 3
            elif kind is Kind.UDT:  # whole, by the fallback
                n += len(column.fields) + 1
            else:  # elements, plus the collection's tombstone when it is set whole
                n += (2 if kind is Kind.LIST else 1) * len(a.value) + 1
        return n


def idempotent(spec: TableSpec, write: Write) -> bool:
    """Whether sending ``write`` again later leaves target as sending it once: it carries its
    timestamp (not a counter update), has no TTL (counted down when the batch opened, it would
    make the cell outlive origin's by the wait), and adds no list element (an element's cell
    name is a time UUID the coordinator makes up, so a second append is a second element)."""
    if write.timestamp is None or write.chain is not None or write.ttl:
        return False
    for a in write.assignments:
        if a.op is Op.PREPEND or a.op is Op.INCR:
            return False
        if a.op is Op.ADD and any(c.name == a.column and c.kind is Kind.LIST for c in spec.columns):
            return False
    return True


# -- binding: the one place that reaches into the driver's BatchStatement -------------------
#
# BoundStatement.bind serializes each value with its column's type and builds an object that
# BatchStatement.add then takes apart again (a batch keeps only (prepared, query id, values)).
# Serializing straight into that triple costs a third of binding and adding, a fifth of the
# copy's CPU per row.  It relies on BatchStatement._add_statement_and_params (cassandra-driver
# 3.x); without it, or when a value does not serialize, the driver's own bind runs instead
# (tests/integration/test_migrate_batched_copy.py checks that both make the same batch).

_serializers: dict[int, tuple] = {}


def bind(stmt, params: list) -> tuple:
    """(``stmt``, ``params`` serialized as ``stmt.bind(params)`` serializes them, and the
    BoundStatement when the driver's bind made them, else None)."""
    if _DIRECT:
        sers = _serializers.get(id(stmt))
        if sers is None or sers[0] is not stmt:
            sers = _serializers[id(stmt)] = (stmt, [c.type.serialize for c in stmt.column_metadata])
        version = stmt.protocol_version
        try:
            return stmt, [None if v is None else ser(v, version) for ser, v in zip(sers[1], params)], None
        except Exception:  # noqa: BLE001 - the driver's bind below says which column, and why
            pass
    bound = stmt.bind(params)
    return stmt, bound.values, bound


def batch_of(items: list[tuple], batch_type, consistency: int, keyspace: str):
    """A BatchStatement of :func:`bind` results, routed by the first one's partition key."""
    from cassandra.query import BatchStatement

    batch = BatchStatement(batch_type, consistency_level=consistency)
    for stmt, values, bound in items:
        if bound is None:
            batch._add_statement_and_params(True, stmt.query_id, values)
        else:
            batch.add(bound)
    first, values, _bound = items[0]
    if first.routing_key_indexes:
        batch.keyspace = keyspace
        batch.routing_key = [values[i] for i in first.routing_key_indexes]
    return batch


def _direct() -> bool:
    from cassandra.query import BatchStatement

    return callable(getattr(BatchStatement(), "_add_statement_and_params", None))


_DIRECT = _direct()
