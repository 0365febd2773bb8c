"""``migrate(config, settings) -> MigrationReport``: copy every table in scope, range by range.

The coordinator plans ranges (ring cut at origin's ownership boundaries), skips those
its checkpoints show done (``--resume``), hands the rest to :mod:`zdm.migrate.pool`,
checkpoints each range as it completes, and retries a failing range in smaller pieces
(``retry_splits``) up to ``max_attempts``.  A range that still fails is reported and
the migration is not complete: it never reports success with a range missing.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import Callable

from zdm.config import Config
from zdm.errors import ZdmError
from zdm.migrate.checkpoint import CheckpointStore, TableCheckpoint
from zdm.migrate.context import RunSettings, WorkerContext, connect
from zdm.migrate.copy import copy_range
from zdm.migrate.pool import Job, run_jobs
from zdm.migrate.report import (MigrationReport, RangeDone, RangeFailed, RowsCopied, TablePlanned,
                                TableResult)
from zdm.migrate.ring import TokenRange, cluster_boundaries, split_ring
from zdm.migrate.schema import TableSpec, tables_in_scope


@dataclass(frozen=True)
class Scope:
    keyspaces: tuple[str, ...] = ()  # empty: the config's scope.keyspaces (or all non-system)
    tables: tuple[str, ...] = ()  # only these ks.table names
    exclude_tables: tuple[str, ...] = ()  # in addition to the config's scope.exclude_tables
    exclude_keyspaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class MigrationSettings:
    scope: Scope = field(default_factory=Scope)
    run: RunSettings = field(default_factory=RunSettings)
    resume: bool = False
    max_attempts: int = 3
    retry_splits: int = 4
    record_evidence: bool = True


class MigrationIncomplete(ZdmError):
    """Some ranges could not be copied."""


def plan_tables(config: Config, scope: Scope, run: RunSettings) -> tuple[list[TableSpec], list[TokenRange]]:
    """Tables in scope (from origin's schema, checked against target's) and the range plan."""
    cluster, _session = connect(config.origin, "origin", run.request_timeout_s)
    try:
        specs = tables_in_scope(cluster.metadata, scope.keyspaces or config.scope.keyspaces,
                                include_tables=scope.tables,
                                exclude_tables=scope.exclude_tables + config.scope.exclude_tables,
                                exclude_keyspaces=scope.exclude_keyspaces)
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


async def copy_job(ctx: WorkerContext, spec: TableSpec, rng: TokenRange, params, on_rows) -> int:
    """The pool's job for migrate: one range copy."""
    return await copy_range(ctx, spec, rng, on_rows)


def migrate(config: Config, settings: MigrationSettings,
            on_event: Callable[[object], None] | None = None) -> MigrationReport:
    from zdm.phases.evidence import utcnow

    emit = on_event or (lambda _e: None)
    started = utcnow()
    specs, plan = plan_tables(config, settings.scope, settings.run)
    if not specs:
        raise ZdmError("no tables in scope", hint="check scope.keyspaces in zdm.yaml or --keyspace")
    store = CheckpointStore(config.state_dir)
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
                                              rows_total=cp.rows_done)
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
        run_jobs(config, settings.run, {s.qualified: s for s in specs}, copy_job, None, jobs, handle)
    except KeyboardInterrupt:
        interrupted = True
    finished = utcnow()
    for name, res in results.items():
        cp = checkpoints[name]
        res.rows_total = cp.rows_done
        res.complete = cp.complete
    report = MigrationReport(list(results.values()), started, finished, interrupted=interrupted)
    if settings.record_evidence:
        record_migration(config, report, checkpoints)
    return report


def record_migration(config: Config, report: MigrationReport,
                     checkpoints: dict[str, TableCheckpoint]) -> None:
    from zdm.phases import MigrationEvidence, StateStore, record_evidence
    from zdm.phases.evidence import parse_time

    firsts = [parse_time(cp.started_at) for cp in checkpoints.values() if cp.started_at]
    evidence = MigrationEvidence(
        tables=sorted(t.table for t in report.tables if t.complete),
        complete=report.complete,
        started_at=min(firsts, default=report.started_at),
        finished_at=report.finished_at if report.complete else None)
    record_evidence(StateStore(config.state_dir), evidence, operator())


def operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "zdm"
