"""Guards: one pure function per condition a transition needs.

Each guard is ``(state, facts, thresholds) -> list[Reason]``; an empty list means the
condition holds. A guard never raises for an unmet condition and never stops at the
first problem: the machine runs all guards of a transition and reports every reason.
``guard.relies_on`` names the evidence kinds it reads (copied into the journal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from zdm.phases.evidence import evidence_of
from zdm.phases.facts import Facts
from zdm.phases.model import Phase
from zdm.phases.state import MigrationState


@dataclass(frozen=True)
class Reason:
    what: str   # the unmet condition
    todo: str   # what to do about it, with the exact zdm command when there is one


@dataclass(frozen=True)
class Thresholds:
    max_async_error_rate: float = 0.001
    max_async_mismatch_rate: float = 0.0
    min_async_requests: int = 100
    min_target_reads: timedelta = timedelta(0)   # time reads must stay on target before cutover


Guard = Callable[[MigrationState, Facts, Thresholds], list[Reason]]


def relies_on(*kinds: str) -> Callable[[Guard], Guard]:
    def mark(fn: Guard) -> Guard:
        fn.relies_on = kinds  # type: ignore[attr-defined]
        return fn
    return mark


@relies_on()
def routing_applied(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    status = state.routing_status
    if status.applied:
        return []
    lagging = [p.name for p in facts.proxies
               if p.applied_revision is None or p.applied_revision < status.revision]
    who = f" (not yet applied by {', '.join(lagging)})" if lagging else ""
    return [Reason(f"routing revision {status.revision} is not confirmed on every proxy{who}",
                   "run `zdm phase confirm-routing` once every proxy applied it "
                   "(see `zdm status`)")]


@relies_on("preflight")
def preflight_current(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    pre = evidence_of(state, "preflight")
    if pre is None:
        return [Reason("no preflight has been recorded", "run `zdm preflight`")]
    if not pre.passed:
        return [Reason(f"the last preflight failed: {pre.summary or 'see its report'}",
                       "fix what it reported, then run `zdm preflight`")]
    if facts.schema_fingerprint is None:
        return [Reason("the current schema fingerprint could not be computed",
                       "check both clusters are reachable, then run `zdm preflight`")]
    if facts.schema_fingerprint != pre.schema_fingerprint:
        return [Reason("the schema changed since the last preflight passed",
                       "run `zdm preflight` again")]
    return []


@relies_on()
def proxies_connected(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    running = [p for p in facts.proxies if p.running]
    if not running:
        return [Reason("no proxy is running", "run `zdm proxy start`")]
    reasons = []
    for p in running:
        missing = [c for c, ok in (("origin", p.origin_connected),
                                   ("target", p.target_connected)) if not ok]
        if missing:
            reasons.append(Reason(f"proxy {p.name} is not connected to {' and '.join(missing)}",
                                  f"check proxy {p.name}'s logs and cluster settings, then "
                                  "`zdm proxy start` again"))
    return reasons


@relies_on()
def proxies_running(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    """A routing change waits for every registered proxy: one that is not running would not
    apply it, so the change is held rather than applied by some proxies only."""
    reasons = []
    for p in facts.proxies:
        if not p.running:
            when = "has never sent a heartbeat" if p.heartbeat_age_s is None else \
                f"sent its last heartbeat {p.heartbeat_age_s:g}s ago"
            reasons.append(Reason(
                f"proxy {p.name} is registered but not running (it {when}; routing revision "
                f"{p.applied_revision} applied): it would not apply the new routing",
                f"start proxy {p.name} again (`zdm proxy start`), or if it is gone for good, "
                f"`zdm proxy deregister {p.name}`"))
    return reasons


@relies_on("clients_on_proxy")
def clients_on_proxy(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    if facts.confirm_clients_on_proxy or "clients_on_proxy" in state.evidence:
        return []
    return [Reason("nobody confirmed that every client now connects through the proxy",
                   "once they do, run `zdm phase advance --confirm-clients-on-proxy`")]


@relies_on("migration", "clients_on_proxy")
def migration_complete(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    mig = evidence_of(state, "migration")
    if mig is None:
        return [Reason("no data migration has been recorded", "run `zdm migrate`")]
    reasons = []
    if not mig.complete or mig.finished_at is None:
        reasons.append(Reason("the data migration has not completed",
                              "run `zdm migrate` (it resumes) until it completes"))
    missing = sorted(set(facts.tables or ()) - set(mig.tables))
    if missing:
        reasons.append(Reason(f"tables not migrated: {', '.join(missing)}", "run `zdm migrate`"))
    confirmed = evidence_of(state, "clients_on_proxy")
    if confirmed is not None and mig.started_at < confirmed.at:
        # Rows written before every client went through the proxy exist only on origin
        # unless the copy started afterwards.
        reasons.append(Reason("the migration started before clients were confirmed on the proxy",
                              "run `zdm migrate` again from the start"))
    return reasons


@relies_on("validation", "migration")
def validation_clean(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    mig = evidence_of(state, "migration")
    scope = set(facts.tables or ()) | set(mig.tables if mig else ())
    return _validation_reasons(state, "validation", scope,
                               after=mig.finished_at if mig else None,
                               after_what="the migration finished", command="`zdm validate`")


@relies_on("final_validation", "migration")
def final_validation_clean(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    mig = evidence_of(state, "migration")
    scope = set(facts.tables or ()) | set(mig.tables if mig else ())
    return _validation_reasons(state, "final_validation", scope, after=reads_moved_at(state),
                               after_what="reads moved to target",
                               command="`zdm validate --final`")


def _validation_reasons(state: MigrationState, kind: str, scope: set[str],
                        after: datetime | None, after_what: str, command: str) -> list[Reason]:
    val = evidence_of(state, kind)
    label = kind.replace("_", " ")
    if val is None:
        return [Reason(f"no {label} has been recorded", f"run {command}")]
    reasons = []
    if after is not None and val.started_at < after:
        reasons.append(Reason(f"the {label} started before {after_what}", f"run {command}"))
    if val.finished_at is None:
        reasons.append(Reason(f"the {label} did not finish", f"run {command}"))
    if not val.clean or val.differences:
        reasons.append(Reason(f"the {label} found {val.differences} difference(s)",
                              f"repair them (re-run `zdm migrate` for those tables), then run "
                              f"{command}"))
    missing = sorted(scope - set(val.tables))
    if missing:
        reasons.append(Reason(f"tables not validated: {', '.join(missing)}", f"run {command}"))
    return reasons


@relies_on()
def async_reads_skipped(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    if facts.skip_async_reads:
        return []
    return [Reason("moving reads to target from phase 2 skips the async-reads check",
                   "advance to phase 3 first, or pass `--skip-async-reads` to skip it")]


@relies_on("async_reads")
def async_reads_healthy(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    stats = facts.async_reads or evidence_of(state, "async_reads")
    wait = "let client traffic run in phase 3 and check `zdm status`"
    if stats is None or stats.requests <= 0:
        return [Reason("no async reads have been observed", wait)]
    reasons = []
    if stats.requests < th.min_async_requests:
        reasons.append(Reason(f"only {stats.requests} async reads observed, "
                              f"{th.min_async_requests} required", wait))
    if stats.error_rate > th.max_async_error_rate:
        reasons.append(Reason(f"async read error rate {stats.error_rate:.4%} exceeds "
                              f"{th.max_async_error_rate:.4%}",
                              "check target's health and the proxy logs; roll back with "
                              "`zdm rollback` if target cannot serve reads"))
    if stats.mismatch_rate > th.max_async_mismatch_rate:
        reasons.append(Reason(f"async read mismatch rate {stats.mismatch_rate:.4%} exceeds "
                              f"{th.max_async_mismatch_rate:.4%}",
                              "run `zdm validate` to find and repair the differences"))
    return reasons


@relies_on()
def async_window_current(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    """The async-read counters must describe this stay in phase 3, not an earlier one."""
    stats = facts.async_reads
    if stats is None or state.entered_at is None or stats.since >= state.entered_at - timedelta(seconds=5):
        return []
    return [Reason(f"the proxies' async-read counters date from {stats.since.isoformat()}, before "
                   f"phase 3 was entered ({state.entered_at.isoformat()})",
                   "wait a few seconds for every proxy to start counting anew, then retry")]


@relies_on()
def divergences_resolved(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    """No row the proxies recorded as divergent may be pending when reads or clients move."""
    if not facts.divergences:
        return []
    total = sum(sum(kinds.values()) for kinds in facts.divergences.values())
    tables = ", ".join(f"{t} ({', '.join(f'{n} {k}' for k, n in kinds.items())})"
                       for t, kinds in facts.divergences.items())
    return [Reason(f"{total} row(s) recorded as divergent by the proxies are not resolved: {tables}",
                   "run `zdm repair` (or `zdm validate --autocorrect`), then retry")]


def reads_moved_at(state: MigrationState) -> datetime | None:
    """When every proxy confirmed serving reads from target (None if not, or not phase 4)."""
    if state.phase != Phase.TARGET_READS or not state.routing_status.applied:
        return None
    return state.routing_status.applied_at or state.entered_at


@relies_on()
def reads_on_target(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    moved = reads_moved_at(state)
    if moved is None:
        return []  # routing_applied reports the missing confirmation
    if facts.now - moved < th.min_target_reads:
        return [Reason(f"reads have been on target since {moved.isoformat()}, less than "
                       f"{th.min_target_reads}", "wait, watching `zdm status`, then retry")]
    return []


@relies_on("clients_on_target")
def clients_on_target(state: MigrationState, facts: Facts, th: Thresholds) -> list[Reason]:
    if facts.confirm_clients_on_target or "clients_on_target" in state.evidence:
        return []
    return [Reason("nobody confirmed that clients now connect to target directly",
                   "repoint the clients at target, then run "
                   "`zdm phase advance --confirm-clients-on-target`")]

