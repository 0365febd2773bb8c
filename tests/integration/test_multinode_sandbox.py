"""The multi-node sandbox is real clusters: every node on its own address knows the others with
their datacenters and its own tokens, a killed node stops answering while an RF 3 keyspace
still takes QUORUM writes, and a node started again rejoins with its data."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster
from cassandra.policies import WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement
from typer.testing import CliRunner

from zdm.cli.main import app
from zdm.sandbox import node


def _session(addresses: list[str], port: int = 9042, *, only: list[str] | None = None):
    """A driver session over the given nodes (``only``: coordinate through those alone)."""
    policy = WhiteListRoundRobinPolicy(only or addresses)
    cluster = Cluster(addresses, port=port, load_balancing_policy=policy, connect_timeout=10,
                      protocol_version=5)
    return cluster, cluster.connect()


@pytest.mark.parametrize("cluster", ["origin", "target"])
def test_every_node_lists_the_others_with_their_datacenter(multinode, cluster):
    specs = multinode.nodes(cluster)
    assert len(specs) == {"origin": 3, "target": 3}[cluster]
    everyone = {s.address: "dc1" for s in specs}
    tokens = []
    for spec in specs:
        c, s = _session([spec.address], only=[spec.address])
        try:
            local = s.execute("SELECT cluster_name, data_center, broadcast_address, "
                              "rpc_address, rpc_port, tokens FROM system.local").one()
            peers = {str(r.peer): r.data_center for r in s.execute(
                "SELECT peer, data_center, tokens FROM system.peers") if r.tokens}
            # where a driver (or the proxy) connects to each peer
            natives = {(str(r.native_address), r.native_port) for r in s.execute(
                "SELECT native_address, native_port FROM system.peers_v2")}
        finally:
            c.shutdown()
        assert local.cluster_name == f"zdm-sandbox-{cluster}"
        assert (str(local.broadcast_address), str(local.rpc_address), local.rpc_port) == \
            (spec.address, spec.address, 9042)
        assert local.data_center == "dc1"
        assert peers == {a: dc for a, dc in everyone.items() if a != spec.address}, spec.name
        assert natives == {(a, 9042) for a in everyone if a != spec.address}
        assert len(local.tokens) == 4  # num_tokens
        tokens += local.tokens
    assert len(set(tokens)) == len(tokens), "two nodes took the same tokens"


def test_the_single_node_pair_runs_beside_it(multinode, sandbox):
    """Same native port, other addresses: the default sandbox on 127.0.0.1 stays a cluster of
    its own, and the multi-node origin never hears of it."""
    c, s = _session(["127.0.0.1"], sandbox.origin_port, only=["127.0.0.1"])
    try:
        single = s.execute("SELECT host_id FROM system.local").one().host_id
        assert not list(s.execute("SELECT peer FROM system.peers"))
    finally:
        c.shutdown()
    first = multinode.addresses("origin")[0]
    c, s = _session([first], only=[first])
    try:
        ids = {r.host_id for r in s.execute("SELECT host_id FROM system.peers")}
        ids.add(s.execute("SELECT host_id FROM system.local").one().host_id)
    finally:
        c.shutdown()
    assert single not in ids and len(ids) == 3


def test_status_lists_every_node(multinode):
    result = CliRunner().invoke(app, ["sandbox", "status", "--json", "--dir",
                                      str(multinode.settings.directory)])
    assert result.exit_code == 0, result.output
    rows = [(n["cluster"], n["name"], n["address"], n["port"], n["dc"], n["up"])
            for n in json.loads(result.output)]
    assert rows == [("origin", "origin-1", "127.0.0.11", 9042, "dc1", True),
                    ("origin", "origin-2", "127.0.0.12", 9042, "dc1", True),
                    ("origin", "origin-3", "127.0.0.13", 9042, "dc1", True),
                    ("target", "target-1", "127.0.0.21", 9042, "dc1", True),
                    ("target", "target-2", "127.0.0.22", 9042, "dc1", True),
                    ("target", "target-3", "127.0.0.23", 9042, "dc1", True)]
    assert all(n["rss_bytes"] > 100 * 2**20 and n["pid"] for n in json.loads(result.output))


def test_a_killed_node_leaves_quorum_writes_working_and_rejoins(multinode):
    origin = multinode.addresses("origin")
    victim = origin[-1]
    directory = str(multinode.settings.directory)
    ks = "mn_" + uuid.uuid4().hex[:10]
    cluster, s = _session(origin)
    try:
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                  "{'class': 'NetworkTopologyStrategy', 'dc1': 3}")
        s.execute(f"CREATE TABLE {ks}.kv (k int PRIMARY KEY, v text)")
        write = s.prepare(f"INSERT INTO {ks}.kv (k, v) VALUES (?, ?)")
        write.consistency_level = ConsistencyLevel.QUORUM
        for k in range(20):
            s.execute(write, (k, "before"))

        result = CliRunner().invoke(app, ["sandbox", "stop-node", victim, "--dir", directory])
        assert result.exit_code == 0, result.output
        assert "SIGKILL" in result.output
        assert not node.port_open(9042, victim), "a killed node must not answer"
        states = {n["address"]: n["up"] for n in json.loads(CliRunner().invoke(
            app, ["sandbox", "status", "--json", "--dir", directory]).output)}
        assert states[victim] is False and all(states[a] for a in origin if a != victim)

        # two of three replicas are up: every QUORUM write succeeds at once (a coordinator
        # that has not yet seen the death still gets two acknowledgements of three)
        for k in range(20, 60):
            s.execute(write, (k, "during"), timeout=20)
        # a QUORUM read asks only two replicas, which may include the dead one until the
        # coordinator's failure detector convicts it (seconds): then it succeeds
        read = SimpleStatement(f"SELECT count(*) FROM {ks}.kv", consistency_level=ConsistencyLevel.QUORUM)
        assert _retrying(lambda: s.execute(read, timeout=20).one()[0]) == 60
        everyone = SimpleStatement(f"SELECT v FROM {ks}.kv WHERE k = 1",
                                   consistency_level=ConsistencyLevel.ALL)
        with pytest.raises(Exception, match="Unavailable|Timeout|NoHostAvailable|timed out"):
            s.execute(everyone, timeout=20)

        result = CliRunner().invoke(app, ["sandbox", "start-node", victim, "--dir", directory])
        assert result.exit_code == 0, result.output
        assert node.port_open(9042, victim)
        # start-node returned once every node heard from the new incarnation
        for spec in multinode.nodes("origin"):
            view = node.ring_view(spec)
            assert set(view.peers) == set(origin) - {spec.address}
            assert all(view.gossip[a][1] for a in origin), f"{spec.name}: {view.gossip}"
        # it rejoined with its data: alone it still holds a row written before the kill
        c2, alone = _session([victim], only=[victim])
        try:
            one = SimpleStatement(f"SELECT v FROM {ks}.kv WHERE k = 1",
                                  consistency_level=ConsistencyLevel.ONE)
            assert alone.execute(one).one().v == "before"
        finally:
            c2.shutdown()
        # and it serves as a replica again: a read at ALL needs all three
        assert _retrying(lambda: s.execute(everyone, timeout=20).one().v, seconds=90) == "before"
    finally:
        multinode.restore()
        try:
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=60)
        finally:
            cluster.shutdown()


def _retrying(fn, seconds: float = 60.0):
    """``fn()``, again on failure until ``seconds`` pass: the driver and the coordinators learn
    a node's death and return from gossip, not at once."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_two_datacenters(multidc):
    """Each origin node knows the others' DCs; an NTS keyspace with two replicas in each DC
    takes EACH_QUORUM writes; dc2 down, LOCAL_QUORUM in dc1 goes on."""
    origin = multidc.addresses("origin")
    dcs = {s.address: s.dc for s in multidc.nodes("origin")}
    assert list(dcs.values()) == ["dc1", "dc1", "dc2", "dc2"]
    for spec in multidc.nodes("origin"):
        view = node.ring_view(spec)
        assert view.peers == {a: dc for a, dc in dcs.items() if a != spec.address}
    for spec in multidc.nodes("target"):
        assert set(node.ring_view(spec).peers.values()) == {"dc1"}
    ks = "dc_" + uuid.uuid4().hex[:10]
    cluster, s = _session(origin[:2])
    try:
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                  "{'class': 'NetworkTopologyStrategy', 'dc1': 2, 'dc2': 2}")
        s.execute(f"CREATE TABLE {ks}.kv (k int PRIMARY KEY, v int)")
        each = SimpleStatement(f"INSERT INTO {ks}.kv (k, v) VALUES (1, 1)",
                               consistency_level=ConsistencyLevel.EACH_QUORUM)
        s.execute(each, timeout=20)
        for address in origin[2:]:
            multidc.stop_node(address)
        local_quorum = SimpleStatement(f"INSERT INTO {ks}.kv (k, v) VALUES (2, 2)",
                                       consistency_level=ConsistencyLevel.LOCAL_QUORUM)
        s.execute(local_quorum, timeout=20)
        with pytest.raises(Exception, match="Unavailable|Timeout|timed out"):
            s.execute(each, timeout=20)
    finally:
        multidc.restore()
        try:
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=60)
        finally:
            cluster.shutdown()
