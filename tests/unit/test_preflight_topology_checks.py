"""The preflight's topology checks on hand-built probes: nodes down, the local DC, DCs target
lacks, replication factors above a DC's node count, and what the report shows of them."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from zdm.preflight import ClusterProbe, Status, assess
from zdm.preflight.schema import KeyspaceSchema, SchemaSnapshot, TableSchema
from zdm.preflight.topology import cql_literal, suggest
from zdm.proxy.cluster_topology import ClusterTopology, Node, Replication

M3 = "org.apache.cassandra.dht.Murmur3Partitioner"
NTS = "org.apache.cassandra.locator.NetworkTopologyStrategy"


def node(address: str, dc: str = "dc1", up: bool = True, rack: str = "rack1") -> Node:
    return Node(f"id-{address}", address, 9042, dc, rack, up=up, release_version="5.0.8")


def nts(**factors: int) -> dict[str, str]:
    return {"class": NTS, **{dc: str(rf) for dc, rf in factors.items()}}


def probe(name: str, nodes, keyspaces: dict[str, dict[str, str]], *, local_dc: str | None = None,
          contact_points=("10.0.0.1",), tables=("app",)) -> ClusterProbe:
    schema = SchemaSnapshot({ks: KeyspaceSchema(ks, {"t": TableSchema(ks, "t", {"k": "int"}, ("k",))})
                             for ks in keyspaces if ks in tables})
    topo = ClusterTopology(tuple(nodes), {ks: Replication.parse(r) for ks, r in keyspaces.items()},
                           control_host_id=nodes[0].host_id)
    return ClusterProbe(name, "10.0.0.1:9042", "5.0.8", M3, 5, schema, topology=topo,
                        local_dc_setting=local_dc, contact_points=tuple(contact_points))


ORIGIN = [node("10.0.0.1"), node("10.0.0.2"), node("10.0.0.3", "dc2"), node("10.0.0.4", "dc2")]
TARGET = [node("10.0.1.1"), node("10.0.1.2")]


def check(report, name):
    (c,) = [c for c in report.checks if c.name == name]
    return c


def test_matching_topologies_pass_and_the_report_shows_both_clusters():
    origin = probe("origin", ORIGIN[:2], {"app": nts(dc1=2)})
    target = probe("target", TARGET, {"app": nts(dc1=2)}, contact_points=("10.0.1.1",))
    report = assess(origin, target)
    assert report.passed
    names = ["origin nodes", "origin local DC", "target nodes", "target local DC",
             "target datacenters", "replication factors"]
    assert all(check(report, n).status == Status.PASS for n in names)
    assert check(report, "origin nodes").detail == "2 node(s) up (dc1 2), Cassandra 5.0.8"
    assert check(report, "target local DC").detail.startswith(
        "dc1 (target.local_dc is not set: the contact points' DC)")
    (o, t) = report.to_dict()["topology"]
    assert o["cluster"] == "origin" and o["local_dc"] == "dc1"
    assert o["datacenters"] == {"dc1": {"nodes": 2, "down": 0}}
    assert o["nodes"][0] == {"address": "10.0.0.1", "port": 9042, "dc": "dc1", "rack": "rack1",
                             "up": True, "release_version": "5.0.8", "host_id": "id-10.0.0.1"}
    assert t["replication"] == {"app": {"class": "NetworkTopologyStrategy", "dc1": 2}}
    json.dumps(report.to_dict())


def test_probes_without_a_topology_get_no_topology_check():
    origin = replace(probe("origin", ORIGIN, {"app": nts(dc1=2)}), topology=None)
    report = assess(origin, probe("target", TARGET, {"app": nts(dc1=2)}))
    assert not [c for c in report.checks if "nodes" in c.name or "DC" in c.name]
    assert report.topology == ()


@pytest.mark.parametrize("cluster", ["origin", "target"])
def test_a_node_down_is_a_warning_naming_it(cluster):
    nodes = {"origin": list(ORIGIN[:2]), "target": list(TARGET)}
    nodes[cluster][1] = replace(nodes[cluster][1], up=False)
    origin = probe("origin", nodes["origin"], {"app": nts(dc1=2)})
    target = probe("target", nodes["target"], {"app": nts(dc1=2)}, contact_points=("10.0.1.1",))
    report = assess(origin, target)
    c = check(report, f"{cluster} nodes")
    down = nodes[cluster][1].address
    assert c.status == Status.WARN
    assert c.detail == f"1 of 2 node(s) down or unreachable from this host: {down} (dc1, rack1)"
    assert c.todo.startswith("start them, or let this host (and the proxy's) reach them on port 9042")
    assert report.passed  # a warning, not a refusal
    other = "target" if cluster == "origin" else "origin"
    assert check(report, f"{other} nodes").status == Status.PASS
    layout = {t["cluster"]: t for t in report.to_dict()["topology"]}[cluster]
    assert layout["datacenters"]["dc1"] == {"nodes": 2, "down": 1}


@pytest.mark.parametrize("setting, contact_points, status, words", [
    ("dc2", ("10.0.0.1",), Status.PASS, "dc2 (origin.local_dc); origin has dc1, dc2"),
    (None, ("10.0.0.3",), Status.PASS, "dc2 (origin.local_dc is not set: the contact points' DC)"),
    ("dc9", ("10.0.0.1",), Status.FAIL,
     "origin.local_dc is 'dc9', but origin has no such datacenter; its datacenters: dc1, dc2"),
    (None, ("10.0.0.1", "10.0.0.3"), Status.FAIL,
     "origin.contact_points are in several datacenters (dc1, dc2) and origin.local_dc is not set"),
], ids=["configured", "contact points' DC", "a DC origin lacks", "contact points in two DCs"])
def test_the_local_dc_is_the_one_the_proxy_chooses(setting, contact_points, status, words):
    origin = probe("origin", ORIGIN, {"app": nts(dc1=2, dc2=2)}, local_dc=setting,
                   contact_points=contact_points)
    target = probe("target", TARGET, {"app": nts(dc1=2)})
    report = assess(origin, target)
    c = check(report, "origin local DC")
    assert c.status == status and words in c.detail
    if status == Status.FAIL:
        assert "origin.local_dc" in c.todo and not report.passed
        assert report.to_dict()["topology"][0]["local_dc"] is None
    else:
        assert report.to_dict()["topology"][0]["local_dc"] == "dc2"


def test_a_target_local_dc_target_lacks_is_refused_with_the_dcs_it_has():
    origin = probe("origin", ORIGIN[:2], {"app": nts(dc1=2)})
    target = probe("target", TARGET, {"app": nts(dc1=2)}, local_dc="DC1")
    c = check(assess(origin, target), "target local DC")
    assert c.status == Status.FAIL
    assert c.detail == ("target.local_dc is 'DC1', but target has no such datacenter; its "
                        "datacenters: dc1")
    assert c.todo.startswith("set target.local_dc in zdm.yaml")


def test_origin_replicating_to_a_dc_target_lacks_refuses_while_target_has_no_keyspace():
    origin = probe("origin", ORIGIN, {"app": nts(dc1=3, dc2=2)})
    target = probe("target", TARGET, {}, tables=())
    report = assess(origin, target)
    c = check(report, "target datacenters")
    assert c.status == Status.FAIL
    assert c.detail == ("app on origin replicates to dc2 (RF 2), which target lacks, and target "
                        "has no keyspace app yet")
    # origin's RF for dc1 is 3, but target's dc1 has 2 nodes
    assert c.todo == ("target has DCs dc1; create the keyspace on target: CREATE KEYSPACE app WITH "
                      "replication = {'class': 'NetworkTopologyStrategy', 'dc1': 2}")
    assert check(report, "schema").status == Status.FAIL  # as every keyspace missing on target


def test_a_keyspace_missing_on_target_whose_dcs_target_has_is_the_schema_checks_alone():
    origin = probe("origin", ORIGIN[:2], {"app": nts(dc1=2)})
    report = assess(origin, probe("target", TARGET, {}, tables=()))
    assert check(report, "target datacenters").status == Status.PASS
    assert check(report, "schema").status == Status.FAIL


def test_a_keyspace_on_target_naming_a_dc_target_lacks_is_refused_with_the_alter():
    origin = probe("origin", ORIGIN, {"app": nts(dc1=2, dc2=2)})
    # created on a target release that let it name a DC it lacks (before 4.0), or a DC since removed
    target = probe("target", TARGET, {"app": nts(dc1=2, dc2=2)})
    report = assess(origin, target)
    c = check(report, "target datacenters")
    assert c.status == Status.FAIL and not report.passed
    assert c.detail == "app on target replicates to dc2 (RF 2), which target lacks"
    assert c.todo == ("target has DCs dc1; ALTER KEYSPACE app WITH replication = "
                      "{'class': 'NetworkTopologyStrategy', 'dc1': 2}")
    # the DC target lacks is this check's; not counted again as RF above 0 nodes
    assert check(report, "replication factors").status == Status.PASS


def test_origin_dcs_target_lacks_warn_when_target_replicates_to_its_own():
    origin = probe("origin", ORIGIN, {"app": nts(dc1=2, dc2=2)})
    target = probe("target", TARGET, {"app": nts(dc1=2)})
    report = assess(origin, target)
    c = check(report, "target datacenters")
    assert c.status == Status.WARN and report.passed
    assert c.detail == ("origin replicates to DCs target lacks (target has dc1): app (origin: "
                        "dc2 (RF 2); target: dc1 (RF 2))")
    assert "nothing blocks the migration" in c.todo


def test_keyspaces_out_of_scope_are_not_judged():
    origin = probe("origin", ORIGIN, {"app": nts(dc1=2), "other": nts(dc1=2, dc2=5)},
                   tables=("app", "other"))
    target = probe("target", TARGET, {"app": nts(dc1=2)})
    from zdm.config import ScopeConfig

    report = assess(origin, target, ScopeConfig(keyspaces=("app",)))
    assert check(report, "target datacenters").status == Status.PASS
    assert check(report, "replication factors").status == Status.PASS
    assert report.to_dict()["topology"][0]["replication"] == {
        "app": {"class": "NetworkTopologyStrategy", "dc1": 2}}


@pytest.mark.parametrize("o_repl, t_repl, words, fix", [
    (nts(dc1=2), nts(dc1=3),
     "target: app has RF 3 in dc1, which has 2 node(s) (QUORUM there needs 2 of its 2 node(s))",
     "on target, ALTER KEYSPACE app WITH replication = {'class': 'NetworkTopologyStrategy', "
     "'dc1': 2} or add nodes to dc1"),
    (nts(dc1=2, dc2=3), nts(dc1=2),
     "origin: app has RF 3 in dc2, which has 2 node(s) (QUORUM there needs 2 of its 2 node(s))",
     "on origin, ALTER KEYSPACE app WITH replication = {'class': 'NetworkTopologyStrategy', "
     "'dc1': 2, 'dc2': 2} or add nodes to dc2"),
    (nts(dc1=2), {"class": "SimpleStrategy", "replication_factor": "5"},
     "target: app has RF 5 in the cluster, which has 2 node(s) (QUORUM there always fails)",
     "on target, ALTER KEYSPACE app WITH replication = {'class': 'SimpleStrategy', "
     "'replication_factor': 2} or add nodes to the cluster"),
    (nts(dc1=2, dc3=1), nts(dc1=2),
     "origin: app has RF 1 in dc3, which has 0 node(s) (QUORUM there always fails)",
     "on origin, ALTER KEYSPACE app WITH replication = {'class': 'NetworkTopologyStrategy', "
     "'dc1': 2} or add nodes to dc3"),
], ids=["target RF 3 on 2 nodes", "origin dc2", "SimpleStrategy", "origin names a DC it lacks"])
def test_more_replicas_than_nodes_is_a_warning(o_repl, t_repl, words, fix):
    origin = probe("origin", ORIGIN, {"app": o_repl})
    target = probe("target", TARGET, {"app": t_repl})
    report = assess(origin, target)
    c = check(report, "replication factors")
    assert c.status == Status.WARN
    assert c.detail == words and c.todo == fix


def test_suggested_replication_keeps_what_fits_and_caps_at_the_nodes():
    topo = ClusterTopology((node("a"), node("b"), node("c", "dc2")), {})
    assert suggest(topo, Replication.parse(nts(dc1=3, dc9=2))) == Replication(
        "NetworkTopologyStrategy", (("dc1", 2),))
    assert cql_literal(suggest(topo, Replication.parse(nts(x=3, y=1)))) == (
        "{'class': 'NetworkTopologyStrategy', 'dc1': 2, 'dc2': 1}")


def test_the_cli_shows_each_clusters_dcs_nodes_and_replicas(monkeypatch, tmp_path):
    from zdm.cli.main import app
    from zdm.preflight import run as preflight

    nodes = [*ORIGIN[:3], replace(ORIGIN[3], up=False)]
    probes = {"origin": probe("origin", nodes, {"app": nts(dc1=2, dc2=2)}),
              "target": probe("target", TARGET, {"app": nts(dc1=3)}, contact_points=("10.0.1.1",))}
    monkeypatch.setattr(preflight, "probe_cluster", lambda cfg, name, **kw: probes[name])
    cfg = tmp_path / "zdm.yaml"
    cfg.write_text("state_dir: state\n")
    result = CliRunner(env={"COLUMNS": "200", "USER": "alice"}).invoke(
        app, ["preflight", "--config", str(cfg)])
    out = result.output
    assert "Topology: nodes, and replicas per keyspace in scope" in out
    assert "10.0.0.3, 10.0.0.4 DOWN" in out and "dc1 (local)" in out
    assert "app 2" in out and "app 3" in out
    assert "1 of 4 node(s) down or unreachable from this host: 10.0.0.4 (dc2, rack1)" in out
    result = CliRunner(env={"COLUMNS": "200", "USER": "alice"}).invoke(
        app, ["preflight", "--config", str(cfg), "--json"])
    doc = json.loads(result.output)
    assert [t["cluster"] for t in doc["topology"]] == ["origin", "target"]
    assert doc["topology"][1]["replication"]["app"] == {"class": "NetworkTopologyStrategy", "dc1": 3}


def test_a_case_sensitive_keyspace_is_quoted_in_the_fix():
    origin = probe("origin", ORIGIN, {"MyApp": nts(dc1=2, dc2=2)}, tables=("MyApp",))
    target = probe("target", TARGET, {}, tables=())
    c = check(assess(origin, target), "target datacenters")
    assert c.status == Status.FAIL
    assert 'CREATE KEYSPACE "MyApp" WITH replication' in c.todo


def test_the_cli_counts_the_nodes_of_a_large_dc(monkeypatch, tmp_path):
    from zdm.cli.main import app
    from zdm.preflight import run as preflight

    many = [node(f"10.0.2.{i}", up=i != 5) for i in range(1, 9)]
    probes = {"origin": probe("origin", many, {"app": nts(dc1=3)}, contact_points=("10.0.2.1",)),
              "target": probe("target", TARGET, {"app": nts(dc1=2)}, contact_points=("10.0.1.1",))}
    monkeypatch.setattr(preflight, "probe_cluster", lambda cfg, name, **kw: probes[name])
    cfg = tmp_path / "zdm.yaml"
    cfg.write_text("state_dir: state\n")
    result = CliRunner(env={"COLUMNS": "200", "USER": "alice"}).invoke(
        app, ["preflight", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "8 nodes, 1 down" in result.output and "10.0.2.2" not in result.output.split("Topology")[1]
    assert "app 3" in result.output
