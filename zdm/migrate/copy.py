"""Copy one token range of one table from origin to target: a plain function of (range, settings).

Theory of operation: the range is scanned on origin in token order, a page at a time
(one page read ahead), from a replica of the range, failing over to another replica from
the last page read when a node dies (:mod:`zdm.migrate.range_read`).  Each row becomes writes (``plan.plan_row``), and a partition's
static cells are written once, at its first row in the scan.  Writes go out in UNLOGGED
batches of partitions that share target replicas, a bounded number in flight
(:mod:`zdm.migrate.writer`; list appends of a chain alone and in order); the function
returns only when every write has been acknowledged, so a range reported done is
durably on target.  All writes carry origin's writetimes, so
redoing a range is harmless, with two exceptions handled by reading target first:
list appends (elements target already has are skipped) and counters (written as the
delta ``origin - target``).  Columns origin cannot read cell by cell are written at the
fallback timestamp (:mod:`zdm.migrate.fallback`), which redoing also leaves unchanged.
A TTL read in a page counts down from when the page arrived: each write's TTL is what is
left at the moment it is sent, so a slow target does not make cells outlive origin's.
"""

from __future__ import annotations

import time
from typing import Callable

from zdm.migrate import aio
from zdm.migrate.cells import Write, counter_deltas
from zdm.migrate.plan import plan_row, plan_static
from zdm.migrate.range_read import range_pages
from zdm.migrate.schema import TableSpec
from zdm.migrate.statements import cql_for, statement_for, values_for
from zdm.migrate.writer import BatchWriter
from zdm.ranges.context import WorkerContext
from zdm.ranges.ring import TokenRange


async def write_all(ctx: WorkerContext, spec: TableSpec, writes: list[Write], key: tuple,
                    window: aio.WriteWindow, read_at: float | None = None) -> None:
    """Send ``writes`` for the row ``key``, read at ``read_at`` (monotonic clock; None:
    just now); chained writes (list appends) run in order."""
    for w in writes:
        stmt = ctx.prepare("target", cql_for(spec, w), write=True)
        elapsed = time.monotonic() - read_at if read_at is not None and w.ttl else 0.0
        params = values_for(spec, w, key, elapsed_s=elapsed)
        if w.chain is None:
            await window.submit(ctx.target, stmt, params)
        else:
            await aio.execute(ctx.target, stmt, params)


async def target_rows(ctx: WorkerContext, spec: TableSpec, keys: list[tuple],
                      *, static_only: bool = False) -> list[tuple | None]:
    """Point reads of target (only for list and counter tables)."""
    import asyncio

    stmt = ctx.prepare("target", spec.row_select(static_only=static_only))
    npk = len(spec.partition_key)
    done = asyncio.get_running_loop().create_future()
    done.set_result([])
    # a static-only scan row has a null clustering key: there is no row to read
    futs = [aio.execute(ctx.target, stmt, k[:npk]) if static_only else
            done if None in k[npk:] else aio.execute(ctx.target, stmt, k) for k in keys]
    results = await asyncio.gather(*futs)
    return [rows[0] if rows else None for rows in results]


async def copy_range(ctx: WorkerContext, spec: TableSpec, rng: TokenRange,
                     on_rows: Callable[[int], None] | None = None, *, since: int | None = None) -> int:
    """Copy ``rng`` of ``spec``; returns the number of origin rows read.  ``since``
    (microseconds): only the cells written at or after it (:mod:`zdm.migrate.plan`)."""
    select = ctx.prepare("origin", spec.range_select())
    writer = BatchWriter(ctx, spec)
    npk = len(spec.partition_key)
    kw = spec.key_width
    needs_target = spec.is_counter or spec.has_lists()
    has_statics = bool(spec.statics)
    # the fast lane (BatchWriter.add_row): rows of all-simple columns, each cell copied as it is;
    # not with statics (a static-only scan row has no clustering row to insert)
    fast = spec.simple_offsets(static=False) if since is None and not needs_target and not has_statics else None
    last_pk: tuple | None = None
    total = 0
    async for read_at, rows in range_pages(ctx, "origin", spec.keyspace, select, rng):
        await ctx.limiter.acquire(len(rows))
        keys = [row[1:1 + kw] for row in rows]
        existing = await target_rows(ctx, spec, keys) if needs_target else None
        for i, row in enumerate(rows):
            key = keys[i]
            pk = key[:npk]
            token = row[0]
            if has_statics and pk != last_pk:
                await _copy_statics(ctx, spec, row, key, token, existing[i] if existing else None,
                                    writer, read_at, since)
            last_pk = pk
            if fast is not None and await writer.add_row(row, fast, key, token, read_at):
                continue
            if spec.is_counter:
                if not spec.clustering_key or key[npk] is not None:
                    delta = counter_deltas(spec, row, existing[i], static=False)
                    if delta:
                        await writer.add(delta, key, token)
                continue
            for w in plan_row(spec, row, existing[i] if existing else None, since=since):
                if w.chain is None:
                    await writer.add(w, key, token, read_at)
                else:
                    await _chained(ctx, spec, writer, w, key, read_at)
        writer.flush()
        total += len(rows)
        if on_rows is not None:
            on_rows(len(rows))
    await writer.drain()
    return total


async def _chained(ctx: WorkerContext, spec: TableSpec, writer: BatchWriter, w: Write, key: tuple,
                   read_at: float) -> None:
    """A list append of a chain: alone, after the ones before it are acknowledged."""
    writer.flush()
    stmt = statement_for(ctx, spec, w)
    elapsed = time.monotonic() - read_at if w.ttl else 0.0
    await aio.execute(ctx.target, stmt, values_for(spec, w, key, elapsed_s=elapsed))


async def _copy_statics(ctx: WorkerContext, spec: TableSpec, row: tuple, key: tuple, token: int,
                        target_row: tuple | None, writer: BatchWriter, read_at: float,
                        since: int | None) -> None:
    if spec.is_counter or spec.has_lists():
        # the clustering row may be missing on target; read the static row by partition
        writer.flush()
        (target_row,) = await target_rows(ctx, spec, [key], static_only=True)
    if spec.is_counter:
        delta = counter_deltas(spec, row, target_row, static=True)
        writes = [delta] if delta else []
    else:
        writes = plan_static(spec, row, target_row, since=since)
    for w in writes:
        if w.chain is None:
            await writer.add(w, key, token, read_at)
        else:
            await _chained(ctx, spec, writer, w, key, read_at)
