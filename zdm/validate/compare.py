"""Compare one token range of one table: a plain function of (range, settings).

Theory of operation: both clusters are scanned over the range in token order, a page
at a time, each from a replica of the range (:mod:`zdm.migrate.range_read`, which fails a
scan over to another replica, from its last page, when a node dies), and merge-joined (:mod:`zdm.validate.merge`); no per-row point reads while
scanning.  A row missing on one side or differing in a cell is only a *suspect*:
a live write may have landed on one cluster between the two scans.  After the scan,
suspects are re-read on both sides (a few rounds, briefly spaced) and only those that
still differ are reported, so live writes do not show up as differences.

With ``autocorrect``, origin's cells are written to target with their original
writetime and TTL (the copy's own writes), so a newer live write always wins; a row
only on target is reported, never deleted.  Every fix is verified by a re-read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from zdm.migrate import aio
from zdm.migrate.cells import counter_deltas, hashable
from zdm.migrate.copy import write_all
from zdm.migrate.plan import plan_row, plan_static
from zdm.migrate.range_read import range_pages
from zdm.migrate.schema import TableSpec
from zdm.ranges.context import WorkerContext
from zdm.ranges.ring import TokenRange
from zdm.validate.diff import CellDiff, _jsonable, diff_row
from zdm.validate.findings import Difference, Findings
from zdm.validate.merge import ORIGIN, MergeJoin

MISSING = "missing_on_target"
EXTRA = "only_on_target"
DIFFERS = "cells_differ"

REREAD_DELAYS_S = (0.0, 0.1, 0.5)


@dataclass(frozen=True)
class ValidationParams:
    ttl_tolerance_s: float = 5.0
    autocorrect: bool = False
    max_listed: int = 100  # differences listed per range (all are counted)


@dataclass
class _Suspect:
    origin: tuple | None
    target: tuple | None
    statics: bool
    diffs: list[CellDiff] = field(default_factory=list)
    fixed: bool = False

    @property
    def row(self) -> tuple:
        return self.origin if self.origin is not None else self.target


def _check(spec: TableSpec, s: _Suspect, tol: float) -> bool:
    """Recompute ``s.diffs``; True if the pair still differs."""
    if s.origin is None or s.target is None:
        s.diffs = []
        return s.origin is not None or s.target is not None
    s.diffs = diff_row(spec, s.origin, s.target, statics=s.statics, ttl_tolerance_s=tol)
    return bool(s.diffs)


def _static_only(spec: TableSpec, row: tuple) -> bool:
    return bool(spec.clustering_key) and all(v is None for v in spec.ck_of(row))


async def _reread(ctx: WorkerContext, spec: TableSpec, suspects: list[_Suspect]) -> None:
    row_stmt = {side: ctx.prepare(side, spec.row_select()) for side in ("origin", "target")}
    static_stmt = {side: ctx.prepare(side, spec.row_select(static_only=True))
                   for side in ("origin", "target")}
    futs = []
    for s in suspects:
        key = spec.key_of(s.row)
        static = _static_only(spec, s.row)
        for side, session in (("origin", ctx.origin), ("target", ctx.target)):
            if static:
                futs.append(aio.execute(session, static_stmt[side], key[:len(spec.partition_key)]))
            else:
                futs.append(aio.execute(session, row_stmt[side], key))
    results = await asyncio.gather(*futs)
    for i, s in enumerate(suspects):
        o_rows, t_rows = results[2 * i], results[2 * i + 1]
        if _static_only(spec, s.row):  # the partition may have gained clustering rows
            o_rows = [r for r in o_rows if _static_only(spec, r)]
            t_rows = [r for r in t_rows if _static_only(spec, r)]
        s.origin = o_rows[0] if o_rows else None
        s.target = t_rows[0] if t_rows else None


async def _pages(ctx: WorkerContext, side: str, spec: TableSpec, rng: TokenRange):
    """``rng``'s rows on ``side``, a page at a time, from a replica (failing over)."""
    async for _arrived, rows in range_pages(ctx, side, spec.keyspace,
                                            ctx.prepare(side, spec.range_select()), rng):
        yield rows


async def compare_range(ctx: WorkerContext, spec: TableSpec, rng: TokenRange,
                        params: ValidationParams, on_rows=None) -> Findings:
    result = Findings()
    kw = spec.key_width
    merge = MergeJoin(lambda row: hashable(row[1:1 + kw]))
    streams = [_pages(ctx, side, spec, rng) for side in ("origin", "target")]
    has_statics = bool(spec.statics)
    tol = params.ttl_tolerance_s
    suspects: list[_Suspect] = []
    last_pk = None
    while not merge.done:
        for side in merge.needs():
            page = await anext(streams[side], None)
            if page is None:
                merge.finish(side)
                continue
            await ctx.limiter.acquire(len(page))
            merge.feed(side, page)
            if side == ORIGIN:
                result.rows_origin += len(page)
                if on_rows:
                    on_rows(len(page))
            else:
                result.rows_target += len(page)
        for o, t in merge.pairs():
            if o is None or t is None:
                suspects.append(_Suspect(o, t, statics=has_statics))
                continue
            pk = spec.pk_of(o)
            statics = has_statics and pk != last_pk
            last_pk = pk
            s = _Suspect(o, t, statics)
            if _check(spec, s, tol):
                suspects.append(s)

    for delay in REREAD_DELAYS_S:
        if not suspects:
            break
        if delay:
            await asyncio.sleep(delay)
        before = len(suspects)
        await _reread(ctx, spec, suspects)
        suspects = [s for s in suspects if _check(spec, s, tol)]
        result.live_resolved += before - len(suspects)

    # what each difference is, as found: the re-read after a repair sees the repaired row
    kinds = [EXTRA if s.origin is None else MISSING if s.target is None else DIFFERS for s in suspects]
    if params.autocorrect and suspects:
        await _autocorrect(ctx, spec, suspects)
        fixable = [s for s in suspects if s.origin is not None]
        await _reread(ctx, spec, fixable)
        for s in fixable:
            s.fixed = not _check(spec, s, tol)

    for s, kind in zip(suspects, kinds):
        setattr(result, kind, getattr(result, kind) + 1)
        fixed = s.fixed
        result.fixed += fixed
        if len(result.differences) < params.max_listed:
            result.differences.append(Difference(kind, _key_json(spec, s.row),
                                                 [d.to_json() for d in s.diffs], fixed))
    return result


async def _autocorrect(ctx: WorkerContext, spec: TableSpec, suspects: list[_Suspect]) -> None:
    window = aio.WriteWindow(ctx.run.write_window)
    for s in suspects:
        if s.origin is None:
            continue  # only on target: reported, never deleted
        key = spec.key_of(s.origin)
        if spec.is_counter:
            writes = [w for w in (counter_deltas(spec, s.origin, s.target, static=True) if spec.statics else None,
                                  None if _static_only(spec, s.origin) else
                                  counter_deltas(spec, s.origin, s.target, static=False)) if w]
        else:
            writes = (plan_static(spec, s.origin, s.target) if spec.statics else []) + \
                plan_row(spec, s.origin, s.target)
        if writes:
            await write_all(ctx, spec, writes, key, window)
    await window.drain()


def _key_json(spec: TableSpec, row: tuple) -> dict[str, Any]:
    names = spec.partition_key + spec.clustering_key
    return {n: _jsonable(v) for n, v in zip(names, spec.key_of(row)) if v is not None or n in spec.partition_key}
