"""The transition table through the public API: advance, rollback, confirm_routing."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from zdm.phases import (AsyncReadStats, ClientsOnTargetConfirmed, Facts, MigrationEvidence, Phase,
                        PreflightEvidence, ProxyHealth, RoutingPending, Thresholds,
                        TransitionRefused, ValidationEvidence, advance, confirm_routing, evaluate,
                        evidence_of, record_evidence, rollback, routing_for)
from zdm.phases import machine as m
from zdm.phases.model import Cluster, ReadMode
from zdm.state import FileStateStore, StateStore

TABLES = ["ks.a", "ks.b"]
UP = ProxyHealth("p1", True, True, True)


class Driver:
    """Drives a store through the happy path on a fake clock (one minute per call)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.clock = datetime(2024, 1, 1, tzinfo=timezone.utc)
        store.register_proxy("p1", "10.0.0.1:9042")

    def now(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def facts(self, **kw) -> Facts:
        return Facts(**{"now": self.now(), "schema_fingerprint": "fp", "proxies": [UP],
                        "tables": TABLES, **kw})

    def record(self, evidence) -> None:
        record_evidence(self.store, evidence, "tester", now=self.clock)

    def prepare(self) -> None:
        """Record what the next advance from the current phase needs, and apply routing."""
        self.apply_routing()
        phase = self.store.load().phase
        if phase == Phase.PLAN:
            self.record(PreflightEvidence(True, "fp", self.now()))
        elif phase == Phase.MIGRATE:
            self.record(MigrationEvidence(TABLES, True, self.now(), self.now()))
            self.record(ValidationEvidence(TABLES, self.now(), self.now(), 0, True))
        elif phase == Phase.ASYNC_READS:
            self.record(AsyncReadStats(10_000, 0, 0, self.now()))
        elif phase == Phase.TARGET_READS:
            self.record(ValidationEvidence(TABLES, self.now(), self.now(), 0, True, final=True))

    def apply_routing(self) -> None:
        self.store.ack_routing("p1", self.store.load().routing_status.revision)
        confirm_routing(self.store, operator="tester", now=self.now())

    def to(self, phase: Phase) -> None:
        while self.store.load().phase < phase:
            self.prepare()
            advance(self.store, self.facts(confirm_clients_on_proxy=True,
                                           confirm_clients_on_target=True),
                    operator="tester", why="test")
        assert self.store.load().phase == phase


@pytest.fixture
def drv(tmp_path) -> Driver:
    return Driver(FileStateStore(tmp_path))


def file_bytes(store: StateStore) -> bytes | None:
    return store.path.read_bytes() if store.path.exists() else None


def refused(fn, store: StateStore, *args, **kw) -> TransitionRefused:
    before = file_bytes(store)
    with pytest.raises(TransitionRefused) as info:
        fn(store, *args, operator="tester", **kw)
    assert file_bytes(store) == before, "a refusal must not touch the state file"
    assert info.value.reasons
    return info.value


def test_happy_path_reaches_cutover_with_routing_per_phase(drv):
    origin, target = Cluster.ORIGIN, Cluster.TARGET
    only, dual = ReadMode.PRIMARY_ONLY, ReadMode.DUAL_ASYNC
    expected = [(origin, only), (origin, only), (origin, only), (origin, dual), (target, only),
                (target, only)]
    for phase in Phase:
        drv.to(phase)
        routing = drv.store.load().routing
        assert (routing.primary, routing.read_mode) == expected[phase]
        assert routing == routing_for(phase)
    history = drv.store.load().history
    assert [(h.source, h.dest) for h in history] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


# (id, start phase, command, to, facts overrides, expected phase or reason substrings)
STRUCTURAL = [
    ("advance-past-cutover", Phase.CUTOVER, advance, None, {}, ["last phase"]),
    ("advance-to-9", Phase.PLAN, advance, 9, {}, ["no phase 9"]),
    ("advance-to-same", Phase.MIGRATE, advance, 2, {}, ["not ahead"]),
    ("advance-backwards", Phase.ASYNC_READS, advance, 1, {}, ["not ahead"]),
    ("advance-two-phases", Phase.PROXY, advance, 3, {}, ["one at a time"]),
    ("advance-to-cutover-from-2", Phase.MIGRATE, advance, 5, {"skip_async_reads": True},
     ["one at a time"]),
    ("advance-0-to-5", Phase.PLAN, advance, 5, {}, ["cannot advance directly"]),
    ("rollback-from-cutover", Phase.CUTOVER, rollback, None, {},
     ["origin no longer receives writes"]),
    ("rollback-from-cutover-to-4", Phase.CUTOVER, rollback, 4, {},
     ["origin no longer receives writes"]),
    ("rollback-from-plan", Phase.PLAN, rollback, None, {}, ["first phase"]),
    ("rollback-to-same", Phase.ASYNC_READS, rollback, 3, {}, ["not behind"]),
    ("rollback-to-higher", Phase.MIGRATE, rollback, 4, {}, ["not behind"]),
    ("rollback-3-to-1", Phase.ASYNC_READS, rollback, 1, {}, ["cannot roll back to 1 PROXY"]),
    ("rollback-4-to-1", Phase.TARGET_READS, rollback, 1, {}, ["cannot roll back"]),
    ("rollback-2-to-1", Phase.MIGRATE, rollback, 1, {}, ["cannot roll back"]),
]


@pytest.mark.parametrize("start, command, to, overrides, expected",
                         [c[1:] for c in STRUCTURAL], ids=[c[0] for c in STRUCTURAL])
def test_structural_refusals(drv, start, command, to, overrides, expected):
    drv.to(start)
    drv.prepare()
    err = refused(command, drv.store, drv.facts(**overrides), to=to)
    assert len(err.reasons) == len(expected)
    for reason, text in zip(err.reasons, expected):
        assert text in reason.what and reason.todo


ALLOWED = [
    ("advance-0-1", Phase.PLAN, advance, None, {}, Phase.PROXY),
    ("advance-1-2", Phase.PROXY, advance, 2, {"confirm_clients_on_proxy": True}, Phase.MIGRATE),
    ("advance-2-3", Phase.MIGRATE, advance, None, {}, Phase.ASYNC_READS),
    ("advance-2-4-skip", Phase.MIGRATE, advance, 4, {"skip_async_reads": True},
     Phase.TARGET_READS),
    ("advance-2-skip-default", Phase.MIGRATE, advance, None, {"skip_async_reads": True},
     Phase.TARGET_READS),
    ("advance-3-4", Phase.ASYNC_READS, advance, None, {}, Phase.TARGET_READS),
    ("advance-4-5", Phase.TARGET_READS, advance, None, {"confirm_clients_on_target": True},
     Phase.CUTOVER),
    ("rollback-4-default-3", Phase.TARGET_READS, rollback, None, {}, Phase.ASYNC_READS),
    ("rollback-4-2", Phase.TARGET_READS, rollback, 2, {}, Phase.MIGRATE),
    ("rollback-4-0", Phase.TARGET_READS, rollback, 0, {}, Phase.PLAN),
    ("rollback-3-default-2", Phase.ASYNC_READS, rollback, None, {}, Phase.MIGRATE),
    ("rollback-3-0", Phase.ASYNC_READS, rollback, 0, {}, Phase.PLAN),
    ("rollback-2-default-0", Phase.MIGRATE, rollback, None, {}, Phase.PLAN),
    ("rollback-1-0", Phase.PROXY, rollback, 0, {}, Phase.PLAN),
]


@pytest.mark.parametrize("start, command, to, overrides, dest", [c[1:] for c in ALLOWED],
                         ids=[c[0] for c in ALLOWED])
def test_allowed_transitions(drv, start, command, to, overrides, dest):
    drv.to(start)
    drv.prepare()
    before = drv.store.load()
    after = command(drv.store, drv.facts(**overrides), to=to, operator="tester", why="because")
    assert after.phase == dest and drv.store.load() == after
    assert after.revision == before.revision + 1
    entry = drv.store.read_journal()[-1]
    assert (entry["event"], entry["from"], entry["to"]) == (command.__name__, start, dest)
    assert (entry["operator"], entry["why"], entry["source"]) == ("tester", "because", "cli")
    assert datetime.fromisoformat(entry["at"]).tzinfo is not None
    routing_changed = routing_for(dest) != routing_for(start)
    assert after.routing_status.applied is not routing_changed


# (id, start phase, facts overrides, thresholds, expected reason substrings, all of them)
GUARDED = [
    ("0-1-nothing", Phase.PLAN, {"proxies": []}, None,
     ["no preflight", "no proxy is running"]),
    ("1-2-unconfirmed", Phase.PROXY, {}, None, ["connects through the proxy"]),
    ("2-3-nothing", Phase.MIGRATE, {}, None, ["no data migration", "no validation"]),
    ("2-4-no-skip-flag", Phase.MIGRATE, {"skip_async_reads": False}, None,
     ["skips the async-reads check", "no data migration", "no validation"]),
    ("3-4-no-async-reads", Phase.ASYNC_READS, {}, None, ["no async reads"]),
    ("3-4-too-many-mismatches", Phase.ASYNC_READS,  # counted since after phase 3 was entered
     {"async_reads": AsyncReadStats(1000, 0, 5, datetime(2024, 1, 2, tzinfo=timezone.utc))},
     Thresholds(max_async_mismatch_rate=0.001), ["mismatch rate"]),
    ("4-5-nothing", Phase.TARGET_READS, {}, None,
     ["no final validation", "connect to target directly"]),
    ("4-5-too-soon", Phase.TARGET_READS, {"confirm_clients_on_target": True},
     Thresholds(min_target_reads=timedelta(days=1)), ["less than 1 day", "no final validation"]),
]


@pytest.mark.parametrize("start, overrides, thresholds, expected", [c[1:] for c in GUARDED],
                         ids=[c[0] for c in GUARDED])
def test_guarded_refusals_list_every_reason(drv, start, overrides, thresholds, expected):
    drv.to(start)
    drv.apply_routing()
    to = Phase.TARGET_READS if "skip_async_reads" in overrides else None
    err = refused(advance, drv.store, drv.facts(**overrides), to=to, thresholds=thresholds)
    assert [r.what for r in err.reasons] and len(err.reasons) == len(expected)
    for reason, text in zip(err.reasons, expected):
        assert text in reason.what
    assert all(f"- {r.todo}" in err.hint for r in err.reasons)
    assert all(r.what in err.message for r in err.reasons)


def test_pending_routing_blocks_the_next_advance_until_confirmed(drv):
    drv.to(Phase.ASYNC_READS)
    assert not drv.store.load().routing_status.applied
    drv.record(AsyncReadStats(10_000, 0, 0, drv.now()))
    err = refused(advance, drv.store, drv.facts())
    assert ["routing revision" in r.what for r in err.reasons] == [True]
    with pytest.raises(RoutingPending) as info:
        confirm_routing(drv.store, operator="tester")
    assert info.value.lagging == ["p1"]
    drv.apply_routing()
    status = drv.store.load().routing_status
    assert status.applied and status.acks == {"p1": status.revision}
    assert advance(drv.store, drv.facts(), operator="tester").phase == Phase.TARGET_READS


def test_a_deregistered_proxy_no_longer_holds_up_routing(drv):
    drv.to(Phase.ASYNC_READS)
    drv.store.register_proxy("p2", "10.0.0.2:9042")
    drv.store.ack_routing("p1", drv.store.load().routing_status.revision)
    with pytest.raises(RoutingPending) as info:
        confirm_routing(drv.store, operator="tester")
    assert info.value.lagging == ["p2"]
    drv.store.deregister_proxy("p2")
    assert confirm_routing(drv.store, operator="tester").routing_status.applied


def test_confirm_routing_is_a_no_op_when_applied(drv):
    before = file_bytes(drv.store)
    assert confirm_routing(drv.store, operator="tester").revision == 0
    assert file_bytes(drv.store) == before


def test_rollback_is_allowed_while_routing_is_pending(drv):
    drv.to(Phase.TARGET_READS)
    assert not drv.store.load().routing_status.applied
    assert rollback(drv.store, drv.facts(), operator="tester").phase == Phase.ASYNC_READS


def test_confirmation_flags_are_recorded_as_evidence(drv):
    drv.to(Phase.PROXY)
    drv.prepare()
    state = advance(drv.store, drv.facts(confirm_clients_on_proxy=True), operator="alice")
    confirmed = evidence_of(state, "clients_on_proxy")
    assert confirmed.operator == "alice" and confirmed.at == drv.clock
    drv.to(Phase.TARGET_READS)
    drv.prepare()
    state = advance(drv.store, drv.facts(confirm_clients_on_target=True), operator="bob")
    assert isinstance(evidence_of(state, "clients_on_target"), ClientsOnTargetConfirmed)


def test_rollback_to_plan_clears_the_copy_but_keeps_the_preflight(drv):
    drv.to(Phase.TARGET_READS)
    state = rollback(drv.store, drv.facts(), to=0, operator="tester")
    assert set(state.evidence) == {"preflight"}


def test_rollback_to_migrate_keeps_the_copy(drv):
    drv.to(Phase.TARGET_READS)
    drv.prepare()
    state = rollback(drv.store, drv.facts(), to=2, operator="tester")
    assert {"migration", "validation", "clients_on_proxy"} <= set(state.evidence)
    assert not {"async_reads", "final_validation"} & set(state.evidence)


def test_migration_must_restart_after_clients_moved_back_to_proxy(drv):
    drv.to(Phase.ASYNC_READS)
    rollback(drv.store, drv.facts(), to=0, operator="tester")
    drv.prepare()
    drv.to(Phase.MIGRATE)
    err = refused(advance, drv.store, drv.facts())
    assert [r.what for r in err.reasons] == ["no data migration has been recorded",
                                             "no validation has been recorded"]


def test_final_validation_must_start_after_reads_moved(drv):
    drv.to(Phase.ASYNC_READS)
    drv.prepare()
    early = drv.now()
    advance(drv.store, drv.facts(), operator="tester")
    drv.apply_routing()
    drv.record(ValidationEvidence(TABLES, early, drv.now(), 0, True, final=True))
    err = refused(advance, drv.store, drv.facts(confirm_clients_on_target=True))
    assert [r.what for r in err.reasons] == [
        "the final validation started before reads moved to target"]


def test_journal_records_the_evidence_relied_on(drv):
    drv.to(Phase.ASYNC_READS)
    entry = [e for e in drv.store.read_journal() if e.get("trigger") == "start_async_reads"][0]
    assert set(entry["evidence"]) == {"migration", "validation", "clients_on_proxy"}
    assert entry["routing_pending"] is True and entry["facts"]["tables"] == TABLES


def test_evaluate_is_a_dry_run(drv):
    drv.to(Phase.MIGRATE)
    before = file_bytes(drv.store)
    verdict = evaluate(drv.store.load(), drv.facts())
    assert not verdict.allowed and verdict.dest == Phase.ASYNC_READS and len(verdict.reasons) == 2
    assert evaluate(drv.store.load(), drv.facts(), action="rollback").dest == Phase.PLAN
    assert file_bytes(drv.store) == before


# -- the transitions library is used safely --------------------------------------------

def test_no_to_state_shortcuts_exist(drv):
    model = m._Model(drv.store.load(), drv.facts(), Thresholds())
    machine = m._build_machine(model)
    names = set(dir(model)) | set(dir(machine))
    assert not [n for n in names if n.startswith("to_")]
    for phase in Phase:
        assert not hasattr(model, f"to_{phase.name}")


def test_a_failed_condition_never_returns_false_silently(drv):
    state = drv.store.load()
    model = m._Model(state, drv.facts(proxies=[]), Thresholds())
    m._build_machine(model)
    assert model.deploy_proxy() is False  # what transitions does on its own
    with pytest.raises(TransitionRefused) as info:
        m._decide(state, drv.facts(proxies=[]), "advance", None, Thresholds())
    assert len(info.value.reasons) == 2


def test_an_invalid_trigger_is_a_refusal_not_a_machine_error(drv, monkeypatch):
    move = m.MOVES[("advance", Phase.PLAN, Phase.PROXY)]
    monkeypatch.setitem(m.MOVES, ("advance", Phase.PLAN, Phase.PROXY),
                        dataclasses.replace(move, trigger="cut_over"))
    with pytest.raises(TransitionRefused, match="Can't trigger event cut_over"):
        m._decide(drv.store.load(), drv.facts(), "advance", None, Thresholds())


def test_table_matches_the_documented_phases():
    pairs = {(a, int(s), int(d)) for a, _, s, d, _ in m.TABLE}
    assert pairs == {("advance", 0, 1), ("advance", 1, 2), ("advance", 2, 3), ("advance", 2, 4),
                     ("advance", 3, 4), ("advance", 4, 5), ("rollback", 4, 3),
                     ("rollback", 4, 2), ("rollback", 3, 2), ("rollback", 1, 0),
                     ("rollback", 2, 0), ("rollback", 3, 0), ("rollback", 4, 0)}
    assert all(guards for a, _, _, _, guards in m.TABLE if a == "advance")
    assert all(guards[0] is m.routing_applied for a, _, _, _, guards in m.TABLE if a == "advance")


def test_dual_writes_since_is_the_last_entry_into_phase_1_while_it_lasts(drv):
    assert drv.store.load().dual_writes_since is None
    drv.to(Phase.PROXY)
    first = drv.store.load().history[-1].at
    assert drv.store.load().dual_writes_since == first
    drv.to(Phase.ASYNC_READS)
    assert drv.store.load().dual_writes_since == first
    rollback(drv.store, drv.facts(), to=0, operator="tester")
    assert drv.store.load().dual_writes_since is None, "back in phase 0 nothing dual-writes"
    drv.to(Phase.MIGRATE)
    again = drv.store.load()
    assert again.dual_writes_since == [h.at for h in again.history if h.dest == Phase.PROXY][-1]
    assert again.dual_writes_since > first


@pytest.mark.parametrize("start", [Phase.MIGRATE, Phase.ASYNC_READS, Phase.TARGET_READS],
                         ids=["2-4", "3-4", "4-5"])
def test_pending_divergences_hold_reads_and_clients_on_origin(drv, start):
    drv.to(start)
    drv.prepare()
    extra = {"confirm_clients_on_target": True, "skip_async_reads": start == Phase.MIGRATE}
    to = Phase.TARGET_READS if start == Phase.MIGRATE else None
    err = refused(advance, drv.store, drv.facts(divergences={"ks.a": {"lwt": 1}}, **extra), to=to)
    assert [r.what for r in err.reasons] == [
        "1 row(s) recorded as divergent by the proxies are not resolved: ks.a (1 lwt)"]
    assert "zdm repair" in err.hint
    assert advance(drv.store, drv.facts(**extra), operator="tester", to=to).phase == start + (
        2 if start == Phase.MIGRATE else 1)


def test_pending_divergences_do_not_hold_the_copy(drv):
    drv.to(Phase.PROXY)
    drv.prepare()
    facts = drv.facts(divergences={"ks.a": {"secondary_write": 4}}, confirm_clients_on_proxy=True)
    assert advance(drv.store, facts, operator="tester").phase == Phase.MIGRATE
