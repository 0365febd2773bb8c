"""``validate(config, settings) -> ValidationReport``: compare every table in scope, range by range.

First the rows the proxies recorded as divergent are re-checked (and with autocorrect,
repaired) one partition at a time (:mod:`zdm.validate.recorded`); a record still pending
makes the validation not clean.

Each finished range is checkpointed with what it found (``state_store``'s checkpoints, kind
``validate``): ``resume`` skips the ranges an interrupted run finished and counts their
findings; ``only_failed`` re-checks only the ranges that differed or failed last time, and
carries the clean ones over, so the report still covers every range.

On a table whose non-frozen collections or UDTs took the copy's fallback (origin before
Cassandra 5.0 cannot read their cells' writetimes and TTLs), those columns are compared
by contents only; each table's ``contents_only`` lists them, and the CLI says so.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from zdm.clock import parse_time, utcnow
from zdm.config import Config
from zdm.errors import ZdmError
from zdm.migrate.context import RunSettings, WorkerContext
from zdm.migrate import engine
from zdm.migrate.pool import Job
from zdm.migrate.ring import TokenRange
from zdm.migrate.run import operator, plan_tables, with_fallback_timestamp
from zdm.migrate.schema import TableSpec
from zdm.phases import ValidationEvidence, record_evidence
from zdm.scope import Scope
from zdm.state import TableCheckpoint, open_checkpoints, open_store
from zdm.validate.compare import RangeComparison, ValidationParams, compare_range
from zdm.validate.recorded import RecheckReport, recheck


@dataclass(frozen=True)
class ValidationSettings:
    #: how the command's options narrow the config's scope (:meth:`zdm.scope.Scope.narrow`)
    scope: Scope = field(default_factory=Scope)
    run: RunSettings = field(default_factory=RunSettings)
    params: ValidationParams = field(default_factory=ValidationParams)
    final: bool = False  # the validation after reads moved to target
    max_attempts: int = 3
    record_evidence: bool = True
    #: when dual writes began, for autocorrect's fallback writes (None: the state's record)
    dual_writes_since: datetime | None = None
    resume: bool = False  # skip the ranges an interrupted validation finished
    only_failed: bool = False  # re-check only the ranges that differed or failed last time


#: a range comparison's counters, as TableValidation sums them
COUNTS = ("rows_origin", "rows_target", "missing_on_target", "only_on_target", "cells_differ",
          "fixed", "live_resolved")


def range_detail(r: RangeComparison, max_listed: int) -> dict:
    """What a range comparison found, JSON-ready, for its checkpoint."""
    listed = [vars(d) for d in r.differences[:max_listed]]
    return {**{name: getattr(r, name) for name in COUNTS},
            "differences": json.loads(json.dumps(listed, default=str))}


def detail_clean(detail: dict | None) -> bool:
    if detail is None:
        return False
    found = detail["missing_on_target"] + detail["only_on_target"] + detail["cells_differ"]
    return found - detail["fixed"] == 0


@dataclass
class TableValidation:
    table: str
    #: columns compared by contents only (their cells' writetimes are not origin's)
    contents_only: list[str] = field(default_factory=list)
    rows_origin: int = 0
    rows_target: int = 0
    missing_on_target: int = 0
    only_on_target: int = 0
    cells_differ: int = 0
    fixed: int = 0
    live_resolved: int = 0
    differences: list[dict] = field(default_factory=list)
    failed_ranges: list[dict] = field(default_factory=list)
    ranges_total: int = 0
    #: ranges not compared in this run: an earlier run's findings stand for them
    ranges_carried: int = 0

    @property
    def found(self) -> int:
        return self.missing_on_target + self.only_on_target + self.cells_differ

    @property
    def remaining(self) -> int:
        return self.found - self.fixed

    @property
    def clean(self) -> bool:
        return self.remaining == 0 and not self.failed_ranges

    def add(self, detail: dict, max_listed: int) -> None:
        """Count one range's findings (:func:`range_detail`)."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + detail[name])
        room = max_listed - len(self.differences)
        self.differences.extend(detail["differences"][:max(0, room)])


@dataclass
class ValidationReport:
    tables: list[TableValidation]
    started_at: datetime
    finished_at: datetime
    autocorrect: bool = False
    interrupted: bool = False
    recorded: RecheckReport = field(default_factory=RecheckReport)

    @property
    def differences(self) -> int:
        return sum(t.remaining for t in self.tables) + len(self.recorded.pending)

    @property
    def clean(self) -> bool:
        return not self.interrupted and all(t.clean for t in self.tables) and not self.recorded.pending

    @property
    def elapsed_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict:
        return {
            "clean": self.clean, "differences": self.differences, "autocorrect": self.autocorrect,
            "interrupted": self.interrupted,
            "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat(),
            "elapsed_s": round(self.elapsed_s, 3),
            "tables": [{**vars(t), "clean": t.clean, "found": t.found, "remaining": t.remaining}
                       for t in self.tables],
            "recorded": self.recorded.to_json(),
        }


