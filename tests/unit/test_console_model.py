"""The console's page as data (zdm.console.model): one document per phase, from the same look
at the migration as `zdm status --json`, with no secret in it. No cluster: the preflight's
probes answer fixed schemas and proxies are simulated by their records."""

from __future__ import annotations

import json

import pytest

from zdm.console.model import console_state, diagram_edges
from zdm.phases import AsyncReadStats, MigrationEvidence, Phase, ValidationEvidence, record_evidence
from zdm.phases.evidence import to_record
from zdm.phases.live import observe
from zdm.preflight import live_schema
from zdm.ranges.ring import TokenRange
from zdm.state import open_checkpoints
from zdm.clock import utcnow
from tests.support.migration import ORIGIN_PASSWORD, TARGET_PASSWORD, make_migration

A, W, R, AR = "all", "writes", "reads", "async_reads"
VIA_PROXY = {("applications", "proxies", A), ("proxies", "origin", W), ("proxies", "target", W)}

# (id, phase, the diagram's edges)
EDGES = [
    ("0-plan", Phase.PLAN, {("applications", "origin", A)}),
    ("1-proxy", Phase.PROXY, VIA_PROXY | {("proxies", "origin", R)}),
    ("2-migrate", Phase.MIGRATE, VIA_PROXY | {("proxies", "origin", R)}),
    ("3-async-reads", Phase.ASYNC_READS,
     VIA_PROXY | {("proxies", "origin", R), ("proxies", "target", AR)}),
    ("4-target-reads", Phase.TARGET_READS, VIA_PROXY | {("proxies", "target", R)}),
    ("5-cutover", Phase.CUTOVER, {("applications", "target", A)}),
]

# (phase, default advance destination, rollback destinations offered)
MOVES = {Phase.PLAN: (1, []), Phase.PROXY: (2, [0]), Phase.MIGRATE: (3, [0]),
         Phase.ASYNC_READS: (4, [0, 2]), Phase.TARGET_READS: (5, [0, 2, 3]),
         Phase.CUTOVER: (None, [])}


@pytest.fixture()
def mig(tmp_path, monkeypatch):
    return make_migration(tmp_path, monkeypatch)


def edges(doc) -> set[tuple[str, str, str]]:
    return {(e["from"], e["to"], e["kind"]) for e in doc["diagram"]["edges"]}


@pytest.mark.parametrize("phase, expected", [c[1:] for c in EDGES], ids=[c[0] for c in EDGES])
def test_each_phase_draws_its_routing_and_marks_its_step(mig, phase, expected):
    mig.at_phase(phase)
    mig.proxy("p1", ack=1)
    doc = console_state(mig.config, mig.store, live_schema=live_schema)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON, no default= needed
    assert edges(doc) == expected
    assert diagram_edges(phase) == doc["diagram"]["edges"]
    active = {n["id"] for n in doc["diagram"]["nodes"] if n["active"]}
    assert ("proxies" in active) is (Phase.PROXY <= phase <= Phase.TARGET_READS)
    assert doc["phase"]["number"] == int(phase) and doc["phase"]["label"] == phase.label
    assert [s["number"] for s in doc["steps"]] == [0, 1, 2, 3, 4, 5]
    assert [s["number"] for s in doc["steps"] if s["current"]] == [int(phase)]
    assert [s["number"] for s in doc["steps"] if s["done"]] == list(range(int(phase)))
    assert all(s["description"] for s in doc["steps"])
    advance_to, rollback_to = MOVES[phase]
    assert doc["actions"]["advance"][0]["to"] == advance_to
    assert doc["actions"]["rollback"][0]["options"] == rollback_to
    assert doc["actions"]["rollback"][0]["allowed"] is bool(rollback_to)
    assert [p["name"] for p in doc["proxies"]] == ["p1"]


def test_the_model_reuses_the_status_document(mig):
    mig.at_phase(Phase.PROXY)
    mig.proxy("p1", ack=1, workers=2, client_connections=7,
              live={"requests_per_s": 120, "error_rate": 0.01, "p99_ms": {"origin": 3.5, "target": 4.0},
                    "divergences": 0})
    status = observe(mig.config, mig.store, live_schema=live_schema).status
    doc = console_state(mig.config, mig.store, live_schema=live_schema)
    for key in ("routing", "proxies", "evidence", "next", "async_reads", "insecure_settings"):
        assert doc[key] == status[key], key
    p1 = doc["proxies"][0]
    assert (p1["workers"], p1["client_connections"], p1["live"]["requests_per_s"]) == (2, 7, 120)


