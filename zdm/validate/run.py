"""``validate(config, settings) -> ValidationReport``: compare every table in scope, range by range.

First the rows the proxies recorded as divergent are re-checked (and with autocorrect,
repaired) one partition at a time (:mod:`zdm.validate.recorded`); a record still pending
makes the validation not clean.

The ranges run through range work's one coordinator (:func:`zdm.ranges.coordinator.run_ranges`)
with :func:`compare_job` as the job, on the engine ``run`` names, and fail over to smaller
pieces as a copy's do.  Each finished range is checkpointed with what it found
(:class:`~zdm.validate.findings.Findings`; ``state_store``'s checkpoints, kind
``validate``): ``resume`` skips the ranges an interrupted run finished and counts their
findings; ``only_failed`` re-checks only the ranges that differed or failed last time, and
carries the clean ones over, so the report still covers every range.

On a table whose non-frozen collections or UDTs took the copy's fallback (origin before
Cassandra 5.0 cannot read their cells' writetimes and TTLs), those columns are compared
by contents only; each table's ``contents_only`` lists them, and the CLI says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from zdm.clock import parse_time, utcnow
from zdm.config import Config
from zdm.errors import ZdmError
from zdm.migrate.schema import TableSpec
from zdm.migrate.tables import plan_run, plan_tables, with_fallback_timestamp
from zdm.phases import ValidationEvidence, record_evidence
from zdm.phases.evidence import operator_name
from zdm.ranges.context import RunSettings, WorkerContext
from zdm.ranges.coordinator import run_ranges
from zdm.ranges.events import RangeDone, RangeFailed
from zdm.ranges.ring import TokenRange
from zdm.scope import Scope
from zdm.state import TableCheckpoint, open_checkpoints, open_store
from zdm.validate.compare import ValidationParams, compare_range
from zdm.validate.findings import COUNTS, Findings, detail_clean
from zdm.validate.recorded import RecheckReport, recheck


@dataclass(frozen=True)
class ValidationSettings:
    #: how the command's options narrow the config's scope (:meth:`zdm.scope.Scope.narrow`)
    scope: Scope = field(default_factory=Scope)
    run: RunSettings = field(default_factory=RunSettings)
    params: ValidationParams = field(default_factory=ValidationParams)
    final: bool = False  # the validation after reads moved to target
    max_attempts: int = 3
    retry_splits: int = 4
    record_evidence: bool = True
    #: when dual writes began, for autocorrect's fallback writes (None: the state's record)
    dual_writes_since: datetime | None = None
    resume: bool = False  # skip the ranges an interrupted validation finished
    only_failed: bool = False  # re-check only the ranges that differed or failed last time


@dataclass(kw_only=True)
class TableValidation(Findings):
    """A table's findings: its ranges' (:class:`~zdm.validate.findings.Findings`) summed."""

    table: str
    #: columns compared by contents only (their cells' writetimes are not origin's)
    contents_only: list[str] = field(default_factory=list)
    failed_ranges: list[dict] = field(default_factory=list)
    ranges_total: int = 0
    #: ranges not compared in this run: an earlier run's findings stand for them
    ranges_carried: int = 0

    @property
    def clean(self) -> bool:
        return self.remaining == 0 and not self.failed_ranges

    def to_json(self) -> dict:
        return {"table": self.table, "contents_only": self.contents_only,
                **{name: getattr(self, name) for name in COUNTS}, "differences": self.differences,
                "failed_ranges": self.failed_ranges, "ranges_total": self.ranges_total,
                "ranges_carried": self.ranges_carried,
                "clean": self.clean, "found": self.found, "remaining": self.remaining}


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
            "tables": [t.to_json() for t in self.tables],
            "recorded": self.recorded.to_json(),
        }


async def compare_job(ctx: WorkerContext, spec: TableSpec, rng: TokenRange,
                      params: ValidationParams, on_rows) -> Findings:
    """The pool's job for validate: one range comparison."""
    return await compare_range(ctx, spec, rng, params, on_rows)


def validate(config: Config, settings: ValidationSettings,
             on_event: Callable[[object], None] | None = None) -> ValidationReport:
    """Events: the :class:`~zdm.validate.recorded.RecheckReport` of the recorded rows, then
    range work's (:mod:`zdm.ranges.events`)."""
    emit = on_event or (lambda _e: None)
    started = utcnow()
    run, specs, plan, _since = plan_run(
        config, settings.scope, settings.run, dual_writes_since=settings.dual_writes_since,
        needed_for="repairing" if settings.params.autocorrect else None)
    tables = {s.qualified: TableValidation(table=s.qualified,
                                           contents_only=[c.name for c in s.fallback_columns])
              for s in specs}
    recorded = recheck(config, {s.qualified: s for s in specs}, repair=settings.params.autocorrect,
                       params=settings.params)
    emit(recorded)
    listed = settings.params.max_listed
    with open_checkpoints(config, "validate") as store:
        checkpoints = {s.qualified: _checkpoint(store, s.qualified, plan, started, settings)
                       for s in specs}
        for name, cp in checkpoints.items():
            table = tables[name]
            table.ranges_total = len(cp.plan)
            table.ranges_carried = sum(1 for r in cp.plan if r in cp.done)
            for rng in cp.done:
                table.add(cp.details[rng], listed)

        def on_range(event: object) -> None:
            if isinstance(event, RangeDone):
                tables[event.table].add(event.detail, listed)
            elif isinstance(event, RangeFailed) and event.final:
                tables[event.table].failed_ranges.append({"range": event.range, "error": event.error})
            emit(event)

        interrupted = run_ranges(config, run, {s.qualified: s for s in specs}, compare_job,
                                 settings.params, store, checkpoints,
                                 max_attempts=settings.max_attempts,
                                 retry_splits=settings.retry_splits, on_event=on_range,
                                 record=lambda found: (found.rows_origin, found.detail(listed)))
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
            record_evidence(store, evidence, operator_name())
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
