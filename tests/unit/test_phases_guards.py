"""Every guard, table-driven: the conditions that hold, and every reason when they don't."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from zdm.phases import (AsyncReadStats, ClientsOnProxyConfirmed, ClientsOnTargetConfirmed, Facts,
                        MigrationEvidence, MigrationState, Phase, PreflightEvidence, ProxyHealth,
                        RoutingStatus, Thresholds, ValidationEvidence, with_evidence)
from zdm.phases import guards as g

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def state(*evidence, phase: Phase = Phase.PLAN, routing: RoutingStatus | None = None,
          entered: float = 0) -> MigrationState:
    s = MigrationState(phase=phase, entered_at=at(entered),
                       routing_status=routing or RoutingStatus())
    for ev in evidence:
        s = with_evidence(s, ev, operator="tester", at=at(0))
    return s


def facts(**kw) -> Facts:
    return Facts(**{"now": at(100), **kw})


UP = ProxyHealth("p1", running=True, origin_connected=True, target_connected=True,
                 applied_revision=7)
PRE_OK = PreflightEvidence(True, "fp1", at(0), "all good")
ON_PROXY = ClientsOnProxyConfirmed(at(1), "alice")
MIG_OK = MigrationEvidence(["ks.a", "ks.b"], True, at(2), at(3))
VAL_OK = ValidationEvidence(["ks.a", "ks.b"], at(4), at(5), 0, True)
ASYNC_OK = AsyncReadStats(requests=1000, errors=1, mismatches=0, since=at(6))
# Phase 4 whose routing (revision 9) every proxy confirmed at hour 10.
ON_TARGET = dict(phase=Phase.TARGET_READS, entered=9,
                 routing=RoutingStatus(9, True, at(10), {"p1": 9}))
FINAL_OK = ValidationEvidence(["ks.a", "ks.b"], at(11), at(12), 0, True, final=True)
TH = Thresholds(max_async_error_rate=0.01, max_async_mismatch_rate=0.001, min_async_requests=500,
                min_target_reads=timedelta(hours=1))

# (guard, state, facts, expected reasons as (substring of what, substring of todo))
CASES = [
    ("routing/applied", g.routing_applied, state(), facts(), []),
    ("routing/pending", g.routing_applied, state(routing=RoutingStatus(8, False)),
     facts(proxies=[UP, dataclasses.replace(UP, name="p2", applied_revision=8)]),
     [("revision 8 is not confirmed on every proxy (not yet applied by p1)",
       "`zdm phase confirm-routing`")]),
    ("preflight/ok", g.preflight_current, state(PRE_OK), facts(schema_fingerprint="fp1"), []),
    ("preflight/missing", g.preflight_current, state(), facts(schema_fingerprint="fp1"),
     [("no preflight", "run `zdm preflight`")]),
    ("preflight/failed", g.preflight_current,
     state(dataclasses.replace(PRE_OK, passed=False, summary="RF too low")),
     facts(schema_fingerprint="fp1"), [("failed: RF too low", "`zdm preflight`")]),
    ("preflight/fingerprint-unknown", g.preflight_current, state(PRE_OK), facts(),
     [("fingerprint could not be computed", "`zdm preflight`")]),
    ("preflight/schema-changed", g.preflight_current, state(PRE_OK),
     facts(schema_fingerprint="fp2"), [("schema changed", "run `zdm preflight` again")]),
    ("proxies/ok", g.proxies_connected, state(), facts(proxies=[UP]), []),
    ("proxies/none", g.proxies_connected, state(), facts(),
     [("no proxy is running", "run `zdm proxy start`")]),
    ("proxies/stopped", g.proxies_connected, state(),
     facts(proxies=[dataclasses.replace(UP, running=False)]),
     [("no proxy is running", "run `zdm proxy start`")]),
    ("proxies/half-connected", g.proxies_connected, state(),
     facts(proxies=[dataclasses.replace(UP, target_connected=False),
                    dataclasses.replace(UP, name="p2", origin_connected=False,
                                        target_connected=False),
                    dataclasses.replace(UP, name="p3")]),
     [("p1 is not connected to target", "`zdm proxy start`"),
      ("p2 is not connected to origin and target", "`zdm proxy start`")]),
    ("running/all", g.proxies_running, state(), facts(proxies=[UP, dataclasses.replace(UP, name="p2")]),
     []),
    ("running/one-dead", g.proxies_running, state(),
     facts(proxies=[UP, dataclasses.replace(UP, name="p2", running=False, heartbeat_age_s=7.5)]),
     [("proxy p2 is registered but not running (it sent its last heartbeat 7.5s ago",
       "`zdm proxy deregister p2`")]),
    ("running/never-beat", g.proxies_running, state(),
     facts(proxies=[dataclasses.replace(UP, running=False, applied_revision=None)]),
     [("has never sent a heartbeat", "`zdm proxy start`")]),
    ("clients-on-proxy/flag", g.clients_on_proxy, state(),
     facts(confirm_clients_on_proxy=True), []),
    ("clients-on-proxy/evidence", g.clients_on_proxy, state(ON_PROXY), facts(), []),
    ("clients-on-proxy/missing", g.clients_on_proxy, state(), facts(),
     [("every client now connects through the proxy", "--confirm-clients-on-proxy")]),
    ("migration/ok", g.migration_complete, state(ON_PROXY, MIG_OK),
     facts(tables=["ks.a", "ks.b"]), []),
    ("migration/missing", g.migration_complete, state(), facts(),
     [("no data migration", "run `zdm migrate`")]),
    ("migration/incomplete-and-partial", g.migration_complete,
     state(dataclasses.replace(MIG_OK, tables=["ks.a"], complete=False, finished_at=None)),
     facts(tables=["ks.a", "ks.b", "ks.c"]),
     [("has not completed", "`zdm migrate`"),
      ("tables not migrated: ks.b, ks.c", "`zdm migrate`")]),
    ("migration/started-before-clients-on-proxy", g.migration_complete,
     state(dataclasses.replace(ON_PROXY, at=at(2.5)), MIG_OK), facts(),
     [("started before clients were confirmed on the proxy", "`zdm migrate` again")]),
    ("validation/ok", g.validation_clean, state(MIG_OK, VAL_OK), facts(tables=["ks.a"]), []),
    ("validation/missing", g.validation_clean, state(MIG_OK), facts(),
     [("no validation", "run `zdm validate`")]),
    ("validation/every-problem", g.validation_clean,
     state(MIG_OK, ValidationEvidence(["ks.a"], at(2.5), None, 3, False)), facts(tables=["ks.c"]),
     [("started before the migration finished", "`zdm validate`"),
      ("did not finish", "`zdm validate`"),
      ("found 3 difference(s)", "`zdm migrate`"),
      ("tables not validated: ks.b, ks.c", "`zdm validate`")]),
    ("validation/final-does-not-count", g.validation_clean,
     state(MIG_OK, dataclasses.replace(VAL_OK, final=True)), facts(),
     [("no validation", "`zdm validate`")]),
    ("final-validation/ok", g.final_validation_clean, state(MIG_OK, FINAL_OK, **ON_TARGET),
     facts(), []),
    ("final-validation/plain-does-not-count", g.final_validation_clean,
     state(MIG_OK, VAL_OK, **ON_TARGET), facts(),
     [("no final validation", "`zdm validate --final`")]),
    ("final-validation/before-reads-moved", g.final_validation_clean,
     state(MIG_OK, dataclasses.replace(FINAL_OK, started_at=at(9.5)), **ON_TARGET), facts(),
     [("started before reads moved to target", "`zdm validate --final`")]),
    ("final-validation/dirty", g.final_validation_clean,
     state(MIG_OK, dataclasses.replace(FINAL_OK, differences=2, clean=False), **ON_TARGET),
     facts(), [("found 2 difference(s)", "`zdm validate --final`")]),
    ("skip/flag", g.async_reads_skipped, state(), facts(skip_async_reads=True), []),
    ("skip/no-flag", g.async_reads_skipped, state(), facts(),
     [("skips the async-reads check", "--skip-async-reads")]),
    ("async/ok-from-facts", g.async_reads_healthy, state(), facts(async_reads=ASYNC_OK), []),
    ("async/ok-from-evidence", g.async_reads_healthy, state(ASYNC_OK), facts(), []),
    ("async/facts-preferred", g.async_reads_healthy, state(ASYNC_OK),
     facts(async_reads=dataclasses.replace(ASYNC_OK, requests=0, errors=0)),
     [("no async reads", "`zdm status`")]),
    ("async/at-limits", g.async_reads_healthy, state(),
     facts(async_reads=AsyncReadStats(1000, 10, 1, at(6))), []),
    ("async/none", g.async_reads_healthy, state(), facts(), [("no async reads", "`zdm status`")]),
    ("async/every-problem", g.async_reads_healthy, state(),
     facts(async_reads=AsyncReadStats(100, 5, 1, at(6))),
     [("only 100 async reads observed, 500 required", "`zdm status`"),
      ("error rate 5.0000% exceeds 1.0000%", "`zdm rollback`"),
      ("mismatch rate 1.0000% exceeds 0.1000%", "`zdm validate`")]),
    ("reads-on-target/long-enough", g.reads_on_target, state(**ON_TARGET), facts(), []),
    ("reads-on-target/too-soon", g.reads_on_target, state(**ON_TARGET),
     facts(now=at(10.5)), [("less than 1:00:00", "`zdm status`")]),
    ("reads-on-target/not-confirmed-left-to-routing-guard", g.reads_on_target,
     state(phase=Phase.TARGET_READS, routing=RoutingStatus(9, False)), facts(), []),
    ("clients-on-target/flag", g.clients_on_target, state(), facts(confirm_clients_on_target=True),
     []),
    ("clients-on-target/evidence", g.clients_on_target,
     state(ClientsOnTargetConfirmed(at(1), "bob")), facts(), []),
    ("clients-on-target/missing", g.clients_on_target, state(), facts(),
     [("connect to target directly", "--confirm-clients-on-target")]),
    ("async-window/this-stay", g.async_window_current, state(phase=Phase.ASYNC_READS, entered=5),
     facts(async_reads=ASYNC_OK), []),
    ("async-window/an-earlier-stay", g.async_window_current, state(phase=Phase.ASYNC_READS, entered=7),
     facts(async_reads=ASYNC_OK), [("date from 2024-01-01T06:00:00+00:00, before phase 3 was entered",
                                    "wait a few seconds")]),
    ("divergences/none", g.divergences_resolved, state(), facts(), []),
    ("divergences/pending", g.divergences_resolved, state(),
     facts(divergences={"ks.a": {"lwt": 2}, "ks.b": {"secondary_write": 3}}),
     [("5 row(s) recorded as divergent by the proxies are not resolved: ks.a (2 lwt), "
       "ks.b (3 secondary_write)", "run `zdm repair`")]),
]


@pytest.mark.parametrize("guard, st, fx, expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_guard(guard, st, fx, expected):
    reasons = guard(st, fx, TH)
    assert len(reasons) == len(expected), reasons
    for reason, (what, todo) in zip(reasons, expected):
        assert what in reason.what
        assert todo in reason.todo


def test_guards_are_pure():
    s = state(MIG_OK)
    before = s.to_dict()
    g.validation_clean(s, facts(), TH)
    assert s.to_dict() == before
