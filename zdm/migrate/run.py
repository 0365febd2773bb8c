"""``migrate(config, settings) -> MigrationReport``: copy every table in scope, range by range.

The coordinator plans ranges (ring cut at origin's ownership boundaries), skips those
its checkpoints show done (``--resume``), hands the rest to the engine (:mod:`zdm.migrate.engine`:
local worker processes or Spark executors),
checkpoints each range as it completes, and retries a failing range in smaller pieces
(``retry_splits``) up to ``max_attempts``.  A range that still fails is reported and
the migration is not complete: it never reports success with a range missing.

Whether each table is copied exactly is decided once, from origin's release: before
Cassandra 5.0 its non-frozen collections and UDTs take the fallback
(:mod:`zdm.migrate.fallback`), written at a timestamp below the start of dual writes.
"""

from __future__ import annotations

import dataclasses
import getpass
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from zdm.clock import micros, parse_time, utcnow
from zdm.config import Config
from zdm.errors import ZdmError
from zdm.migrate.context import RunSettings, WorkerContext, connect
from zdm.migrate.copy import copy_range
from zdm.migrate.fallback import fallback_timestamp
from zdm.migrate import engine
from zdm.migrate.pool import Job
from zdm.migrate.report import (MigrationReport, RangeDone, RangeFailed, RowsCopied, TablePlanned,
                                TableResult)
from zdm.migrate.ring import TokenRange, cluster_boundaries, split_ring
from zdm.migrate.schema import TableSpec, tables_in_scope
from zdm.phases import MigrationEvidence, record_evidence
from zdm.releases import has_element_metadata, parse_version
from zdm.scope import Scope
from zdm.state import TableCheckpoint, open_checkpoints, open_store


@dataclass(frozen=True)
class MigrationSettings:
    #: how the command's options narrow the config's scope (:meth:`zdm.scope.Scope.narrow`)
    scope: Scope = field(default_factory=Scope)
    run: RunSettings = field(default_factory=RunSettings)
    resume: bool = False
    max_attempts: int = 3
    retry_splits: int = 4
    record_evidence: bool = True
    #: when dual writes began, for the fallback's timestamp (None: the state's phase 1 entry)
    dual_writes_since: datetime | None = None
    #: a catch-up copy: only the cells written at or after this time (``zdm migrate --since``)
    since: datetime | None = None


@dataclass(frozen=True)
class CopyParams:
    """What every range of one run copies, as the engines hand it to :func:`copy_job`."""

    since_us: int | None = None  # microseconds since the epoch, as writetimes are


class MigrationIncomplete(ZdmError):
    """Some ranges could not be copied."""


def origin_release(cluster) -> tuple[str | None, str | None]:
    """(release_version, dse_version) of origin's oldest node, as the driver saw them."""
    hosts = [h for h in cluster.metadata.all_hosts() if h.release_version]
    if not hosts:
        return None, None
    oldest = min(hosts, key=lambda h: parse_version(h.release_version) or (0,))
    dse = next((h.dse_version for h in hosts if getattr(h, "dse_version", None)), None)
    return oldest.release_version, dse


def plan_tables(config: Config, scope: Scope, run: RunSettings) -> tuple[list[TableSpec], list[TokenRange]]:
    """Tables in the config's scope narrowed by ``scope`` (from origin's schema, checked against
    target's) and the range plan.

    Columns whose cells' metadata origin cannot read are marked not exact; their
    ``fallback_timestamp`` is left for :func:`with_fallback_timestamp`."""
    cluster, _session = connect(config.origin, "origin", run.request_timeout_s)
    try:
        release, dse = origin_release(cluster)
        specs = tables_in_scope(cluster.metadata, Scope.of(config).narrow(scope),
                                element_metadata=has_element_metadata(release, dse))
        plan = split_ring(cluster_boundaries(cluster), run.range_count())
    finally:
        cluster.shutdown()
    tcluster, _tsession = connect(config.target, "target", run.request_timeout_s)
    try:
        for spec in specs:
            ks = tcluster.metadata.keyspaces.get(spec.keyspace)
            table = ks.tables.get(spec.name) if ks else None
            if table is None:
                raise ZdmError(f"table {spec.qualified} does not exist on target",
                               hint="create the schema on target first (same keyspaces, tables, types)")
            missing = [c.name for c in spec.columns if c.name not in table.columns]
            if missing:
                raise ZdmError(f"table {spec.qualified} on target lacks column(s) {', '.join(missing)}",
                               hint="make target's schema match origin's before copying")
    finally:
        tcluster.shutdown()
    return specs, plan


