"""The preflight, and the copy's range reads, on real multi-DC clusters (`multidc`: origin
dc1 + dc2, 2 nodes each; target dc1 only, 2 nodes): the preflight reports every node with its
DC, refuses a keyspace replicated to dc2 that target cannot hold, warns of an RF above a DC's
nodes and of a target node down, and refuses a local DC the cluster lacks, exactly as the proxy
would at start; the copy reads each range in the configured local DC only."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest
from cassandra.cluster import Cluster
from typer.testing import CliRunner

from zdm.cli.main import app
from zdm.config import Config, ScopeConfig
from zdm.preflight import Status, run_preflight

CREATE = "CREATE KEYSPACE {ks} WITH replication = {replication}"


def _execute(address: str, *statements: str) -> None:
    cluster = Cluster([address], port=9042, connect_timeout=10, protocol_version=5)
    try:
        session = cluster.connect()
        for statement in statements:
            session.execute(statement, timeout=60)
    finally:
        cluster.shutdown()


def _create(multidc, cluster: str, ks: str, dcs: str, table: str = "kv (k int PRIMARY KEY, v int)") -> None:
    """Keyspace ``ks`` on ``cluster`` with NetworkTopologyStrategy ``dcs`` ("'dc1': 2"), and a table."""
    _execute(multidc.addresses(cluster)[0],
             CREATE.format(ks=ks, replication=f"{{'class': 'NetworkTopologyStrategy', {dcs}}}"),
             f"CREATE TABLE {ks}.{table}")


def _check(report, name):
    (c,) = [c for c in report.checks if c.name == name]
    return c


@pytest.fixture()
def keyspace(multidc):
    """A fresh keyspace name, dropped from both clusters afterwards."""
    ks = "pt_" + uuid.uuid4().hex[:10]
    yield ks
    for cluster in ("origin", "target"):
        _execute(multidc.addresses(cluster)[0], f"DROP KEYSPACE IF EXISTS {ks}")


def _config(multidc, ks: str, **origin) -> Config:
    return Config(origin=replace(multidc.cluster_config("origin", 1), **origin),
                  target=multidc.cluster_config("target", 1), scope=ScopeConfig(keyspaces=(ks,)))


def test_a_keyspace_in_dc2_is_refused_until_target_holds_it_in_its_own_dc(multidc, keyspace, tmp_path):
    ks = keyspace
    _create(multidc, "origin", ks, "'dc1': 2, 'dc2': 2")
    report = run_preflight(_config(multidc, ks))
    dcs = _check(report, "target datacenters")
    assert dcs.status == Status.FAIL and not report.passed
    assert dcs.detail == (f"{ks} on origin replicates to dc2 (RF 2), which target lacks, and target "
                          f"has no keyspace {ks} yet")
    fix = f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'NetworkTopologyStrategy', 'dc1': 2}}"
    assert dcs.todo == f"target has DCs dc1; create the keyspace on target: {fix}"
    origin, target = (t.to_dict() for t in report.topology)
    assert {(n["address"], n["dc"], n["rack"], n["up"], n["release_version"]) for n in origin["nodes"]} == {
        (s.address, s.dc, "rack1", True, "5.0.8") for s in multidc.nodes("origin")}
    assert origin["datacenters"] == {"dc1": {"nodes": 2, "down": 0}, "dc2": {"nodes": 2, "down": 0}}
    assert origin["replication"] == {ks: {"class": "NetworkTopologyStrategy", "dc1": 2, "dc2": 2}}
    assert target["datacenters"] == {"dc1": {"nodes": 2, "down": 0}} and target["replication"] == {}
    assert origin["local_dc"] == target["local_dc"] == "dc1"
    for name in ("origin nodes", "target nodes", "origin local DC", "target local DC"):
        assert _check(report, name).status == Status.PASS, name

    # the fix as the preflight wrote it: target keeps its own replication, dc2 is a warning
    _execute(multidc.addresses("target")[0], fix, f"CREATE TABLE {ks}.kv (k int PRIMARY KEY, v int)")
    cfg = tmp_path / "zdm.yaml"
    cfg.write_text(f"origin: {{contact_points: [{multidc.addresses('origin')[0]}], port: 9042}}\n"
                   f"target: {{contact_points: [{multidc.addresses('target')[0]}], port: 9042}}\n"
                   f"scope: {{keyspaces: [{ks}]}}\nstate_dir: state\n")
    result = CliRunner(env={"COLUMNS": "200", "USER": "alice"}).invoke(
        app, ["preflight", "--config", str(cfg), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["passed"]
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["target datacenters"]["status"] == "warn"
    assert checks["target datacenters"]["detail"] == (
        f"origin replicates to DCs target lacks (target has dc1): {ks} (origin: dc2 (RF 2); "
        "target: dc1 (RF 2))")
    assert checks["replication factors"]["status"] == "pass"
    assert doc["topology"][1]["replication"] == {ks: {"class": "NetworkTopologyStrategy", "dc1": 2}}
    # and the table a person reads
    result = CliRunner(env={"COLUMNS": "200", "USER": "alice"}).invoke(
        app, ["preflight", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "127.0.0.33, 127.0.0.34" in result.output and f"{ks} 2" in result.output


def test_rf_3_on_a_2_node_target_dc_is_a_warning(multidc, keyspace):
    ks = keyspace
    _create(multidc, "origin", ks, "'dc1': 2")
    _create(multidc, "target", ks, "'dc1': 3")
    report = run_preflight(_config(multidc, ks))
    c = _check(report, "replication factors")
    assert c.status == Status.WARN and report.passed
    assert c.detail == (f"target: {ks} has RF 3 in dc1, which has 2 node(s) (QUORUM there needs 2 "
                        "of its 2 node(s))")
    assert c.todo == (f"on target, ALTER KEYSPACE {ks} WITH replication = {{'class': "
                      "'NetworkTopologyStrategy', 'dc1': 2} or add nodes to dc1")
    assert _check(report, "target datacenters").status == Status.PASS


@pytest.mark.parametrize("settings, status, words", [
    ({"local_dc": "dc9"}, Status.FAIL,
     "origin.local_dc is 'dc9', but origin has no such datacenter; its datacenters: dc1, dc2"),
    ({"local_dc": "dc2"}, Status.PASS, "dc2 (origin.local_dc); origin has dc1, dc2"),
    ({"contact_points": ("127.0.0.31", "127.0.0.33")}, Status.FAIL,
     "origin.contact_points are in several datacenters (dc1, dc2) and origin.local_dc is not set"),
], ids=["a DC origin lacks", "dc2", "contact points in both DCs"])
def test_the_local_dc_the_proxy_would_refuse_is_refused(multidc, settings, status, words):
    report = run_preflight(_config(multidc, "pt_none", **settings))
    c = _check(report, "origin local DC")
    assert c.status == status and c.detail.startswith(words), c.detail
    # read whatever local_dc says: every node reached, none taken for down
    assert _check(report, "origin connection").status == Status.PASS
    assert _check(report, "origin nodes").detail.startswith("4 node(s) up (dc1 2, dc2 2)")


def test_a_target_node_down_is_a_warning_naming_it(multidc, keyspace):
    ks = keyspace
    for cluster in ("origin", "target"):
        _create(multidc, cluster, ks, "'dc1': 2")
    down = multidc.addresses("target")[1]
    multidc.stop_node(down)
    try:
        report = run_preflight(_config(multidc, ks))
    finally:
        multidc.restore()
    c = _check(report, "target nodes")
    assert c.status == Status.WARN and report.passed
    assert c.detail == f"1 of 2 node(s) down or unreachable from this host: {down} (dc1, rack1)"
    assert c.todo.startswith("start them, or let this host (and the proxy's) reach them on port 9042")
    assert _check(report, "origin nodes").status == Status.PASS
    target = report.topology[1].to_dict()
    assert target["datacenters"] == {"dc1": {"nodes": 2, "down": 1}}
    assert [n["up"] for n in target["nodes"] if n["address"] == down] == [False]


@pytest.mark.parametrize("local_dc", ["dc1", "dc2"])
def test_the_copys_range_reads_stay_in_the_local_dc(multidc, keyspace, local_dc):
    """Origin replicates the keyspace to both DCs (one replica in each) and zdm is given
    every origin node as a contact point: with ``origin.local_dc`` set, every range read of the
    copy is coordinated by a node of that DC, and served from that node's own data; the other
    DC's nodes coordinate none and serve none."""
    from cassandra import ConsistencyLevel
    from cassandra.concurrent import execute_concurrent_with_args

    from tests.support.multinode import NodeSessions
    from zdm.migrate import MigrationSettings, RunSettings
    from zdm.migrate.run import migrate
    from zdm.scope import Scope

    ks = keyspace
    _create(multidc, "origin", ks, "'dc1': 1, 'dc2': 1", "t (k int PRIMARY KEY, v text)")
    _create(multidc, "target", ks, "'dc1': 1", "t (k int PRIMARY KEY, v text)")
    cluster = Cluster(multidc.addresses("origin"), port=9042, connect_timeout=20, protocol_version=5)
    try:
        session = cluster.connect(wait_for_all_pools=True)
        insert = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
        insert.consistency_level = ConsistencyLevel.ALL  # on both DCs' replicas before the copy
        for ok, result in execute_concurrent_with_args(session, insert, [(k, f"v{k}") for k in range(2000)],
                                                        concurrency=32, raise_on_first_error=False):
            assert ok, result
    finally:
        cluster.shutdown()
    everyone = replace(multidc.cluster_config("origin"), local_dc=local_dc)
    config = Config(origin=everyone, target=multidc.cluster_config("target"), scope=ScopeConfig(keyspaces=(ks,)))
    dcs = {s.address: s.dc for s in multidc.nodes("origin")}

    def counts() -> dict[str, tuple[int, int]]:
        with NodeSessions(multidc, "origin") as nodes:
            coordinated = nodes.table_count("coordinator_scan_latency", ks)
            local = nodes.table_count("local_scan_latency", ks)
        return {a: (coordinated[a], local[a]) for a in coordinated}

    before = counts()
    report = migrate(config, MigrationSettings(scope=Scope(keyspaces=(ks,)), record_evidence=False,
                                               run=RunSettings(workers=2, concurrency=4, fetch_size=100,
                                                               splits=24, request_timeout_s=20)))
    assert report.complete and report.tables[0].rows_total == 2000
    after = counts()
    delta = {a: (after[a][0] - before[a][0], after[a][1] - before[a][1]) for a in after}
    print(f"range reads per origin node (coordinated, served locally), local DC {local_dc}: "
          f"{ {f'{a} {dcs[a]}': d for a, d in delta.items()} }")
    local_nodes = [a for a in delta if dcs[a] == local_dc]
    assert sum(delta[a][0] for a in local_nodes) > 0
    for address, (coordinated, served) in delta.items():
        if dcs[address] == local_dc:
            assert coordinated == served, f"{address} coordinated reads it did not serve: {delta}"
        else:
            assert (coordinated, served) == (0, 0), f"{address} ({dcs[address]}) took part: {delta}"
