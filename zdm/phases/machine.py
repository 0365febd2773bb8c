"""The phase machine: the transition table, its guards, and the commands that persist it.

Theory of operation: :data:`TABLE` is the whole policy. For each attempt a throwaway
``transitions.Machine`` is built over a small model holding (state, facts, thresholds);
each row has ONE condition that runs all of the row's guards and keeps every reason, so a
refusal lists them all. ``transitions`` reports a failed condition by returning False;
:func:`_decide` turns that, and an invalid trigger, into :class:`TransitionRefused`.

Invariants:
- ``auto_transitions=False``: the model has no ``to_<state>()`` that would bypass guards.
- :func:`advance` / :func:`rollback` load under the store lock, decide, and write only
  after the transition succeeded; a refusal leaves the state file byte-identical.
- Only a routing change makes ``routing_status`` pending; :func:`confirm_routing` marks it
  applied once every registered proxy acknowledged it, and every advance requires that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from transitions import Machine, MachineError

from zdm.clock import iso, utcnow
from zdm.phases.errors import RoutingPending, TransitionRefused
from zdm.phases.evidence import ClientsOnProxyConfirmed, ClientsOnTargetConfirmed, to_record
from zdm.phases.facts import Facts
from zdm.phases.guards import (Guard, Reason, Thresholds, async_reads_healthy, async_reads_skipped,
                               async_window_current, clients_on_proxy, clients_on_target,
                               divergences_resolved, final_validation_clean, migration_complete,
                               preflight_current, proxies_connected, proxies_running,
                               reads_on_target,
                               routing_applied, validation_clean)
from zdm.phases.model import Phase, routing_for
from zdm.phases.state import HistoryEntry, MigrationState, RoutingStatus

if TYPE_CHECKING:  # a real cycle at run time: the stores (zdm.state) import zdm.phases.state
    from zdm.state.store import StateStore

Action = Literal["advance", "rollback"]
P = Phase

TABLE: list[tuple[Action, str, Phase, Phase, tuple[Guard, ...]]] = [
    # action, trigger, source, dest, guards (all evaluated; every unmet one is reported)
    ("advance", "deploy_proxy", P.PLAN, P.PROXY,
     (routing_applied, preflight_current, proxies_connected)),
    ("advance", "start_migration", P.PROXY, P.MIGRATE,
     (routing_applied, clients_on_proxy)),
    ("advance", "start_async_reads", P.MIGRATE, P.ASYNC_READS,
     (routing_applied, proxies_running, migration_complete, validation_clean)),
    ("advance", "route_reads_to_target", P.MIGRATE, P.TARGET_READS,
     (routing_applied, proxies_running, async_reads_skipped, migration_complete, validation_clean,
      divergences_resolved)),
    ("advance", "route_reads_to_target", P.ASYNC_READS, P.TARGET_READS,
     (routing_applied, proxies_running, async_window_current, async_reads_healthy,
      divergences_resolved)),
    ("advance", "cut_over", P.TARGET_READS, P.CUTOVER,
     (routing_applied, reads_on_target, final_validation_clean, clients_on_target,
      divergences_resolved)),
    # Rollbacks are the escape hatch: no guard may block them. Nothing leaves CUTOVER.
    ("rollback", "stop_async_reads", P.ASYNC_READS, P.MIGRATE, ()),
    ("rollback", "reads_back_to_async", P.TARGET_READS, P.ASYNC_READS, ()),
    ("rollback", "reads_back_to_origin", P.TARGET_READS, P.MIGRATE, ()),
    ("rollback", "clients_back_to_origin", P.PROXY, P.PLAN, ()),
    ("rollback", "clients_back_to_origin", P.MIGRATE, P.PLAN, ()),
    ("rollback", "clients_back_to_origin", P.ASYNC_READS, P.PLAN, ()),
    ("rollback", "clients_back_to_origin", P.TARGET_READS, P.PLAN, ()),
]

# Evidence that no longer holds after rolling back to a phase. Back to PLAN, clients write
# to origin only, so the copy and everything after it must be redone; the preflight stays
# (its fingerprint is re-checked). Back to 2 or 3, writes never stopped reaching both
# clusters, so the copy stands; async-read counters and anything observed with reads on
# target are collected afresh.
CLEARED_BY_ROLLBACK_TO: dict[Phase, frozenset[str]] = {
    P.PLAN: frozenset({"clients_on_proxy", "migration", "validation", "async_reads",
                       "final_validation", "clients_on_target"}),
    P.MIGRATE: frozenset({"async_reads", "final_validation", "clients_on_target"}),
    P.ASYNC_READS: frozenset({"async_reads", "final_validation", "clients_on_target"}),
}


@dataclass(frozen=True)
class Move:
    action: Action
    trigger: str
    source: Phase
    dest: Phase
    guards: tuple[Guard, ...]

    @property
    def relies_on(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for g in self.guards for k in getattr(g, "relies_on", ())))


MOVES: dict[tuple[str, Phase, Phase], Move] = {(m.action, m.source, m.dest): m
                                               for m in (Move(*row) for row in TABLE)}


@dataclass(frozen=True)
class Verdict:
    """The outcome of evaluating a command without persisting anything."""

    action: Action
    source: Phase
    dest: Phase | None
    reasons: tuple[Reason, ...]

    @property
    def allowed(self) -> bool:
        return not self.reasons


class _Model:
    """What the ``transitions`` machine drives: one evaluation, its reasons kept."""

    state: Phase

    def __init__(self, state: MigrationState, facts: Facts, thresholds: Thresholds) -> None:
        self.migration = state
        self.facts = facts
        self.thresholds = thresholds
        self.reasons: list[Reason] = []

    def check(self, move: Move) -> bool:
        self.reasons = [r for g in move.guards
                        for r in g(self.migration, self.facts, self.thresholds)]
        return not self.reasons


def _build_machine(model: _Model) -> Machine:
    moves = [Move(*row) for row in TABLE]
    rows = [{"trigger": m.trigger, "source": m.source, "dest": m.dest,
             "conditions": [lambda m=m: model.check(m)]} for m in moves]
    return Machine(model=model, states=list(Phase), transitions=rows,
                   initial=model.migration.phase, auto_transitions=False)


def _destination(state: MigrationState, facts: Facts, action: Action,
                 to: int | None) -> tuple[Phase | None, list[Reason]]:
    """The phase asked for, or the structural reasons it cannot even be considered."""
    here = state.phase
    if here == P.CUTOVER:
        if action == "rollback":
            return None, [Reason("phase 5 CUTOVER cannot be rolled back: clients write to target "
                                 "directly and origin no longer receives writes, so going back "
                                 "would lose them",
                                 "recover on target, or plan a new migration from target back "
                                 "to origin")]
        return None, [Reason("phase 5 CUTOVER is the last phase", "nothing to do")]
    if action == "rollback" and here == P.PLAN:
        return None, [Reason("phase 0 PLAN is the first phase", "nothing to roll back")]
    if to is None:
        if action == "advance":
            skip = here == P.MIGRATE and facts.skip_async_reads
            return (P.TARGET_READS if skip else Phase(here + 1)), []
        return (P.ASYNC_READS if here == P.TARGET_READS
                else P.MIGRATE if here == P.ASYNC_READS else P.PLAN), []
    try:
        dest = Phase(to)
    except ValueError:
        return None, [Reason(f"there is no phase {to}", "phases are 0 to 5; see `zdm status`")]
    if action == "advance" and dest <= here:
        todo = f"run `zdm rollback --to {int(dest)}`" if dest < here else "nothing to do"
        return dest, [Reason(f"{dest.label} is not ahead of {here.label}", todo)]
    if action == "rollback" and dest >= here:
        todo = f"run `zdm phase advance --to {int(dest)}`" if dest > here else "nothing to do"
        return dest, [Reason(f"{dest.label} is not behind {here.label}", todo)]
    return dest, []


def _no_move(action: Action, here: Phase, dest: Phase) -> Reason:
    options = [m.dest for m in MOVES.values() if m.action == action and m.source == here]
    allowed = ", ".join(p.label for p in options)
    if action == "advance":
        return Reason(f"{here.label} cannot advance directly to {dest.label}; phases are "
                      f"passed one at a time (from here: {allowed})",
                      "run `zdm phase advance` for each phase in turn")
    return Reason(f"{here.label} cannot roll back to {dest.label} (from here: {allowed})",
                  f"run `zdm rollback --to N` with N one of: "
                  f"{', '.join(str(int(p)) for p in options)}")


def _decide(state: MigrationState, facts: Facts, action: Action, to: int | None,
            thresholds: Thresholds) -> Move:
    """The move to make, or :class:`TransitionRefused` listing every unmet reason."""
    here = state.phase
    dest, reasons = _destination(state, facts, action, to)
    if reasons or dest is None:
        raise TransitionRefused(action, here, dest, reasons)
    move = MOVES.get((action, here, dest))
    if move is None:
        raise TransitionRefused(action, here, dest, [_no_move(action, here, dest)])
    model = _Model(state, facts, thresholds)
    _build_machine(model)
    try:
        fired = getattr(model, move.trigger)()
    except MachineError as exc:  # the table and MOVES disagree: a bug, but never silent
        raise TransitionRefused(action, here, dest,
                                [Reason(str(exc), "report this zdm bug")]) from None
    if not fired:
        raise TransitionRefused(action, here, dest, model.reasons or [
            Reason("the transition was refused without a reason", "report this zdm bug")])
    assert model.state == dest, (model.state, dest)
    return move


def evaluate(state: MigrationState, facts: Facts, *, action: Action = "advance",
             to: int | None = None, thresholds: Thresholds | None = None) -> Verdict:
    """Dry run (for ``zdm status``): would this command be allowed, and if not, why."""
    try:
        move = _decide(state, facts, action, to, thresholds or Thresholds())
    except TransitionRefused as refused:
        dest = refused.dest if isinstance(refused.dest, Phase) else None
        return Verdict(action, state.phase, dest, tuple(refused.reasons))
    return Verdict(action, state.phase, move.dest, ())


def apply_move(state: MigrationState, move: Move, facts: Facts, *, operator: str,
               why: str | None = None) -> MigrationState:
    """Pure: the state after ``move`` (which the guards already allowed)."""
    now = facts.now
    evidence = dict(state.evidence)
    for kind in CLEARED_BY_ROLLBACK_TO.get(move.dest, ()) if move.action == "rollback" else ():
        evidence.pop(kind, None)
    confirmations = ((move.dest == P.MIGRATE and facts.confirm_clients_on_proxy,
                      ClientsOnProxyConfirmed(now, operator)),
                     (move.dest == P.CUTOVER and facts.confirm_clients_on_target,
                      ClientsOnTargetConfirmed(now, operator)))
    for wanted, record in confirmations:
        if wanted and move.action == "advance" and record.kind not in evidence:
            evidence[record.kind] = {**to_record(record), "recorded_by": operator,
                                     "recorded_at": iso(now)}
    revision = state.revision + 1
    routing_status = state.routing_status
    if routing_for(move.dest) != routing_for(move.source):
        routing_status = RoutingStatus(revision=revision, applied=False)
    entry = HistoryEntry(revision, now, operator, move.action, move.trigger, move.source,
                         move.dest, why)
    return state.bump(now, phase=move.dest, entered_at=now, evidence=evidence,
                      routing_status=routing_status, history=(*state.history, entry))


def _transition(store: StateStore, facts: Facts, action: Action, to: int | None,
                operator: str, why: str | None, thresholds: Thresholds | None,
                source: str) -> MigrationState:
    with store.transaction() as txn:
        move = _decide(txn.state, facts, action, to, thresholds or Thresholds())
        new = apply_move(txn.state, move, facts, operator=operator, why=why)
        txn.commit(new, journal={
            "at": iso(facts.now), "operator": operator, "source": source, "event": action,
            "trigger": move.trigger,
            "from": int(move.source), "to": int(move.dest), "why": why,
            "revision": new.revision, "routing": new.routing.to_dict(),
            "routing_pending": not new.routing_status.applied,
            "evidence": {k: txn.state.evidence[k] for k in move.relies_on
                         if k in txn.state.evidence},
            "facts": facts.to_dict(),
        })
    return new


def advance(store: StateStore, facts: Facts, *, to: int | None = None, operator: str,
            why: str | None = None, thresholds: Thresholds | None = None,
            source: str = "cli") -> MigrationState:
    """Move forward (one phase, or 2->4 with ``facts.skip_async_reads``) if every guard holds.
    ``source`` (``"cli"``, ``"console"``) says in the journal where the command came from."""
    return _transition(store, facts, "advance", to, operator, why, thresholds, source)


def rollback(store: StateStore, facts: Facts, *, to: int | None = None, operator: str,
             why: str | None = None, source: str = "cli") -> MigrationState:
    """Move back (default: 4->3, 3->2, 2->0, 1->0); never from 5."""
    return _transition(store, facts, "rollback", to, operator, why, None, source)


def confirm_routing(store: StateStore, *, operator: str, timeout: float = 0.0,
                    poll: float = 0.1, now: datetime | None = None,
                    source: str = "cli") -> MigrationState:
    """Mark the current routing applied once every registered proxy acknowledged it.

    Waits up to ``timeout`` seconds (outside the lock) for acknowledgements; raises
    :class:`RoutingPending` naming the proxies still lagging. No-op when already applied.
    """
    state = store.load()
    if state.routing_status.applied:
        return state
    store.wait_for_acks(state.routing_status.revision, timeout, poll)
    with store.transaction() as txn:
        status = txn.state.routing_status
        if status.applied:
            return txn.state
        acks = store.routing_acks()
        lagging = sorted(n for n, r in acks.items() if r is None or r < status.revision)
        if lagging:
            raise RoutingPending(status.revision, lagging)
        now = now or utcnow()
        new = txn.state.bump(now, routing_status=RoutingStatus(status.revision, True, now, acks))
        txn.commit(new, journal={"at": iso(now), "operator": operator, "source": source,
                                 "event": "routing_applied",
                                 "phase": int(new.phase), "revision": new.revision,
                                 "routing_revision": status.revision, "acks": acks})
    return new
