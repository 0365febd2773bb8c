"""Profile the copy of one table the way one worker process runs it: wall time, the process's
CPU per row (every thread, the driver's I/O thread included) and, with --profile, where the
event loop's thread spends it (cProfile, sorted by own time).

    python bench/profile_migrate.py --rows 100000 [--shape single|clustered|wide] [--profile]
    python bench/profile_migrate.py --keyspace KS --table T --keep   # an existing table

Needs the sandbox (origin 127.0.0.1:9042, target 127.0.0.1:9043). Target's copy of the table
is truncated before each run; with --rows the keyspace is made (and dropped, unless --keep).
For the driver thread's share, run it under a sampling profiler such as py-spy.

--phases splits the copy's CPU per row (all threads) into three, by running the same ranges
three times in one process: reading and decoding origin's pages alone; reading and planning
each row's writes (plan_row) without sending them; and the whole copy. Planning is the second
less the first, encoding and writing the third less the second.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import io
import pstats
import time

from _common import SHAPES, config, load_shape, sessions, teardown, unique_keyspace

from zdm.migrate.copy import copy_range
from zdm.migrate.schema import tables_in_scope
from zdm.ranges.batches import BatchLimits
from zdm.ranges.context import RunSettings, WorkerContext
from zdm.ranges.ring import FULL_RING, split_ring
from zdm.scope import Scope


async def read_all(ctx: WorkerContext, spec, ranges, concurrency: int, plan: bool) -> int:
    """Read every range as the copy does (with ``plan``: and plan each row's writes), sending
    nothing to target."""
    from zdm.migrate.plan import plan_row
    from zdm.migrate.range_read import range_pages

    select = ctx.prepare("origin", spec.range_select())
    queue = list(ranges)
    total = 0

    async def consumer() -> None:
        nonlocal total
        while queue:
            async for _at, rows in range_pages(ctx, "origin", spec.keyspace, select, queue.pop()):
                if plan:
                    for row in rows:
                        plan_row(spec, row)
                total += len(rows)

    await asyncio.gather(*(consumer() for _ in range(concurrency)))
    return total


def phases(ctx: WorkerContext, spec, ranges, concurrency: int, truncate) -> None:
    """Print the copy's CPU per row in reading, planning, and encoding and writing."""
    cpu = {}
    for name, job in (("read", lambda: read_all(ctx, spec, ranges, concurrency, plan=False)),
                      ("read+plan", lambda: read_all(ctx, spec, ranges, concurrency, plan=True)),
                      ("copy", lambda: copy_all(ctx, spec, ranges, concurrency))):
        truncate()
        t0, c0 = time.monotonic(), time.process_time()
        rows = asyncio.run(job())
        wall, used = time.monotonic() - t0, time.process_time() - c0
        cpu[name] = used / max(rows, 1) * 1e6
        print(f"  {name:<10} {rows:,} rows in {wall:6.2f} s, CPU {used:6.2f} s = {cpu[name]:5.1f} µs/row")
    parts = {"reading and decoding": cpu["read"], "planning writes": cpu["read+plan"] - cpu["read"],
             "encoding and writing": cpu["copy"] - cpu["read+plan"]}
    print("client CPU per row, all threads:")
    for name, us in parts.items():
        print(f"  {name:<22} {us:5.1f} µs  {us / cpu['copy']:4.0%}")
    print(f"  {'the copy':<22} {cpu['copy']:5.1f} µs")


async def copy_all(ctx: WorkerContext, spec, ranges, concurrency: int) -> int:
    queue = list(ranges)
    total = 0

    async def consumer() -> None:
        nonlocal total
        while queue:
            rows = await copy_range(ctx, spec, queue.pop())
            total += rows

    await asyncio.gather(*(consumer() for _ in range(concurrency)))
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--shape", choices=sorted(SHAPES), default="single")
    p.add_argument("--keyspace", help="use this existing keyspace (with --table) instead of loading one")
    p.add_argument("--table")
    p.add_argument("--fraction", type=float, default=1.0, help="copy this share of the ring")
    p.add_argument("--concurrency", type=int, default=RunSettings.concurrency)
    p.add_argument("--write-window", type=int, default=RunSettings.write_window)
    p.add_argument("--fetch-size", type=int, default=RunSettings.fetch_size)
    p.add_argument("--splits", type=int, default=64)
    p.add_argument("--protocol", type=int, help="pin the native protocol version (default: negotiated)")
    p.add_argument("--max-partitions", type=int, help="override target's batch limit on partitions")
    p.add_argument("--max-bytes", type=int, help="override target's batch limit on (estimated) bytes")
    p.add_argument("--profile", action="store_true", help="cProfile the event loop's thread")
    p.add_argument("--phases", action="store_true",
                   help="CPU per row in reading, planning, and encoding and writing (three passes)")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--origin-port", type=int, default=9042)
    p.add_argument("--target-port", type=int, default=9043)
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()

    o, t = sessions(a)
    ks, table = a.keyspace, a.table
    if ks is None:
        ks, table = unique_keyspace(), a.shape
        load_shape(o, t, ks, a.shape, a.rows)
    try:
        t.execute(f"TRUNCATE {ks}.{table}")
        (spec,) = tables_in_scope(o.cluster.metadata, Scope(keyspaces=(ks,), tables={f"{ks}.{table}"}))
        run = RunSettings(workers=1, concurrency=a.concurrency, write_window=a.write_window,
                          fetch_size=a.fetch_size)
        cfg = config(a)
        if a.protocol:
            cfg = dataclasses.replace(cfg, origin=dataclasses.replace(cfg.origin, protocol_version=a.protocol),
                                      target=dataclasses.replace(cfg.target, protocol_version=a.protocol))
        ctx = WorkerContext(cfg, run)
        if a.max_partitions or a.max_bytes:
            ctx.batch_limits = BatchLimits(a.max_bytes or ctx.batch_limits.max_bytes,
                                           a.max_partitions or ctx.batch_limits.max_partitions)
        print(f"batch limits: {ctx.batch_limits}")
        end = FULL_RING.start + int(FULL_RING.width * a.fraction)
        ranges = [r for r in split_ring([], a.splits) if r.start < end]
        if a.phases:
            phases(ctx, spec, ranges, a.concurrency, lambda: t.execute(f"TRUNCATE {ks}.{table}", timeout=120))
            ctx.close()
            return
        prof = cProfile.Profile() if a.profile else None
        t0, c0 = time.monotonic(), time.process_time()
        if prof:
            prof.enable()
        rows = asyncio.run(copy_all(ctx, spec, ranges, a.concurrency))
        if prof:
            prof.disable()
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        ctx.close()
        print(f"{spec.qualified}: {rows:,} rows in {wall:.2f} s = {rows / wall:,.0f} rows/s; "
              f"process CPU {cpu:.2f} s = {cpu / max(rows, 1) * 1e6:.1f} µs/row")
        if prof:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(a.top)
            print(out.getvalue())
    finally:
        teardown(o, t, ks, a.keep or a.keyspace is not None)


if __name__ == "__main__":
    main()