async def compare_job(ctx: WorkerContext, spec: TableSpec, rng: TokenRange,
                      params: ValidationParams, on_rows) -> RangeComparison:
    """The pool's job for validate: one range comparison."""
    return await compare_range(ctx, spec, rng, params, on_rows)


def validate(config: Config, settings: ValidationSettings,
             on_event: Callable[[tuple], None] | None = None) -> ValidationReport:
    emit = on_event or (lambda _e: None)
    started = utcnow()
    run = engine.prepare(settings.run)
    specs, plan = plan_tables(config, settings.scope, run)
    if not specs:
        raise ZdmError("no tables in scope", hint="check scope.keyspaces in zdm.yaml or --keyspace")
    specs, _since = with_fallback_timestamp(
        config, specs, settings.dual_writes_since,
        needed_for="repairing" if settings.params.autocorrect else None)
    tables = {s.qualified: TableValidation(s.qualified, [c.name for c in s.fallback_columns])
              for s in specs}
    recorded = recheck(config, {s.qualified: s for s in specs}, repair=settings.params.autocorrect,
                       params=settings.params)
    emit(("recorded", recorded))
    listed = settings.params.max_listed
    with open_checkpoints(config, "validate") as store:
        checkpoints = {s.qualified: _checkpoint(store, s.qualified, plan, started, settings)
                       for s in specs}
        jobs = []
        for name, cp in checkpoints.items():
            table = tables[name]
            table.ranges_total = len(cp.plan)
            table.ranges_carried = sum(1 for r in cp.plan if r in cp.done)
            for rng in cp.done:
                table.add(cp.details[rng], listed)
            todo = cp.remaining()
            emit(("planned", name, len(cp.plan), len(cp.plan) - len(todo)))
            jobs.extend(Job(name, r) for r in todo)

        def handle(event: tuple) -> list[Job]:
            kind = event[0]
            if kind == "rows":
                emit(event)
                return []
            job: Job = event[1]
            if kind == "done":
                detail = range_detail(event[2], listed)
                store.mark_done(checkpoints[job.table], job.rng, event[2].rows_origin, detail)
                tables[job.table].add(detail, listed)
                emit(("range_done", job.table, job.rng.key()))
                return []
            if job.attempt < settings.max_attempts and job.rng.width >= 2:
                return [Job(job.table, piece, job.attempt + 1) for piece in job.rng.split(4)]
            tables[job.table].failed_ranges.append({"range": job.rng.key(), "error": event[2]})
            emit(("range_failed", job.table, job.rng.key(), event[2]))
            return []

        interrupted = False
        try:
            engine.run_jobs(config, run, {s.qualified: s for s in specs}, compare_job,
                            settings.params, jobs, handle)
        except KeyboardInterrupt:
            interrupted = True
    # the evidence covers findings carried from an earlier run: it dates from when that began
    covers_from = min([started] + [parse_time(cp.started_at) for cp in checkpoints.values()
                                   if cp.started_at and cp.done])
    report = ValidationReport(list(tables.values()), started, utcnow(),
                              autocorrect=settings.params.autocorrect, interrupted=interrupted,
                              recorded=recorded)
    if settings.record_evidence and not interrupted:
        evidence = ValidationEvidence(tables=sorted(t.table for t in report.tables if not t.failed_ranges),
                                      started_at=covers_from, finished_at=report.finished_at,
                                      differences=report.differences, clean=report.clean,
                                      final=settings.final)
        with open_store(config) as store:
            record_evidence(store, evidence, operator())
    return report


def _checkpoint(store, table: str, plan: list[TokenRange], started: datetime,
                settings: ValidationSettings) -> TableCheckpoint:
    """This run's checkpoint of ``table``: the interrupted one (``resume``), a new one that
    carries the clean ranges of the last one (``only_failed``), or a fresh one."""
    last = store.load(table) if settings.resume or settings.only_failed else None
    if settings.resume and last is not None and not last.complete:
        return last
    if settings.only_failed:
        if last is None:
            raise ZdmError(f"{table} has no earlier validation to re-check",
                           hint="run `zdm validate` first; --only-failed re-checks what it found")
        clean = TableCheckpoint(table, last.plan,
                                done={r: n for r, n in last.done.items() if detail_clean(last.details.get(r))},
                                details={r: d for r, d in last.details.items() if detail_clean(d)})
        return store.start(table, last.plan, last.started_at, carried=clean)
    return store.start(table, plan, started.isoformat())


def repair(config: Config, scope: Scope | None = None, run: RunSettings | None = None) -> RecheckReport:
    """`zdm repair`: copy every recorded row from the cluster that has it right to the other,
    with its writetimes (a newer live write wins), and resolve the records it fixed."""
    with open_store(config) as store:
        pending = store.divergences().pending()
    if not pending:
        return RecheckReport()
    wanted = tuple(sorted({f"{r.get('keyspace')}.{r.get('table')}" for r in pending}))
    scope = scope or Scope()
    specs, _ = plan_tables(config, dataclasses.replace(scope, tables=scope.tables or wanted),
                           run or RunSettings(workers=0))
    specs, _since = with_fallback_timestamp(config, specs, None, needed_for="repairing")
    return recheck(config, {s.qualified: s for s in specs}, repair=True, run=run)
