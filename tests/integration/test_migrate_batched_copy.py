"""The batched copy: many small partitions and one wide partition copied cell for cell (values,
writetimes, TTLs), in batches within target's limits, which target accepts without a warning."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import pytest

from migrate_fixtures import assert_exact_copy, run_settings
from zdm.migrate import writer
from zdm.migrate.copy import copy_range
from zdm.migrate.schema import tables_in_scope
from zdm.ranges.batches import BatchLimits, Batcher
from zdm.ranges.context import WorkerContext
from zdm.ranges.ring import split_ring
from zdm.scope import Scope

TS = 1_650_000_000_000_000


class RecordingBatcher(Batcher):
    """The batcher, noting each batch it closes: (partitions, estimated bytes, statements)."""

    closed: list[tuple[int, int, int]] = []

    def add(self, item, group, partition, size):
        if not self.items:
            self._seen = set()
            self._size = 0
        self._seen.add(partition)
        self._size += size
        super().add(item, group, partition, size)

    def take(self):
        if self.items:
            RecordingBatcher.closed.append((len(self._seen), self._size, len(self.items)))
        return super().take()


class CountingSession:
    """A driver session that counts the requests sent through it, by statement type."""

    def __init__(self, session) -> None:
        self._session = session
        self.requests: Counter = Counter()

    def execute_async(self, statement, *args, **kwargs):
        self.requests[type(statement).__name__] += 1
        return self._session.execute_async(statement, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._session, name)


@pytest.fixture()
def recorded(monkeypatch):
    RecordingBatcher.closed = []
    monkeypatch.setattr(writer, "Batcher", RecordingBatcher)
    return RecordingBatcher.closed


def copy_table(zdm_config, origin_session, ks: str, table: str, limits: BatchLimits | None,
               **run) -> tuple[int, CountingSession, BatchLimits]:
    """Every range of ``table`` copied by ``copy_range`` in this process, four at a time."""
    (spec,) = tables_in_scope(origin_session.cluster.metadata, Scope((ks,), tables=(f"{ks}.{table}",)))
    ctx = WorkerContext(zdm_config, run_settings(**run))
    try:
        if limits is not None:
            ctx.batch_limits = limits
        ctx.target = counting = CountingSession(ctx.target)

        async def copy_all() -> int:
            ranges = split_ring([], 16)
            counts = []
            while ranges:
                batch, ranges = ranges[:4], ranges[4:]
                counts += await asyncio.gather(*(copy_range(ctx, spec, r) for r in batch))
            return sum(counts)

        return asyncio.run(copy_all()), counting, ctx.batch_limits
    finally:
        ctx.close()


LIMITS = [None, BatchLimits(max_bytes=400, max_partitions=3)]
LIMIT_IDS = ["target's limits", "tight limits"]


def _no_batch_warnings(caplog) -> None:
    warned = [r.getMessage() for r in caplog.records if "Server warning" in r.getMessage()]
    assert not warned, warned[:3]


@pytest.mark.parametrize("limits", LIMITS, ids=LIMIT_IDS)
def test_many_small_partitions_copy_exactly_in_few_batches(limits, keyspace, zdm_config, origin_session,
                                                           target_session, recorded, caplog):
    caplog.set_level(logging.WARNING)
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.small (k int PRIMARY KEY, v text, n bigint, m map<text, int>)")
    ins = origin_session.prepare(f"INSERT INTO {keyspace}.small (k, v, n, m) VALUES (?, ?, ?, ?) "
                                 "USING TIMESTAMP ? AND TTL ?")
    upd = origin_session.prepare(f"UPDATE {keyspace}.small USING TIMESTAMP ? AND TTL ? "
                                 "SET n = ?, m['late'] = ? WHERE k = ?")
    rows = 3000
    futures = [origin_session.execute_async(ins, (k, f"v{k}", k, {"a": k}, TS + k, 86400 if k % 3 == 0 else 0))
               for k in range(rows)]
    futures += [origin_session.execute_async(upd, (TS + 10_000 + k, 3600, -k, k, k))  # a second group
                for k in range(0, rows, 5)]
    for f in futures:
        f.result()

    t0 = time.monotonic()
    copied, target, used = copy_table(zdm_config, origin_session, keyspace, "small", limits)
    assert copied == rows
    assert assert_exact_copy(origin_session, target_session, keyspace, time.monotonic() - t0) == rows
    # an INSERT of the simple cells and an UPDATE of the map's per row, the later group's UPDATE
    writes = 2 * rows + rows // 5
    assert sum(n for _, _, n in recorded) == writes
    assert all(parts <= used.max_partitions for parts, _, _ in recorded)
    assert all(size <= used.max_bytes for _, size, n in recorded if n > 1)
    assert sum(target.requests.values()) <= writes / (2 if limits else 5)
    _no_batch_warnings(caplog)


@pytest.mark.parametrize("limits", LIMITS, ids=LIMIT_IDS)
def test_a_wide_partition_with_statics_and_ttls_copies_exactly(limits, keyspace, zdm_config, origin_session,
                                                               target_session, recorded, caplog):
    caplog.set_level(logging.WARNING)
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.wide (pk int, ck int, v text, s text static, "
                  "PRIMARY KEY (pk, ck)) WITH CLUSTERING ORDER BY (ck DESC)")
    ins = origin_session.prepare(f"INSERT INTO {keyspace}.wide (pk, ck, v) VALUES (?, ?, ?) "
                                 "USING TIMESTAMP ? AND TTL ?")
    wide = 4000
    futures = [origin_session.execute_async(ins, (1, ck, "x" * (ck % 50), TS + ck, 7200 if ck % 7 == 0 else 0))
               for ck in range(wide)]
    futures += [origin_session.execute_async(ins, (100 + pk, 0, "small", TS, 0)) for pk in range(50)]
    for f in futures:
        f.result()
    origin_session.execute(f"UPDATE {keyspace}.wide USING TIMESTAMP {TS + 99} AND TTL 9000 SET s = 'static' "
                           "WHERE pk = 1")

    t0 = time.monotonic()
    copied, target, used = copy_table(zdm_config, origin_session, keyspace, "wide", limits, fetch_size=500)
    assert copied == wide + 50
    assert assert_exact_copy(origin_session, target_session, keyspace, time.monotonic() - t0) == wide + 50
    assert sum(n for _, _, n in recorded) == wide + 50 + 1  # the static row once
    assert all(parts <= used.max_partitions for parts, _, _ in recorded)
    assert all(size <= used.max_bytes for _, size, n in recorded if n > 1)
    assert target.requests["BatchStatement"] >= wide * 30 // used.max_bytes  # the partition spans batches
    assert sum(target.requests.values()) < (wide + 51) / (2 if limits else 5)
    _no_batch_warnings(caplog)


def test_binding_straight_into_the_batch_is_the_drivers_bind(keyspace, target_session):
    """writer.bind serializes as BoundStatement.bind does, and batch_of makes the batch that
    BatchStatement.add makes of the driver's BoundStatements: same statements, same routing."""
    from cassandra import ConsistencyLevel
    from cassandra.query import BatchStatement, BatchType

    target_session.execute(f"CREATE TABLE {keyspace}.kv (a int, b text, c int, v map<text, int>, "
                           "PRIMARY KEY ((a, b), c))")
    stmt = target_session.prepare(f"UPDATE {keyspace}.kv USING TIMESTAMP ? AND TTL ? SET v = v + ? "
                                  "WHERE a = ? AND b = ? AND c = ?")
    params = [[TS, 60, {"x": i}, i, f"k{i}", -i] for i in range(3)] + [[TS, 0, None, 9, "é", 0]]
    ours = writer.batch_of([writer.bind(stmt, p) for p in params], BatchType.UNLOGGED,
                           ConsistencyLevel.LOCAL_QUORUM, keyspace)
    drivers = BatchStatement(BatchType.UNLOGGED, consistency_level=ConsistencyLevel.LOCAL_QUORUM)
    for p in params:
        drivers.add(stmt.bind(p))
    assert ours._statements_and_parameters == drivers._statements_and_parameters
    assert (ours.routing_key, ours.keyspace) == (drivers.routing_key, drivers.keyspace)
    # a value the column's type refuses: the driver's bind, and its message naming the column
    with pytest.raises(TypeError, match='column "c"'):
        writer.bind(stmt, [TS, 60, {"x": 1}, 1, "k", "not an int"])
