"""Re-checking the rows the proxies recorded: the first step of `zdm validate`, and `zdm repair`.

Theory of operation: a record (:mod:`zdm.state.divergences`) names a table, a row's key
columns and ``source``, the cluster whose data is right (the primary when the write was
made).  Each recorded partition is compared on its own, with validation's machinery
(:func:`~zdm.validate.compare.compare_range` over the one token the partition has): both
clusters scanned, suspects re-read so live writes are not taken for differences, and with
``repair`` the source's cells written to the other cluster with their original writetimes
and TTLs, so a newer live write always wins.  When the source is target (records made in
phase 4), the comparison runs the other way round.

A record's key (:mod:`zdm.proxy.keys`) is the row's primary key as the statement gave it:
the partition key and the clustering columns it pinned.  A recorded write the destination
missed is thereby copied; a recorded *delete* it missed leaves the row on the destination
only, and is applied there as a delete of what the key names (the row, a clustering prefix,
the partition) at the record's writetime -- removing only what is older than the delete
itself; a delete whose key is wider than what it removed (``exact: false``: a range on a
clustering column, an ``IN``) is left pending for a person.  An LWT the destination
applied alone wrote there with the transaction's own (Paxos) timestamp, newer than the
source's cells, so the source's row is written again, to both clusters, just above the
destination's newest cell of the row: both then hold the same values with the same
writetimes, and a live write made after that (through the proxy, to both clusters, at the
time it is made) is newer still and wins on both.  A record whose partition
key cannot be read from it stands for its whole table, which is compared range by range.
Records whose rows agree afterwards are resolved; the others stay pending, named in the
report.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cassandra.metadata import protect_name

from zdm.config import Config
from zdm.migrate import aio
from zdm.migrate.cells import cells_of
from zdm.migrate.copy import write_all
from zdm.migrate.plan import plan_row, plan_static
from zdm.migrate.schema import TableSpec
from zdm.ranges.context import RunSettings, WorkerContext
from zdm.ranges.ring import FULL_RING, MIN_TOKEN, TokenRange
from zdm.state import open_store
from zdm.state.divergences import render_key
from zdm.validate.compare import EXTRA, ValidationParams, compare_range

_BLOB_AS = {"ascii", "bigint", "blob", "boolean", "date", "decimal", "double", "float", "inet", "int",
            "smallint", "text", "time", "timestamp", "timeuuid", "tinyint", "uuid", "varchar", "varint"}


@dataclass
class RecordCheck:
    id: str
    kind: str
    table: str
    source: str
    key: str
    state: str  # "agree" (nothing to do), "fixed", "differs", "unreadable"
    detail: str = ""


@dataclass
class RecheckReport:
    checks: list[RecordCheck] = field(default_factory=list)

    @property
    def resolved(self) -> int:
        return sum(c.state in ("agree", "fixed") for c in self.checks)

    @property
    def pending(self) -> list[RecordCheck]:
        return [c for c in self.checks if c.state not in ("agree", "fixed")]

    def to_json(self) -> dict[str, Any]:
        return {"checked": len(self.checks), "resolved": self.resolved,
                "pending": [vars(c) for c in self.pending]}


class _Reversed:
    """A worker context seen the other way round: "origin" is target and "target" origin, so
    comparing and repairing runs from target (the source) to origin."""

    def __init__(self, ctx: WorkerContext) -> None:
        self._ctx = ctx
        self.origin, self.target = ctx.target, ctx.origin
        self.limiter, self.run = ctx.limiter, ctx.run

    def prepare(self, side: str, cql: str, *, write: bool = False):
        return self._ctx.prepare("target" if side == "origin" else "origin", cql, write=write)


def recheck(config: Config, specs: dict[str, TableSpec], *, repair: bool,
            run: RunSettings | None = None, params: ValidationParams | None = None) -> RecheckReport:
    """Re-check (and with ``repair``, fix) every pending record of a table in ``specs``."""
    with open_store(config) as store:
        return _recheck_pending(config, store.divergences(), specs, repair=repair, run=run, params=params)


def _recheck_pending(config, log, specs, *, repair, run, params) -> RecheckReport:
    records = [r for r in log.pending() if f"{r.get('keyspace')}.{r.get('table')}" in specs]
    report = RecheckReport()
    if not records:
        return report
    params = params or ValidationParams()
    params = ValidationParams(params.ttl_tolerance_s, autocorrect=repair, max_listed=params.max_listed)
    report.checks = asyncio.run(_recheck(config, run or RunSettings(workers=0), specs, records, params))
    log.resolve([c.id for c in report.checks if c.state in ("agree", "fixed")],
                "repaired" if repair else "re-checked")
    return report


async def _recheck(config, run, specs, records, params) -> list[RecordCheck]:
    ctx = WorkerContext(config, run)
    try:
        return [await _check_one(ctx, specs[f"{r['keyspace']}.{r['table']}"], r, params) for r in records]
    finally:
        ctx.close()


async def _check_one(ctx: WorkerContext, spec: TableSpec, record: dict, params) -> RecordCheck:
    side = ctx if record.get("source", "origin") == "origin" else _Reversed(ctx)
    check = RecordCheck(record["id"], record.get("kind", "?"), spec.qualified, record.get("source", "origin"),
                        _show_key(record), "differs")
    terms = _terms(ctx, spec, record.get("key"), spec.partition_key)
    if terms is None:  # the whole table
        ranges = [FULL_RING]
    else:
        token = await _token(side, spec, terms)
        if token is None:
            check.state = "agree"  # the partition exists on neither cluster
            return check
        ranges = [TokenRange(token - 1, token)] if token > MIN_TOKEN else [TokenRange(token, token + 1)]
    found = fixed = 0
    extra = False
    wider = ""
    for rng in ranges:
        result = await compare_range(side, spec, rng, params)
        found += result.found
        fixed += result.fixed
        extra = extra or any(d.kind == EXTRA for d in result.differences)
    if found == 0:
        check.state = "agree"
    elif params.autocorrect and extra and record.get("writetime") is not None and terms is not None:
        # rows only on the destination: a delete it missed; apply it, as the client wrote it
        # (the row, a clustering prefix or the whole partition), at the delete's own writetime
        # -- unless the key is wider than what the delete removed (a range, IN): then a
        # person decides
        clustering = _clustering_prefix(ctx, spec, record["key"])
        if clustering is not None and record["key"].get("exact", True):
            await _delete_at(side, spec, terms + clustering, record["writetime"])
            again = sum([(await compare_range(side, spec, rng, ValidationParams(params.ttl_tolerance_s))).found
                         for rng in ranges])
            check.state = "fixed" if again == 0 else "differs"
        else:
            wider = "; the missed delete's key is wider than what it removed: not applied"
    elif params.autocorrect and fixed == found:
        check.state = "fixed"
    elif params.autocorrect and record.get("kind") == "lwt":
        for rng in ranges:
            await _overwrite_newer(side, spec, rng)
        again = sum([(await compare_range(side, spec, rng, ValidationParams(params.ttl_tolerance_s))).found
                     for rng in ranges])
        check.state = "fixed" if again == 0 else "differs"
    check.detail = f"{found} difference(s), {fixed} fixed{wider}" if found else ""
    return check


def _terms(ctx, spec: TableSpec, key: dict | None, names: tuple[str, ...]) -> list[str] | None:
    """The values of columns ``names`` as CQL terms, or None when the record does not give
    them all (one value each)."""
    if not key or not names:
        return None
    columns = key.get("columns", {})
    table = ctx.origin.cluster.metadata.keyspaces[spec.keyspace].tables[spec.name]
    terms = []
    for name in names:
        values = columns.get(name)
        if not values or len(values) != 1:
            return None  # absent, or IN (several partitions): the table
        value = values[0]
        if "cql" in value:
            terms.append(value["cql"])
            continue
        cql_type = value.get("type") or table.columns[name].cql_type
        if cql_type not in _BLOB_AS:
            return None
        terms.append(f"blobAs{cql_type.capitalize()}(0x{value['hex']})")
    return terms


def _clustering_prefix(ctx, spec: TableSpec, key: dict) -> list[str] | None:
    """The values of the clustering columns the key gives, in order up to the first it
    lacks, as CQL terms; None when one has several (IN)."""
    out = []
    for name in spec.clustering_key:
        if not key.get("columns", {}).get(name):
            break
        term = _terms(ctx, spec, key, (name,))
        if term is None:
            return None
        out.extend(term)
    return out


async def _token(side, spec: TableSpec, terms: list[str]) -> int | None:
    """The partition's token, read from whichever cluster has a row in it."""
    pk = ", ".join(protect_name(c) for c in spec.partition_key)
    where = " AND ".join(f"{protect_name(c)} = {t}" for c, t in zip(spec.partition_key, terms))
    cql = f"SELECT token({pk}) FROM {spec.cql_name} WHERE {where} LIMIT 1"
    for session in (side.origin, side.target):
        rows = await aio.execute(session, cql, ())
        if rows:
            return rows[0][0]
    return None


