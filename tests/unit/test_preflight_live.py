"""Facts from the state directory: proxy records (the proxy's contract), health, async reads,
and when the live schema is read."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest

from zdm.config import Config
from zdm.clusters.connect import ConnectError
from zdm.phases import AsyncReadStats, MigrationState, Phase, ProxyHealth, UnknownProxy
from zdm.clock import iso
from zdm.state import FileStateStore, StateStore
from zdm.phases.live import gather_facts, proxy_health, sum_async_reads
from zdm.phases.state import RoutingStatus

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def heartbeat(age_s: float) -> str:
    return iso(NOW - timedelta(seconds=age_s))


def test_update_proxy_merges_fields_and_keeps_the_ack(tmp_path):
    store = FileStateStore(tmp_path)
    store.register_proxy("p1", "127.0.0.1:14002")
    store.ack_routing("p1", 3)
    rec = store.update_proxy("p1", pid=42, heartbeat_at=heartbeat(0), origin_connected=True)
    store.update_proxy("p1", target_connected=False, name="spoofed")
    (got,) = store.proxy_records().values()
    assert got == {**rec, "target_connected": False}
    assert (got["acked_revision"], got["pid"], got["name"], got["address"]) == \
        (3, 42, "p1", "127.0.0.1:14002")
    assert store.routing_acks() == {"p1": 3}
    assert not store.path.exists(), "proxy records never touch the state file"


def test_update_proxy_refuses_an_unregistered_or_badly_named_proxy(tmp_path):
    store = FileStateStore(tmp_path)
    with pytest.raises(UnknownProxy):
        store.update_proxy("ghost", pid=1)
    store.register_proxy("p1", "a")
    store.deregister_proxy("p1")
    with pytest.raises(UnknownProxy):
        store.update_proxy("p1", pid=1)
    with pytest.raises(Exception, match="invalid proxy name"):
        store.update_proxy("../x", pid=1)
    assert store.proxy_records() == {}


def test_concurrent_heartbeats_and_acks_never_undo_each_other(tmp_path):
    store = FileStateStore(tmp_path)
    store.register_proxy("p1", "a")

    def beat():
        for i in range(150):
            store.update_proxy("p1", beats=i)

    t = threading.Thread(target=beat)
    t.start()
    for rev in range(1, 151):
        store.ack_routing("p1", rev)
    t.join()
    rec = store.proxy_records()["p1"]
    assert (rec["acked_revision"], rec["beats"]) == (150, 149)


LOCAL = "127.0.0.1:14002"
HEALTH_CASES = [
    # id, record, running
    ("fresh heartbeat, live local pid", {"heartbeat_at": heartbeat(1), "pid": "SELF"}, True),
    ("stale heartbeat", {"heartbeat_at": heartbeat(6), "pid": "SELF"}, False),
    ("no heartbeat yet", {}, False),
    ("garbled heartbeat", {"heartbeat_at": "yesterday"}, False),
    ("local pid gone", {"heartbeat_at": heartbeat(0), "pid": "DEAD"}, False),
    ("remote proxy, pid not checkable", {"heartbeat_at": heartbeat(0), "pid": "DEAD",
                                         "address": "10.9.9.9:14002"}, True),
    ("wildcard listen address is local", {"heartbeat_at": heartbeat(0), "pid": "DEAD",
                                          "address": "0.0.0.0:14002"}, False),
]


@pytest.mark.parametrize("record, running", [c[1:] for c in HEALTH_CASES],
                         ids=[c[0] for c in HEALTH_CASES])
def test_proxy_health(record, running):
    ages = {heartbeat(n): float(n) for n in (0, 1, 6)}
    import os

    pids = {"SELF": os.getpid(), "DEAD": dead_pid()}
    rec = {"name": "p1", "address": LOCAL, "acked_revision": 4, "origin_connected": True,
           "target_connected": False, **record}
    if "pid" in rec:
        rec["pid"] = pids[rec["pid"]]
    assert proxy_health(rec, NOW) == ProxyHealth("p1", running, True, False, 4,
                                                 ages.get(rec.get("heartbeat_at")))


def reads(requests, errors, mismatches, since_s):
    return {"requests": requests, "errors": errors, "mismatches": mismatches,
            "since": heartbeat(since_s)}


@pytest.mark.parametrize("records, expected", [
    ([{}, {}], None),
    ([{"async_reads": reads(10, 1, 0, 60)}, {"async_reads": reads(5, 0, 2, 30)}, {}],
     AsyncReadStats(15, 1, 2, NOW - timedelta(seconds=60))),
    ([{"async_reads": {"requests": 3}}, {"async_reads": reads(1, 0, 0, 5)}],
     AsyncReadStats(1, 0, 0, NOW - timedelta(seconds=5))),
], ids=["none reported", "summed, earliest since", "malformed record ignored"])
def test_async_reads_are_summed_over_proxies(records, expected):
    assert sum_async_reads(records) == expected


def at_phase(store: StateStore, phase: Phase, preflight_passed: bool | None) -> MigrationState:
    evidence = {} if preflight_passed is None else {"preflight": {
        "passed": preflight_passed, "schema_fingerprint": "sha256:abc", "at": iso(NOW),
        "summary": "", "recorded_by": "t", "recorded_at": iso(NOW)}}
    state = MigrationState(phase=phase, revision=1, routing_status=RoutingStatus(0, True),
                           evidence=evidence)
    store.write(state, expected_revision=0)
    return state


@pytest.mark.parametrize("phase, preflight_passed, reads_schema", [
    (Phase.PLAN, True, True), (Phase.PLAN, None, False), (Phase.PLAN, False, False),
    (Phase.PROXY, True, False), (Phase.MIGRATE, True, True),
    (Phase.ASYNC_READS, True, False), (Phase.TARGET_READS, True, False),
], ids=["0 after a passing preflight", "0 without preflight", "0 after a failed preflight",
        "1", "2", "3", "4"])
def test_gather_facts_reads_the_live_schema_only_when_a_guard_needs_it(tmp_path, phase,
                                                                       preflight_passed,
                                                                       reads_schema):
    store = FileStateStore(tmp_path)
    at_phase(store, phase, preflight_passed)
    calls = []

    def live(config):
        calls.append(config)
        return "sha256:abc", ["app.t"]

    facts = gather_facts(Config(), store, live_schema=live, now=NOW, skip_async_reads=True)
    assert bool(calls) == reads_schema
    assert (facts.schema_fingerprint, facts.tables) == \
        (("sha256:abc", ["app.t"]) if reads_schema else (None, None))
    assert facts.skip_async_reads and not facts.confirm_clients_on_proxy and facts.now == NOW


def test_gather_facts_builds_proxies_and_async_reads_from_the_records(tmp_path):
    store = FileStateStore(tmp_path)
    for name in ("p1", "p2"):
        store.register_proxy(name, LOCAL)
    store.update_proxy("p1", heartbeat_at=heartbeat(1), origin_connected=True,
                       target_connected=True, async_reads=reads(7, 0, 0, 10))
    store.ack_routing("p2", 0)
    facts = gather_facts(Config(), store, live_schema=None, now=NOW)
    assert facts.proxies == (ProxyHealth("p1", True, True, True, None, 1.0),
                             ProxyHealth("p2", False, False, False, 0))
    assert facts.async_reads == AsyncReadStats(7, 0, 0, NOW - timedelta(seconds=10))


def test_an_unreachable_cluster_leaves_the_fingerprint_unknown_and_says_why(tmp_path):
    store = FileStateStore(tmp_path)
    at_phase(store, Phase.PLAN, preflight_passed=True)
    problems = []

    def live(config):
        raise ConnectError("origin (127.0.0.1:9042): not reachable: refused")

    facts = gather_facts(Config(), store, live_schema=live, on_problem=problems.append)
    assert facts.schema_fingerprint is None and facts.tables is None
    assert problems == ["cannot read the live schemas: origin (127.0.0.1:9042): not reachable: refused"]
