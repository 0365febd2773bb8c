"""The multi-node sandbox's pure parts, with no Java: each node's address, seed, datacenter and
token allocation as its cassandra.yaml and cassandra-rackdc.properties say them, the single-node
default left as it was, and the clear refusals of bad input."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from zdm.cli.main import app
from zdm.errors import SandboxError
from zdm.sandbox import layout, local, node


def multinode(tmp_path, **kw) -> local.SandboxSettings:
    base = {"directory": tmp_path, "origin_port": 9042, "target_port": 9042, "origin_storage_port": 7000,
                "target_storage_port": 7000, "origin_nodes": 3, "target_nodes": 2}
    return local.SandboxSettings(**{**base, **kw})


def rendered(spec: node.NodeSpec, tmp_path) -> tuple[dict, str | None]:
    node.write_config(spec)
    conf = yaml.safe_load((spec.directory / "conf" / "cassandra.yaml").read_text())
    rackdc = spec.rackdc_file.read_text() if spec.rackdc_file.exists() else None
    return conf, rackdc


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_the_single_node_default_is_as_it_was(tmp_path):
    origin, target = local.SandboxSettings(directory=tmp_path).nodes()
    for spec, port, storage in ((origin, 9042, 7000), (target, 9043, 7100)):
        conf, rackdc = rendered(spec, tmp_path)
        assert (spec.name, spec.directory) == (spec.cluster, tmp_path / spec.cluster)
        assert (conf["listen_address"], conf["rpc_address"]) == ("127.0.0.1", "127.0.0.1")
        assert (conf["native_transport_port"], conf["storage_port"]) == (port, storage)
        assert conf["seed_provider"][0]["parameters"][0]["seeds"] == f"127.0.0.1:{storage}"
        assert conf["endpoint_snitch"] == "SimpleSnitch" and rackdc is None
        assert conf["allocate_tokens_for_local_replication_factor"] == 1
        assert conf["cluster_name"] == f"zdm-sandbox-{spec.name}"


def test_a_three_node_cluster_shares_a_name_and_seeds_its_first_node(tmp_path):
    origin = multinode(tmp_path).clusters()["origin"]
    seen = []
    for i, spec in enumerate(origin):
        conf, rackdc = rendered(spec, tmp_path)
        address = f"127.0.0.{11 + i}"
        assert spec.name == f"origin-{i + 1}" and spec.directory == tmp_path / f"origin-{i + 1}"
        assert (conf["listen_address"], conf["rpc_address"]) == (address, address)
        assert (conf["native_transport_port"], conf["storage_port"]) == (9042, 7000)
        assert conf["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.0.11:7000"
        assert conf["cluster_name"] == "zdm-sandbox-origin"
        assert conf["endpoint_snitch"] == "GossipingPropertyFileSnitch"
        assert properties(rackdc) == {"dc": "dc1", "rack": "rack1"}
        assert (conf["num_tokens"], conf["allocate_tokens_for_local_replication_factor"]) == (4, 3)
        assert conf["auto_bootstrap"] is False
        assert conf["memtable_heap_space"] == "64MiB"
        seen.append(spec.directory)
    assert len(set(seen)) == 3


@pytest.mark.parametrize("nodes, dcs, expected_dcs, allocation_rf", [
    (4, 2, ["dc1", "dc1", "dc2", "dc2"], 2),
    (6, 2, ["dc1"] * 3 + ["dc2"] * 3, 3),
    (3, 3, ["dc1", "dc2", "dc3"], 1),
    (8, 2, ["dc1"] * 4 + ["dc2"] * 4, 3),
], ids=["4 in 2 DCs", "6 in 2 DCs", "3 in 3 DCs", "8 in 2 DCs"])
def test_datacenters_split_the_nodes_in_address_order(tmp_path, nodes, dcs, expected_dcs, allocation_rf):
    specs = multinode(tmp_path, origin_nodes=nodes, origin_dcs=dcs).clusters()["origin"]
    dcs_seen = []
    for spec in specs:
        conf, rackdc = rendered(spec, tmp_path)
        dcs_seen.append(properties(rackdc)["dc"])
        assert conf["allocate_tokens_for_local_replication_factor"] == allocation_rf
        assert conf["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.0.11:7000"
    assert dcs_seen == expected_dcs
    assert [s.address for s in specs] == [f"127.0.0.{11 + i}" for i in range(nodes)]
    assert layout.ClusterLayout("origin", nodes, dcs).datacenters() == sorted(set(expected_dcs))


def test_the_clusters_take_separate_blocks_and_the_same_ports(tmp_path):
    settings = multinode(tmp_path, target_nodes=4, target_dcs=2)
    settings.validate()
    clusters = settings.clusters()
    assert [s.address for s in clusters["target"]] == ["127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"]
    assert {s.cluster_name for s in clusters["target"]} == {"zdm-sandbox-target"}
    assert {(s.native_port, s.storage_port) for s in settings.nodes()} == {(9042, 7000)}
    moved = multinode(tmp_path, origin_address="127.0.0.111", target_address="127.0.0.121")
    assert [s.address for s in moved.nodes()] == ["127.0.0.111", "127.0.0.112", "127.0.0.113",
                                                  "127.0.0.121", "127.0.0.122"]
    assert {s.seed for s in moved.clusters()["target"]} == {"127.0.0.121"}


def test_a_single_node_cluster_beside_a_multi_node_one(tmp_path):
    """A 3-node origin with the usual one-node target: the target stays on 127.0.0.1:9043."""
    settings = local.SandboxSettings(directory=tmp_path, origin_nodes=3, origin_port=9042,
                                     origin_storage_port=7000)
    settings.validate()
    target = settings.clusters()["target"]
    assert [(s.name, s.endpoint, s.dc) for s in target] == [("target", "127.0.0.1:9043", None)]


@pytest.mark.parametrize("kw, message", [
    ({"origin_nodes": 4, "origin_dcs": 3}, "4 origin nodes do not split evenly into 3 datacenters"),
    ({"target_nodes": 1, "target_dcs": 2}, "1 target nodes do not split evenly into 2 datacenters"),
    ({"origin_nodes": 10}, r"10 origin nodes do not fit the cluster's block of 9 addresses \(127.0.0.11-127.0.0.19\)"),
    ({"origin_nodes": 0}, "--origin-nodes must be at least 1"),
    ({"target_dcs": 0}, "--target-dcs must be at least 1"),
    ({"origin_address": "10.0.0.5"}, "10.0.0.5 is not a loopback address"),
    ({"origin_address": "localhost"}, "'localhost' is not an IPv4 address"),
    ({"target_address": "127.0.0.15"}, "the origin block .* overlaps the target block"),
    ({"tls": True}, "a TLS sandbox is single-node only"),
    ({"engine": "docker"}, "multi-node clusters run only on the local engine"),
    ({"origin_storage_port": 9042}, "ports must all differ"),
], ids=["dcs do not divide", "more dcs than nodes", "block full", "no nodes", "no dcs",
        "not loopback", "not an address", "blocks overlap", "tls", "docker", "native = storage"])
def test_bad_shapes_are_refused_clearly(tmp_path, kw, message):
    with pytest.raises(SandboxError, match=message) as info:
        multinode(tmp_path, **kw).validate()
    assert str(info.value)


def test_the_block_size_is_the_limit_and_fits(tmp_path):
    multinode(tmp_path, origin_nodes=layout.BLOCK_SIZE, target_nodes=layout.BLOCK_SIZE).validate()


def test_the_single_node_pair_still_needs_its_own_ports(tmp_path):
    with pytest.raises(SandboxError, match="ports must all differ"):
        local.SandboxSettings(directory=tmp_path, target_port=9042).validate()


def test_nodes_are_found_by_address(tmp_path):
    settings = multinode(tmp_path)
    assert settings.node_at("127.0.0.12").name == "origin-2"
    assert settings.node_at("127.0.0.22:9042").name == "target-2"
    with pytest.raises(SandboxError, match="127.0.0.99 is no node of the sandbox") as info:
        settings.node_at("127.0.0.99")
    assert "127.0.0.11" in info.value.hint and "127.0.0.22" in info.value.hint
    single = local.SandboxSettings(directory=tmp_path)
    assert single.node_at("127.0.0.1:9043").name == "target"
    with pytest.raises(SandboxError, match="names 2 nodes") as info:
        single.node_at("127.0.0.1")
    assert "127.0.0.1:9042" in info.value.hint


def test_settings_round_trip_and_a_changed_shape_is_refused(tmp_path):
    settings = multinode(tmp_path, origin_nodes=4, origin_dcs=2, origin_address="127.0.0.111")
    local.save_settings(settings)
    assert local.saved_settings(tmp_path) == settings
    with pytest.raises(SandboxError, match="other settings") as info:
        local.check_compatible(multinode(tmp_path, origin_nodes=3, origin_address="127.0.0.111"))
    assert "4 origin nodes in 2 DCs" in str(info.value) and "--purge" in info.value.hint


def test_a_settings_file_from_before_multi_node_loads_as_single_node(tmp_path):
    (tmp_path / "sandbox.json").write_text(json.dumps({
        "directory": str(tmp_path), "origin_port": 9042, "target_port": 9043,
        "origin_storage_port": 7000, "target_storage_port": 7100, "heap_mb": 512, "auth": False,
        "origin_version": "5.0.8", "target_version": "5.0.8", "engine": "local", "tls": False,
        "tls_client_auth": []}))
    settings = local.saved_settings(tmp_path)
    assert [s.endpoint for s in settings.nodes()] == ["127.0.0.1:9042", "127.0.0.1:9043"]


def test_the_up_flags_make_a_multi_node_sandbox(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(local, "up", lambda settings, **kw: seen.setdefault("s", settings) and [])
    result = CliRunner().invoke(app, ["sandbox", "up", "--dir", str(tmp_path / "sb"),
                                      "--origin-nodes", "4", "--origin-dcs", "2", "--target-nodes", "2",
                                      "--config", str(tmp_path / "none.yaml")])
    assert result.exit_code == 0, result.output
    s = seen["s"]
    assert (s.origin_nodes, s.origin_dcs, s.target_nodes, s.target_dcs) == (4, 2, 2, 1)
    assert (s.origin_port, s.target_port, s.origin_storage_port, s.target_storage_port) == \
        (9042, 9042, 7000, 7000)


@pytest.mark.parametrize("args, message", [
    (["--origin-nodes", "4", "--origin-dcs", "3"], "do not split evenly"),
    (["--target-nodes", "12"], "do not fit the cluster's block"),
], ids=["dcs", "block"])
def test_bad_up_flags_exit_with_the_reason(tmp_path, args, message):
    result = CliRunner().invoke(app, ["sandbox", "up", "--dir", str(tmp_path / "sb"), *args,
                                      "--config", str(tmp_path / "none.yaml")])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "sb").exists(), "nothing is started or written for bad input"


def test_stop_and_start_node_refuse_what_is_no_running_node(tmp_path):
    local.save_settings(multinode(tmp_path))
    runner = CliRunner()
    result = runner.invoke(app, ["sandbox", "stop-node", "127.0.0.99", "--dir", str(tmp_path)])
    assert result.exit_code != 0 and "127.0.0.99 is no node of the sandbox" in result.output
    result = runner.invoke(app, ["sandbox", "stop-node", "127.0.0.12", "--dir", str(tmp_path)])
    assert result.exit_code != 0 and "origin-2 (127.0.0.12:9042) is not running" in result.output
    result = runner.invoke(app, ["sandbox", "start-node", "127.0.0.12", "--dir", str(tmp_path / "none")])
    assert result.exit_code != 0 and "no sandbox in" in result.output


@pytest.mark.parametrize("version", ["4.1.10", "5.0.8"])
def test_every_multi_node_yaml_key_is_one_that_release_reads(tmp_path, version):
    from tests.unit.test_sandbox_unit import config_fields

    fields = config_fields(version)
    if fields is None:
        pytest.skip(f"Cassandra {version}'s jars are not cached")
    spec = multinode(tmp_path, origin_version=version, origin_nodes=4, origin_dcs=2).nodes()[2]
    conf = yaml.safe_load(node.yaml_text(spec, tmp_path / "data"))
    assert sorted(k for k in conf if k not in fields) == []


def test_init_points_zdm_yaml_at_every_node(tmp_path):
    from zdm.config import load_config

    settings = multinode(tmp_path / "sb", origin_nodes=4, origin_dcs=2)
    text = local.zdm_yaml(settings, tmp_path)
    assert "origin 127.0.0.11-14:9042 (4 nodes, dc1, dc2)" in text
    path = tmp_path / "zdm.yaml"
    path.write_text(text)
    config = load_config(path, environ={})
    assert config.origin.contact_points == ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")
    assert config.target.contact_points == ("127.0.0.21", "127.0.0.22")
    assert (config.origin.port, config.target.port) == (9042, 9042)
    one_origin = local.SandboxSettings(directory=tmp_path / "sb", target_nodes=2, target_port=9042,
                                       target_storage_port=7000)
    path.write_text(local.zdm_yaml(one_origin, tmp_path))
    config = load_config(path, environ={})
    assert (config.origin.contact_points, config.origin.port) == (("127.0.0.1",), 9042)
    assert config.target.contact_points == ("127.0.0.21", "127.0.0.22")


def test_multi_node_schema_survives_a_kill(tmp_path):
    """-Dcassandra.unsafesystem keeps schema changes out of the commitlog: fine for a throwaway
    single node, wrong for a node a fault test kills and starts again."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "jamm-0.4.0.jar").write_text("")
    single = local.SandboxSettings(directory=tmp_path).nodes()[0]
    member = multinode(tmp_path).nodes()[1]
    assert "-Dcassandra.unsafesystem=true" in node.java_command(single, "/j/java", lib)
    assert "-Dcassandra.unsafesystem=true" not in node.java_command(member, "/j/java", lib)
    assert "-Dcassandra.skip_sync=true" in node.java_command(member, "/j/java", lib)