def test_guards_of_the_next_advance_each_pass_or_fail_with_what_to_do(mig):
    mig.at_phase(Phase.PLAN)
    doc = console_state(mig.config, mig.store, live_schema=live_schema)
    adv = doc["actions"]["advance"][0]
    assert not adv["allowed"] and adv["to"] == 1
    by_name = {g["name"]: g for g in adv["guards"]}
    assert list(by_name) == ["routing_applied", "preflight_current", "proxies_connected"]
    assert by_name["routing_applied"]["passed"]
    assert by_name["preflight_current"]["reasons"] == [
        {"what": "no preflight has been recorded", "todo": "run `zdm preflight`"}]
    assert by_name["proxies_connected"]["reasons"][0]["todo"] == "run `zdm proxy start`"
    # the guards' reasons are the machine's verdict, nothing more or less
    assert adv["reasons"] == [r for g in adv["guards"] for r in g["reasons"]]

    mig.preflight()
    mig.proxy("p1", ack=1)
    doc = console_state(mig.config, mig.store, live_schema=live_schema)
    assert doc["actions"]["advance"][0]["allowed"]
    assert all(g["passed"] for g in doc["actions"]["advance"][0]["guards"])
    assert doc["next"]["command"] == "zdm phase advance"


def test_each_reachable_phase_has_its_report_and_confirmations_are_checkboxes(mig):
    mig.at_phase(Phase.PROXY)
    mig.proxy("p1", ack=1)
    adv = console_state(mig.config, mig.store, live_schema=live_schema)["actions"]["advance"]
    assert [(r["to"], r["default"]) for r in adv] == [(2, True)]
    (report,) = adv
    # refused now, allowed once the operator confirms: the page shows the checkbox
    assert not report["allowed"] and report["allowed_if_confirmed"]
    assert report["confirmations"] == [{"flag": "confirm_clients_on_proxy",
                                        "label": "I confirm that every client now connects through the proxy"}]

    # from phase 2, async reads (the default) or, skipping them, reads on target
    mig.store.write(mig.store.load().bump(utcnow(), phase=Phase.MIGRATE), expected_revision=1)
    doc = console_state(mig.config, mig.store, live_schema=live_schema)
    adv = doc["actions"]["advance"]
    assert [(r["to"], r["default"]) for r in adv] == [(3, True), (4, False)]
    skip = adv[1]
    assert [c["flag"] for c in skip["confirmations"]] == ["skip_async_reads"]
    # the copy is missing: confirming cannot make it allowed
    assert not skip["allowed"] and not skip["allowed_if_confirmed"]
    assert {g["name"] for g in skip["guards"] if not g["passed"]} >= {"migration_complete"}
    # rollbacks have no guards: back to 0 only
    assert [(r["to"], r["allowed"]) for r in doc["actions"]["rollback"]] == [(0, True)]


def test_a_phase_with_nowhere_to_go_reports_the_refusal(mig):
    mig.at_phase(Phase.CUTOVER)
    doc = console_state(mig.config, mig.store, live_schema=live_schema)
    for action in ("advance", "rollback"):
        (report,) = doc["actions"][action]
        assert report["to"] is None and not report["allowed"] and not report["allowed_if_confirmed"]
        assert report["reasons"] and not report["guards"] and report["structural"] == report["reasons"]


def test_the_schema_changed_since_the_preflight_fails_its_guard(mig):
    from dataclasses import replace

    from tests.support.migration import TABLE, probe

    mig.at_phase(Phase.PLAN)
    mig.preflight()
    mig.clusters.target = probe("target", replace(TABLE, columns={"k": "int", "v": "blob"}))
    doc = console_state(mig.config, mig.store, live_schema=live_schema)
    pre = {g["name"]: g for g in doc["actions"]["advance"][0]["guards"]}["preflight_current"]
    assert not pre["passed"] and "schema changed" in pre["reasons"][0]["what"]


def test_an_unreachable_cluster_is_a_problem_on_the_page_not_an_error(mig):
    mig.at_phase(Phase.PLAN)
    mig.preflight()
    mig.clusters.down.add("target")
    doc = console_state(mig.config, mig.store, live_schema=live_schema)
    assert any("cannot read the live schemas" in p for p in doc["problems"])
    pre = {g["name"]: g for g in doc["actions"]["advance"][0]["guards"]}["preflight_current"]
    assert "could not be computed" in pre["reasons"][0]["what"]


