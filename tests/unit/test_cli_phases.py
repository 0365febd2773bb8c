"""`zdm preflight | status | phase advance | phase confirm-routing | rollback` through the CLI.

No cluster: the preflight's probes are replaced by fixed ones (`clusters` below) and the
proxies are simulated by writing their records into the state directory, exactly as
`zdm proxy start` does.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zdm.cli.main import app
from zdm.phases import MigrationState, Phase
from zdm.state import FileStateStore, StateStore
from zdm.clock import iso, utcnow
from zdm.preflight.schema import TableSchema
from zdm.phases.state import RoutingStatus
from tests.support.migration import TABLE, Clusters, probe

runner = CliRunner(env={"COLUMNS": "200", "USER": "alice"})

@pytest.fixture()
def clusters(monkeypatch) -> Clusters:
    from zdm.preflight import run as preflight

    fake = Clusters()
    monkeypatch.setattr(preflight, "probe_cluster", fake.probe)
    return fake


@pytest.fixture()
def cfg(tmp_path) -> Path:
    path = tmp_path / "zdm.yaml"
    path.write_text("state_dir: st\n")
    return path


def store_of(cfg: Path) -> StateStore:
    return FileStateStore(cfg.parent / "st")


def zdm(cfg: Path, *args: str):
    return runner.invoke(app, [*args, "--config", str(cfg)])


def flat(text: str) -> str:
    return " ".join(text.split())


def proxy(store: StateStore, name: str, *, connected=(True, True), ack: int | None = None,
          async_reads: dict | None = None, heartbeat=True) -> None:
    """A running proxy's record, as the proxy writes it once a second."""
    if name not in store.proxy_records():
        store.register_proxy(name, "127.0.0.1:14002")
    fields = dict(pid=os.getpid(), origin_connected=connected[0], target_connected=connected[1])
    if heartbeat:
        fields["heartbeat_at"] = iso(utcnow())
    if async_reads is not None:
        fields["async_reads"] = {**async_reads, "since": iso(utcnow())}
    store.update_proxy(name, **fields)
    if ack is not None:
        store.ack_routing(name, ack)


class AckingProxy:
    """A proxy that applies every new routing within ~20 ms (a thread polling the state)."""

    def __init__(self, store: StateStore, name: str) -> None:
        self.store, self.name = store, name
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            self.store.ack_routing(self.name, self.store.load().routing_status.revision)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def at_phase(store: StateStore, phase: Phase, evidence=None) -> None:
    """Start a test at ``phase`` with its routing applied (revision 1)."""
    store.write(MigrationState(phase=phase, revision=1, routing_status=RoutingStatus(1, True),
                               evidence=evidence or {}), expected_revision=0)


# -- preflight ------------------------------------------------------------------------------

def test_preflight_passes_and_records_the_fingerprint(cfg, clusters):
    result = zdm(cfg, "preflight")
    assert result.exit_code == 0, result.output
    assert "Preflight passed" in result.output
    pre = store_of(cfg).load().evidence["preflight"]
    assert pre["passed"] and pre["schema_fingerprint"].startswith("sha256:")
    assert pre["recorded_by"] == "alice"


def test_preflight_reports_each_difference_table_by_table_and_fails(cfg, clusters):
    clusters.origin = probe("origin", TABLE, TableSchema("app", "u", {"k": "int"}, ("k",)))
    clusters.target = probe("target", replace(TABLE, columns={"k": "int", "v": "blob"}))
    result = zdm(cfg, "preflight", "--operator", "bob")
    assert result.exit_code == 1
    out = flat(result.output)
    assert "app.t ✗ column v type differs: origin text, target blob" in out
    assert "app.u ✗ table missing on target" in out
    assert "error: preflight failed: 1 check(s) failed (schema)" in out
    pre = store_of(cfg).load().evidence["preflight"]
    assert not pre["passed"] and pre["recorded_by"] == "bob" and "app.t" in pre["summary"]