def with_fallback_timestamp(config: Config, specs: list[TableSpec], since: datetime | None, *,
                            needed_for: str | None) -> tuple[list[TableSpec], datetime | None]:
    """Give the tables that take the fallback its timestamp, from ``since`` or, when None,
    from when the migration last entered phase 1.  When that is unknown, refuse if the
    fallback is needed (``needed_for`` names what for), else leave it unset."""
    inexact = [s.qualified for s in specs if s.fallback_columns]
    if not inexact:
        return specs, None
    if since is None:
        with open_store(config) as store:
            since = store.load().dual_writes_since
    if since is None:
        if needed_for is None:
            return specs, None
        raise ZdmError(
            f"{needed_for} {', '.join(inexact)} needs to know when dual writes began: origin "
            "cannot read the writetimes of their non-frozen collections and UDTs, so those are "
            "written just below the start of dual writes, and the migration has not entered "
            "phase 1 (the state has no record of it)",
            hint="start the proxy and run `zdm phase advance` to phase 1 before copying, or pass "
                 "--dual-writes-since with the time (ISO 8601, UTC) your proxy began dual writes")
    ts = fallback_timestamp(since)
    return [dataclasses.replace(s, fallback_timestamp=ts) if s.fallback_columns else s
            for s in specs], since


async def copy_job(ctx: WorkerContext, spec: TableSpec, rng: TokenRange, params: CopyParams,
                   on_rows) -> int:
    """The pool's job for migrate: one range copy."""
    return await copy_range(ctx, spec, rng, on_rows, since=params.since_us)


def migrate(config: Config, settings: MigrationSettings,
            on_event: Callable[[object], None] | None = None) -> MigrationReport:
    emit = on_event or (lambda _e: None)
    started = utcnow()
    run = engine.prepare(settings.run)
    specs, plan = plan_tables(config, settings.scope, run)
    if not specs:
        raise ZdmError("no tables in scope", hint="check scope.keyspaces in zdm.yaml or --keyspace")
    specs, since = with_fallback_timestamp(config, specs, settings.dual_writes_since,
                                           needed_for="copying")
    # a catch-up keeps checkpoints of its own: the full copy's stay as they were
    with open_checkpoints(config, "catchup" if settings.since else "migrate") as store:
        return _migrate(config, settings, run, emit, started, specs, plan, since, store)


def _migrate(config, settings, run, emit, started, specs, plan, since, store) -> MigrationReport:
    checkpoints: dict[str, TableCheckpoint] = {}
    results: dict[str, TableResult] = {}
    jobs: list[Job] = []
    for spec in specs:
        cp = store.load(spec.qualified) if settings.resume else None
        if cp is None:
            cp = store.start(spec.qualified, plan, started.isoformat())
        remaining = cp.remaining()
        checkpoints[spec.qualified] = cp
        skipped = sum(1 for r in cp.plan if r in cp.done)
        results[spec.qualified] = TableResult(spec.qualified, len(cp.plan), ranges_skipped=skipped,
                                              rows_total=cp.rows_done,
                                              fallback_columns=[c.name for c in spec.fallback_columns])
        emit(TablePlanned(spec.qualified, len(cp.plan), len(remaining), cp.rows_done))
        jobs.extend(Job(spec.qualified, r) for r in remaining)

    def handle(event: tuple) -> list[Job]:
        kind = event[0]
        if kind == "rows":
            emit(RowsCopied(event[1], event[2]))
            return []
        job: Job = event[1]
        cp, res = checkpoints[job.table], results[job.table]
        if kind == "done":
            store.mark_done(cp, job.rng, event[2])
            res.ranges_copied.append(job.rng.key())
            res.rows_copied += event[2]
            emit(RangeDone(job.table, job.rng.key(), event[2], cp.complete))
            return []
        final = job.attempt >= settings.max_attempts or job.rng.width < 2
        emit(RangeFailed(job.table, job.rng.key(), event[2], job.attempt, final))
        if final:
            res.failed_ranges.append({"range": job.rng.key(), "error": event[2],
                                      "attempts": job.attempt})
            return []
        return [Job(job.table, piece, job.attempt + 1) for piece in job.rng.split(settings.retry_splits)]

    interrupted = False
    try:
        params = CopyParams(micros(settings.since) if settings.since else None)
        engine.run_jobs(config, run, {s.qualified: s for s in specs}, copy_job, params, jobs, handle)
    except KeyboardInterrupt:
        interrupted = True
    finished = utcnow()
    for name, res in results.items():
        cp = checkpoints[name]
        res.rows_total = cp.rows_done
        res.complete = cp.complete
    report = MigrationReport(list(results.values()), started, finished, interrupted=interrupted,
                             dual_writes_since=since,
                             fallback_timestamp=next((s.fallback_timestamp for s in specs
                                                      if s.fallback_timestamp), None),
                             since=settings.since)
    if settings.record_evidence and not settings.since:
        # a catch-up proves nothing about the full copy: the migration's evidence stands
        record_migration(config, report, checkpoints)
    return report


def record_migration(config: Config, report: MigrationReport,
                     checkpoints: dict[str, TableCheckpoint]) -> None:
    firsts = [parse_time(cp.started_at) for cp in checkpoints.values() if cp.started_at]
    evidence = MigrationEvidence(
        tables=sorted(t.table for t in report.tables if t.complete),
        complete=report.complete,
        started_at=min(firsts, default=report.started_at),
        finished_at=report.finished_at if report.complete else None,
        dual_writes_since=report.dual_writes_since, fallback_timestamp=report.fallback_timestamp,
        fallback_tables=sorted(t.table for t in report.tables if t.fallback_columns))
    with open_store(config) as store:
        record_evidence(store, evidence, operator())


def operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "zdm"
