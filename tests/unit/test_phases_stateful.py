"""Hypothesis drives arbitrary command sequences against a real StateStore.

Property: every command either moves to a phase the documented table allows (and the
guards' preconditions really held), or raises TransitionRefused with reasons and leaves the
state file byte-identical. Routing always matches the phase; revisions never skip.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from zdm.phases import (AsyncReadStats, ClientsOnProxyConfirmed, ClientsOnTargetConfirmed, Facts,
                        MigrationEvidence, Phase, PreflightEvidence, ProxyHealth, RoutingPending,
                        Thresholds, TransitionRefused, ValidationEvidence, advance,
                        confirm_routing, evidence_of, record_evidence, rollback, routing_for)
from zdm.state import FileStateStore

# Written from the documented phases, independently of machine.TABLE.
ADVANCES = {(0, 1), (1, 2), (2, 3), (2, 4), (3, 4), (4, 5)}
ROLLBACKS = {(4, 3), (4, 2), (3, 2), (1, 0), (2, 0), (3, 0), (4, 0)}
TABLES = ["ks.a", "ks.b"]
TH = Thresholds(max_async_error_rate=0.01, max_async_mismatch_rate=0.0, min_async_requests=50)
targets = st.none() | st.integers(-1, 7)


class PhaseCommands(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="zdm-phases-"))
        self.store = FileStateStore(self.dir)
        self.store.register_proxy("p1", "10.0.0.1:9042")
        self.clock = datetime(2024, 1, 1, tzinfo=timezone.utc)
        self.fingerprint = "fp1"
        self.proxy_up = True
        self.writes = 0

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers --------------------------------------------------------------------------

    def now(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def bytes(self) -> bytes | None:
        return self.store.path.read_bytes() if self.store.path.exists() else None

    def facts(self, **flags: bool) -> Facts:
        return Facts(now=self.now(), schema_fingerprint=self.fingerprint, tables=TABLES,
                     proxies=[ProxyHealth("p1", self.proxy_up, True, True)], **flags)

    def record(self, evidence) -> None:
        record_evidence(self.store, evidence, "hypothesis", now=self.clock)
        self.writes += 1

    def attempt(self, command, allowed, **kw):
        before_bytes, before = self.bytes(), self.store.load()
        facts = kw.pop("facts")
        try:
            after = command(self.store, facts, operator="hypothesis", **kw)
        except TransitionRefused as refused:
            assert refused.reasons and all(r.what and r.todo for r in refused.reasons)
            assert self.bytes() == before_bytes
            return
        self.writes += 1
        assert (int(before.phase), int(after.phase)) in allowed
        assert after.revision == before.revision + 1 and self.store.load() == after
        return before, after, facts

    # -- commands -------------------------------------------------------------------------

    @rule(to=targets, skip=st.booleans(), on_proxy=st.booleans(), on_target=st.booleans())
    def advance(self, to, skip, on_proxy, on_target):
        facts = self.facts(skip_async_reads=skip, confirm_clients_on_proxy=on_proxy,
                           confirm_clients_on_target=on_target)
        done = self.attempt(advance, ADVANCES, facts=facts, to=to, thresholds=TH)
        if done:
            self.check_preconditions_held(*done)

    @rule(to=targets)
    def rollback(self, to):
        done = self.attempt(rollback, ROLLBACKS, facts=self.facts(), to=to)
        if done and done[1].phase == Phase.PLAN:
            assert set(done[1].evidence) <= {"preflight"}, "the copy must be redone"

    @rule(passed=st.booleans(), current=st.booleans())
    def preflight(self, passed, current):
        self.record(PreflightEvidence(passed, self.fingerprint if current else "old", self.now()))

    @rule()
    def schema_changes(self):
        self.fingerprint += "'"

    @rule(up=st.booleans())
    def proxy_health(self, up):
        self.proxy_up = up

    @rule()
    def clients_on_proxy(self):
        self.record(ClientsOnProxyConfirmed(self.now(), "hypothesis"))

    @rule(complete=st.booleans(), every_table=st.booleans())
    def migrate(self, complete, every_table):
        started = self.now()
        self.record(MigrationEvidence(TABLES if every_table else TABLES[:1], complete, started,
                                      self.now() if complete else None))

    @rule(differences=st.sampled_from([0, 0, 3]), final=st.booleans())
    def validate(self, differences, final):
        self.record(ValidationEvidence(TABLES, self.now(), self.now(), differences,
                                       differences == 0, final))

    @rule(requests=st.sampled_from([0, 10, 1000]), errors=st.integers(0, 20),
          mismatches=st.sampled_from([0, 0, 1]))
    def async_reads(self, requests, errors, mismatches):
        self.record(AsyncReadStats(requests, min(errors, requests), min(mismatches, requests),
                                   self.now()))

    @rule()
    def clients_on_target(self):
        self.record(ClientsOnTargetConfirmed(self.now(), "hypothesis"))

    @rule(ack=st.booleans())
    def confirm_routing(self, ack):
        if ack:
            self.store.ack_routing("p1", self.store.load().routing_status.revision)
        before_bytes, before = self.bytes(), self.store.load()
        try:
            after = confirm_routing(self.store, operator="hypothesis", now=self.now())
        except RoutingPending:
            assert self.bytes() == before_bytes
            return
        if not before.routing_status.applied:
            self.writes += 1
        assert after.routing_status.applied and after.phase == before.phase

    @precondition(lambda self: self.store.load().phase < Phase.CUTOVER)
    @rule()
    def do_everything_right(self):
        """Satisfy the next advance, so deep phases are reached too."""
        self.proxy_up = True
        self.confirm_routing(ack=True)
        phase = self.store.load().phase
        if phase == Phase.PLAN:
            self.record(PreflightEvidence(True, self.fingerprint, self.now()))
        elif phase == Phase.PROXY:
            self.clients_on_proxy()
        elif phase == Phase.MIGRATE:
            self.migrate(complete=True, every_table=True)
            self.validate(differences=0, final=False)
        elif phase == Phase.ASYNC_READS:
            self.async_reads(requests=1000, errors=0, mismatches=0)
        elif phase == Phase.TARGET_READS:
            self.validate(differences=0, final=True)
            self.clients_on_target()
        self.advance(to=None, skip=False, on_proxy=False, on_target=False)

    # -- what must always hold ------------------------------------------------------------

    def check_preconditions_held(self, before, after, facts):
        """An oracle for the guards, restated from the spec."""
        assert before.routing_status.applied
        src, dst = int(before.phase), int(after.phase)
        if dst == 1:
            pre = evidence_of(before, "preflight")
            assert pre.passed and pre.schema_fingerprint == facts.schema_fingerprint
            assert facts.proxies[0].running
        if dst == 2:
            assert facts.confirm_clients_on_proxy or "clients_on_proxy" in before.evidence
            assert "clients_on_proxy" in after.evidence
        if src == 2:
            mig, val = evidence_of(before, "migration"), evidence_of(before, "validation")
            assert mig.complete and set(TABLES) <= set(mig.tables)
            assert val.clean and val.started_at >= mig.finished_at
            assert dst == 3 or facts.skip_async_reads
        if (src, dst) == (3, 4):
            stats = evidence_of(before, "async_reads")
            assert stats.requests >= TH.min_async_requests and stats.mismatches == 0
        if dst == 5:
            final = evidence_of(before, "final_validation")
            assert final.clean and final.started_at >= before.routing_status.applied_at
            assert "clients_on_target" in after.evidence

    @invariant()
    def state_is_consistent(self):
        state = self.store.load()
        assert state.routing == routing_for(state.phase)
        assert state.revision == self.writes


PhaseCommands.TestCase.settings = settings(max_examples=100, stateful_step_count=40,
                                           deadline=None)
TestPhaseCommands = PhaseCommands.TestCase


def test_the_walk_reaches_cutover():
    """Not luck: do_everything_right alone walks 0..5, so the property covers deep phases."""
    machine = PhaseCommands()
    try:
        for _ in Phase:
            if machine.store.load().phase < Phase.CUTOVER:
                machine.do_everything_right()
        assert machine.store.load().phase == Phase.CUTOVER
    finally:
        machine.teardown()