def test_preflight_json_and_an_unreachable_cluster(cfg, clusters):
    clusters.down.add("target")
    result = zdm(cfg, "preflight", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert not doc["passed"] and doc["fingerprint"] is None
    assert [(c["name"], c["status"]) for c in doc["checks"]] == [
        ("origin connection", "pass"), ("target connection", "fail")]
    assert "check target.contact_points" in result.stderr


# -- advance --------------------------------------------------------------------------------

def test_advance_0_to_1_with_a_current_preflight_and_a_connected_proxy(cfg, clusters):
    store = store_of(cfg)
    assert zdm(cfg, "preflight").exit_code == 0
    proxy(store, "p1", ack=0)
    result = zdm(cfg, "phase", "advance", "--why", "proxy is up")
    assert result.exit_code == 0, result.output
    assert "Advanced from 0 PLAN to 1 PROXY" in result.output
    state = store.load()
    assert state.phase == Phase.PROXY and state.routing_status.applied
    entry = store.read_journal()[-1]
    assert (entry["event"], entry["operator"], entry["why"]) == ("advance", "alice", "proxy is up")


REFUSALS = [
    # id, setup(store, clusters) after a passing preflight (none for the first), every reason
    ("nothing done", None,
     ["no preflight has been recorded", "no proxy is running"]),
    ("schema changed since preflight",
     lambda s, c: (setattr(c, "target", probe("target", replace(TABLE, columns={"k": "int"}))),
                   proxy(s, "p1")),
     ["the schema changed since the last preflight passed"]),
    ("proxy not connected to target",
     lambda s, c: proxy(s, "p1", connected=(True, False)),
     ["proxy p1 is not connected to target"]),
    ("proxy heartbeat stale", lambda s, c: proxy(s, "p1", heartbeat=False),
     ["no proxy is running"]),
    ("cluster unreachable", lambda s, c: (c.down.add("origin"), proxy(s, "p1")),
     ["the current schema fingerprint could not be computed"]),
]


@pytest.mark.parametrize("setup, reasons", [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_advance_refusals_list_every_reason_and_change_nothing(cfg, clusters, setup, reasons):
    store = store_of(cfg)
    if setup is not None:
        assert zdm(cfg, "preflight").exit_code == 0
        setup(store, clusters)
    before = store.path.read_bytes() if store.path.exists() else None
    result = zdm(cfg, "phase", "advance")
    assert result.exit_code == 1
    out = flat(result.stderr)
    assert "error: cannot advance from 0 PLAN to 1 PROXY:" in out
    for reason in reasons:
        assert f"- {reason}" in out
    assert "what to do:" in out
    assert (store.path.read_bytes() if store.path.exists() else None) == before


def test_advance_1_to_2_records_the_clients_on_proxy_confirmation(cfg, clusters):
    store = store_of(cfg)
    at_phase(store, Phase.PROXY)
    refused = zdm(cfg, "phase", "advance")
    assert refused.exit_code == 1
    assert "--confirm-clients-on-proxy" in refused.stderr
    assert clusters.probes == 0, "phase 1 guards need no cluster round trip"
    result = zdm(cfg, "phase", "advance", "--confirm-clients-on-proxy", "--operator", "carol")
    assert result.exit_code == 0, result.output
    state = store.load()
    assert state.phase == Phase.MIGRATE
    assert state.evidence["clients_on_proxy"]["operator"] == "carol"


def test_advance_with_a_routing_change_waits_for_every_proxy(cfg, clusters):
    store = store_of(cfg)
    at_phase(store, Phase.ASYNC_READS)
    proxy(store, "p1", ack=1, async_reads={"requests": 500, "errors": 0, "mismatches": 0})
    with AckingProxy(store, "p1"):
        result = zdm(cfg, "phase", "advance", "--ack-timeout", "5")
    assert result.exit_code == 0, result.output
    assert "Routing revision 2 applied by every proxy" in result.output
    state = store.load()
    assert state.phase == Phase.TARGET_READS and state.routing_status.applied


def test_a_lagging_proxy_fails_the_command_and_shows_in_status_until_confirmed(cfg, clusters):
    store = store_of(cfg)
    at_phase(store, Phase.ASYNC_READS)
    for name in ("p1", "p2"):
        proxy(store, name, ack=1, async_reads={"requests": 100, "errors": 0, "mismatches": 0})
    with AckingProxy(store, "p1"):
        result = zdm(cfg, "phase", "advance", "--ack-timeout", "0.3")
    assert result.exit_code == 1
    assert "Routing partially applied: revision 2 is not yet applied by p2" in flat(result.output)
    assert "routing revision 2 not yet applied by: p2" in result.stderr
    state = store.load()
    assert state.phase == Phase.TARGET_READS and not state.routing_status.applied

    doc = json.loads(zdm(cfg, "status", "--json").stdout)
    assert doc["routing"]["lagging"] == ["p2"]
    assert doc["next"]["command"] == "zdm phase confirm-routing"
    status = flat(zdm(cfg, "status").output)
    assert "partially applied: waiting for p2" in status and "LAGGING (has 1, needs 2)" in status

    refused = zdm(cfg, "phase", "advance", "--confirm-clients-on-target")
    assert refused.exit_code == 1 and "not yet applied by p2" in flat(refused.stderr)

    assert zdm(cfg, "phase", "confirm-routing", "--ack-timeout", "0").exit_code == 1
    store.ack_routing("p2", 2)
    confirmed = zdm(cfg, "phase", "confirm-routing")
    assert confirmed.exit_code == 0, confirmed.output
    assert store.load().routing_status.applied
    again = zdm(cfg, "phase", "confirm-routing")
    assert again.exit_code == 0 and "nothing to do" in again.output


# -- rollback -------------------------------------------------------------------------------

@pytest.mark.parametrize("start, args, dest", [
    (Phase.TARGET_READS, [], Phase.ASYNC_READS),
    (Phase.TARGET_READS, ["--to", "0"], Phase.PLAN),
    (Phase.ASYNC_READS, ["--to", "2", "--why", "mismatches"], Phase.MIGRATE),
    (Phase.PROXY, [], Phase.PLAN),
], ids=["4 to 3", "4 to 0", "3 to 2", "1 to 0"])
def test_rollback(cfg, clusters, start, args, dest):
    store = store_of(cfg)
    at_phase(store, start)
    proxy(store, "p1", ack=1)
    with AckingProxy(store, "p1"):
        result = zdm(cfg, "rollback", *args)
    assert result.exit_code == 0, result.output
    assert f"Rolled back from {start.label} to {dest.label}" in result.output
    assert store.load().phase == dest and store.load().routing_status.applied
    assert clusters.probes == 0


@pytest.mark.parametrize("start, args, words", [
    (Phase.PLAN, [], "phase 0 PLAN is the first phase"),
    (Phase.CUTOVER, [], "phase 5 CUTOVER cannot be rolled back"),
    (Phase.MIGRATE, ["--to", "3"], "3 ASYNC_READS is not behind 2 MIGRATE"),
    (Phase.ASYNC_READS, ["--to", "1"], "3 ASYNC_READS cannot roll back to 1 PROXY"),
], ids=["from 0", "from 5", "forward", "to a phase with no way back"])
def test_rollback_refusals(cfg, clusters, start, args, words):
    store = store_of(cfg)
    if start != Phase.PLAN:
        at_phase(store, start)
    before = store.path.read_bytes() if store.path.exists() else None
    result = zdm(cfg, "rollback", *args)
    assert result.exit_code == 1 and words in flat(result.stderr)
    assert (store.path.read_bytes() if store.path.exists() else None) == before


def test_a_rollback_that_a_proxy_does_not_apply_fails_naming_it(cfg, clusters):
    store = store_of(cfg)
    at_phase(store, Phase.TARGET_READS)
    proxy(store, "p1", ack=1)
    result = zdm(cfg, "rollback", "--ack-timeout", "0")
    assert result.exit_code == 1 and "not yet applied by: p1" in result.stderr
    assert store.load().phase == Phase.ASYNC_READS, "the rollback itself is recorded"


# -- status ---------------------------------------------------------------------------------

def test_status_at_the_start(cfg, clusters):
    result = zdm(cfg, "status")
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "Phase 0 PLAN" in out and "primary cluster origin" in out
    assert "none registered" in out and "Evidence: none recorded yet" in out
    assert "- no preflight has been recorded → run `zdm preflight`" in out


def test_status_json_shows_proxies_evidence_async_reads_and_the_next_command(cfg, clusters):
    store = store_of(cfg)
    assert zdm(cfg, "preflight").exit_code == 0
    proxy(store, "p1", ack=0, async_reads={"requests": 3, "errors": 1, "mismatches": 0})
    result = zdm(cfg, "status", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["phase"], doc["phase_name"]) == (0, "PLAN")
    assert doc["routing"] == {"primary": "origin", "read_mode": "primary_only", "revision": 0,
                              "applied": True, "lagging": []}
    (p,) = doc["proxies"]
    assert (p["name"], p["running"], p["routing_applied"], p["async_reads"]["requests"]) == \
        ("p1", True, True, 3)
    assert doc["async_reads"]["errors"] == 1
    assert set(doc["evidence"]) == {"preflight"}
    assert doc["next"] == {"command": "zdm phase advance", "allowed": True,
                           "summary": "advance to 1 PROXY", "reasons": []}
    text = flat(zdm(cfg, "status").output)
    assert "Next: advance to 1 PROXY: run `zdm phase advance`" in text


def test_status_when_a_cluster_is_down_warns_and_still_answers(cfg, clusters):
    assert zdm(cfg, "preflight").exit_code == 0
    clusters.down.add("origin")
    result = zdm(cfg, "status")
    assert result.exit_code == 0
    assert "warning: cannot read the live schemas: origin" in flat(result.stderr)
    assert "- the current schema fingerprint could not be computed" in flat(result.stdout)


def test_status_without_a_passing_preflight_does_not_contact_the_clusters(cfg, clusters):
    assert zdm(cfg, "status").exit_code == 0
    assert clusters.probes == 0


def test_status_after_cutover(cfg, clusters):
    at_phase(store_of(cfg), Phase.CUTOVER)
    doc = json.loads(zdm(cfg, "status", "--json").stdout)
    assert doc["next"]["command"] is None and "complete" in doc["next"]["summary"]


# -- arguments ------------------------------------------------------------------------------

BAD_ARGS = [
    ("advance --to 9", ["phase", "advance", "--to", "9"], "Invalid value for '--to'"),
    ("advance --to -1", ["phase", "advance", "--to", "-1"], "Invalid value for '--to'"),
    ("advance --to x", ["phase", "advance", "--to", "x"], "Invalid value for '--to'"),
    ("rollback --to 6", ["rollback", "--to", "6"], "Invalid value for '--to'"),
    ("negative ack timeout", ["phase", "advance", "--ack-timeout", "-1"], "--ack-timeout"),
    ("no --force", ["phase", "advance", "--force"], "No such option: --force"),
    ("rollback --force", ["rollback", "--force"], "No such option: --force"),
    ("negative clock skew", ["preflight", "--max-clock-skew", "-1"], "--max-clock-skew"),
    ("unknown phase command", ["phase", "jump"], "No such command 'jump'"),
]


@pytest.mark.parametrize("args, words", [c[1:] for c in BAD_ARGS], ids=[c[0] for c in BAD_ARGS])
def test_bad_arguments_are_usage_errors(cfg, clusters, args, words):
    result = zdm(cfg, *args)
    assert result.exit_code == 2
    assert words in result.output
    assert not store_of(cfg).path.exists() and clusters.probes == 0


@pytest.mark.parametrize("args", [["preflight"], ["status"], ["phase", "advance"], ["rollback"],
                                  ["phase", "confirm-routing"]], ids=" ".join)
def test_every_command_reports_a_missing_config_file(tmp_path, args):
    result = runner.invoke(app, [*args, "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "nope.yaml: file not found" in flat(result.output)


def test_an_empty_operator_is_refused(cfg, clusters):
    result = zdm(cfg, "phase", "advance", "--operator", " ")
    assert result.exit_code == 1 and "--operator must not be empty" in result.stderr