def test_progress_per_table_from_the_checkpoints(mig):
    mig.at_phase(Phase.MIGRATE)
    halves = [TokenRange(-2**63, 0), TokenRange(0, 2**63 - 1)]
    with open_checkpoints(mig.config, "migrate") as cps:
        cp = cps.start("app.t", halves, started_at="2026-01-01T00:00:00+00:00")
        cps.mark_done(cp, halves[0], 40)
    with open_checkpoints(mig.config, "validate") as cps:
        cp = cps.start("app.t", halves)
        clean = {"missing_on_target": 0, "only_on_target": 0, "cells_differ": 0, "fixed": 0,
                 "differences": []}
        cps.mark_done(cp, halves[0], 40, {**clean})
        cps.mark_done(cp, halves[1], 2, {**clean, "missing_on_target": 1})
    doc = console_state(mig.config, mig.store, live_schema=live_schema)  # scope read live in phase 2
    copy, = doc["progress"]["copy"]
    assert copy == {"table": "app.t", "started": True, "started_at": "2026-01-01T00:00:00+00:00",
                    "ranges": 2, "done": 1, "remaining": 1, "rows": 40, "complete": False,
                    "carried": 0, "failed": 0, "failed_ranges": []}
    val, = doc["progress"]["validation"]
    assert (val["done"], val["remaining"], val["with_differences"], val["complete"]) == (2, 0, 1, True)


def test_progress_shows_failed_ranges_with_their_errors_and_the_carried_ones(mig):
    from zdm.state.checkpoint import TableCheckpoint

    mig.at_phase(Phase.MIGRATE)
    plan = TokenRange(-2**63, 2**63 - 1).split(16)
    with open_checkpoints(mig.config, "migrate") as cps:
        cp = cps.start("app.t", plan)
        cps.mark_done(cp, plan[0], 9)
        for i, rng in reversed(list(enumerate(plan[1:13], 1))):  # 12 failures, newest first
            cps.mark_failed(cp, rng, f"OperationTimedOut: range {i}")
    with open_checkpoints(mig.config, "validate") as cps:
        last = cps.start("app.t", plan[:2])
        clean = {"missing_on_target": 0, "only_on_target": 0, "cells_differ": 0, "fixed": 0,
                 "differences": []}
        cps.mark_done(last, plan[0], 5, {**clean})
        cps.mark_done(last, plan[1], 1, {**clean, "missing_on_target": 1})
        recheck = cps.start("app.t", plan[:2], carried=TableCheckpoint(  # as --only-failed does
            "app.t", plan[:2], done={plan[0]: 5}, details={plan[0]: {**clean}}))
        cps.mark_failed(recheck, plan[1], "ReadTimeout: target")
    doc = console_state(mig.config, mig.store, live_schema=live_schema)
    copy, = doc["progress"]["copy"]
    assert (copy["done"], copy["carried"], copy["failed"], copy["remaining"]) == (1, 0, 12, 15)
    assert copy["failed_ranges"] == [{"range": plan[i].key(), "error": f"OperationTimedOut: range {i}"}
                                     for i in range(1, 11)]  # the first ten in token order
    val, = doc["progress"]["validation"]
    assert (val["done"], val["carried"], val["failed"], val["remaining"], val["complete"]) == (1, 1, 1, 1, False)
    assert val["failed_ranges"] == [{"range": plan[1].key(), "error": "ReadTimeout: target"}]
    assert val["with_differences"] == 0


def test_pending_divergences_and_the_journal_as_a_timeline(mig):
    mig.at_phase(Phase.MIGRATE)
    now = utcnow()
    record_evidence(mig.store, MigrationEvidence(["app.t"], True, now, now), "bob")
    writer = mig.store.divergences().writer("p1-0")
    from zdm.state.divergences import new_record

    rec = new_record("secondary_write", "app", "t", None, source="origin", proxy="p1")
    done = []
    writer.append(rec, done.append)
    writer.close()
    assert done == [None]
    doc = console_state(mig.config, mig.store, live_schema=live_schema)
    div = doc["divergences"]
    assert div["pending"] == 1 and div["summary"] == {"app.t": {"secondary_write": 1}}
    assert div["records"][0]["id"] == rec["id"]
    from zdm.console.page import render_live

    html = render_live(doc)
    assert "1 record(s) pending" in html
    assert "<td>secondary_write</td><td>app.t</td><td>-</td><td>p1</td>" in html
    newest = doc["journal"][0]
    assert (newest["event"], newest["kind"], newest["operator"]) == ("evidence", "migration", "bob")
    assert "record" not in newest and "facts" not in newest  # the timeline's fields only


def test_no_secret_reaches_the_document(mig):
    mig.at_phase(Phase.ASYNC_READS, evidence={
        "async_reads": {**to_record(AsyncReadStats(5, 0, 0, utcnow())), "recorded_by": "x",
                        "recorded_at": "2026-01-01T00:00:00+00:00"}})
    mig.proxy("p1", ack=1)
    record_evidence(mig.store, ValidationEvidence(["app.t"], utcnow(), utcnow(), 0, True), "bob")
    assert mig.config.origin.password == ORIGIN_PASSWORD  # the config does hold them
    text = json.dumps(console_state(mig.config, mig.store, live_schema=live_schema))
    assert ORIGIN_PASSWORD not in text and TARGET_PASSWORD not in text
