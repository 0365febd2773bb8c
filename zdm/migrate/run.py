"""``migrate(config, settings) -> MigrationReport``: copy every table in scope, range by range.

migrate plans its tables (:mod:`zdm.migrate.tables`: the ring cut at origin's ownership
boundaries), starts a checkpoint per table or, with ``--resume``, takes the one an earlier run
left, and gives :func:`zdm.ranges.coordinator.run_ranges` its per-range job, :func:`copy_job`.
The coordinator runs the ranges not yet done on the engine (local worker processes or Spark
executors), checkpoints each range as it completes, and retries a failing range in smaller
pieces (``retry_splits``) up to ``max_attempts``; migrate builds its report from the events.
A range that still fails is reported and the migration is not complete: it never reports
success with a range missing.  A catch-up copy (``--since``) keeps checkpoints of its own.

Whether each table is copied exactly is decided once, from origin's release: before
Cassandra 5.0 its non-frozen collections and UDTs take the fallback
(:mod:`zdm.migrate.fallback`), written at a timestamp below the start of dual writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from zdm.clock import micros, parse_time, utcnow
from zdm.config import Config
from zdm.migrate.copy import copy_range
from zdm.migrate.report import MigrationReport, TableResult
from zdm.migrate.schema import TableSpec
from zdm.migrate.tables import plan_run
from zdm.phases import MigrationEvidence, record_evidence
from zdm.phases.evidence import operator_name
from zdm.ranges.context import RunSettings, WorkerContext
from zdm.ranges.coordinator import run_ranges
from zdm.ranges.events import RangeDone, RangeFailed
from zdm.ranges.ring import TokenRange
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


async def copy_job(ctx: WorkerContext, spec: TableSpec, rng: TokenRange, params: CopyParams,
                   on_rows) -> int:
    """The pool's job for migrate: one range copy."""
    return await copy_range(ctx, spec, rng, on_rows, since=params.since_us)


def migrate(config: Config, settings: MigrationSettings,
            on_event: Callable[[object], None] | None = None) -> MigrationReport:
    emit = on_event or (lambda _e: None)
    started = utcnow()
    run, specs, plan, since = plan_run(config, settings.scope, settings.run,
                                       dual_writes_since=settings.dual_writes_since,
                                       needed_for="copying")
    # a catch-up keeps checkpoints of its own: the full copy's stay as they were
    with open_checkpoints(config, "catchup" if settings.since else "migrate") as store:
        return _migrate(config, settings, run, emit, started, specs, plan, since, store)


def _migrate(config, settings, run, emit, started, specs, plan, since, store) -> MigrationReport:
    checkpoints: dict[str, TableCheckpoint] = {}
    results: dict[str, TableResult] = {}
    for spec in specs:
        cp = store.load(spec.qualified) if settings.resume else None
        if cp is None:
            cp = store.start(spec.qualified, plan, started.isoformat())
        checkpoints[spec.qualified] = cp
        skipped = sum(1 for r in cp.plan if r in cp.done)
        results[spec.qualified] = TableResult(spec.qualified, len(cp.plan), ranges_skipped=skipped,
                                              rows_total=cp.rows_done,
                                              fallback_columns=[c.name for c in spec.fallback_columns])

    def on_range(event: object) -> None:
        if isinstance(event, RangeDone):
            res = results[event.table]
            res.ranges_copied.append(event.range)
            res.rows_copied += event.rows
        elif isinstance(event, RangeFailed) and event.final:
            results[event.table].failed_ranges.append({"range": event.range, "error": event.error,
                                                       "attempts": event.attempt})
        emit(event)

    params = CopyParams(micros(settings.since) if settings.since else None)
    interrupted = run_ranges(config, run, {s.qualified: s for s in specs}, copy_job, params, store,
                             checkpoints, max_attempts=settings.max_attempts,
                             retry_splits=settings.retry_splits, on_event=on_range)
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
        record_evidence(store, evidence, operator_name())