async def _delete_at(side, spec: TableSpec, terms: list[str], writetime: int) -> None:
    names = (spec.partition_key + spec.clustering_key)[:len(terms)]
    where = " AND ".join(f"{protect_name(n)} = {t}" for n, t in zip(names, terms))
    await aio.execute(side.target, f"DELETE FROM {spec.cql_name} USING TIMESTAMP {int(writetime)} "
                                   f"WHERE {where}")


async def _overwrite_newer(side, spec: TableSpec, rng: TokenRange) -> None:
    """Write the source's rows of ``rng`` again to both clusters, each write's timestamp
    raised above the destination's newest cell of that row."""
    source = [r async for page in aio.pages(side.origin, side.prepare("origin", spec.range_select()),
                                            (rng.start, rng.end)) for r in page]
    dest = {spec.key_of(r): r async for page in aio.pages(side.target, side.prepare("target", spec.range_select()),
                                                          (rng.start, rng.end)) for r in page}
    window = aio.WriteWindow(side.run.write_window)
    for row in source:
        theirs = dest.get(spec.key_of(row))
        floor = max((c.writetime for c in cells_of(theirs, spec.columns)), default=0) + 1 if theirs else 0
        writes = (plan_static(spec, row) if spec.statics else []) + plan_row(spec, row)
        writes = [dataclasses.replace(w, timestamp=max(w.timestamp, floor)) for w in writes
                  if w.timestamp is not None]
        if writes:
            for towards in (side, _flipped(side)):  # the destination, then the source itself
                await write_all(towards, spec, writes, spec.key_of(row), window)
    await window.drain()


def _flipped(side):
    return side._ctx if isinstance(side, _Reversed) else _Reversed(side)


def _show_key(record: dict) -> str:
    key = record.get("key")
    return render_key(key) if key else f"{record.get('keyspace')}.{record.get('table')} (whole table)"
