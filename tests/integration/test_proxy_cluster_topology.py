"""Each cluster's real topology as the proxy's control connections read and follow it, and
Murmur3 tokens as the real sandbox computes them.

The sandbox's clusters are one node each (several vnodes): the snapshot must have that node
with the tokens, DC and rack the node itself reports, and every keyspace's replication; a
keyspace created or altered by another client must reach the snapshot (and the workers)
through the SCHEMA_CHANGE event within seconds, not at the periodic refresh.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from tests.support.harness import LoopThread, RunningProxy
from tests.support.net import free_port
from zdm.config import ClusterConfig, ProxyConfig
from zdm.cql.types import parse_type, serialize
from zdm.phases.model import Cluster
from zdm.proxy.control import TOPOLOGY_REFRESH_S, ControlPlane, ProxyError
from zdm.proxy.murmur3 import token
from zdm.proxy.routing_key import routing_key
from zdm.proxy.token_map import replicas


def _wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


@pytest.fixture(scope="module")
def proxy(zdm_config):
    config = dataclasses.replace(zdm_config, proxy=ProxyConfig(listen_port=free_port()))
    running = RunningProxy(config)
    yield running
    running.stop()


@pytest.mark.parametrize("cluster", list(Cluster), ids=lambda c: c.value)
def test_the_snapshot_has_the_node_its_tokens_and_every_keyspace(proxy, cluster, origin_session,
                                                                 target_session):
    session = origin_session if cluster is Cluster.ORIGIN else target_session
    local = session.execute("SELECT host_id, data_center, rack, tokens, rpc_address FROM system.local").one()
    keyspaces = {r.keyspace_name: dict(r.replication)
                 for r in session.execute("SELECT keyspace_name, replication FROM system_schema.keyspaces")}
    topology = proxy.server.control.topologies[cluster]
    port = proxy.server.config.origin.port if cluster is Cluster.ORIGIN else proxy.server.config.target.port
    [node] = topology.nodes
    assert (node.host_id, node.address, node.port, node.dc, node.rack, node.up) == (
        str(local.host_id), str(local.rpc_address), port, local.data_center, local.rack, True)
    assert node.tokens == tuple(sorted(int(t) for t in local.tokens)) and len(node.tokens) >= 1
    assert topology.local_dc == local.data_center and topology.control_host_id == node.host_id
    assert set(topology.keyspaces) == set(keyspaces)
    for name, options in keyspaces.items():
        replication = topology.keyspaces[name]
        assert options["class"].endswith(replication.strategy)
        if replication.strategy == "SimpleStrategy":
            assert replication.replication_factor == int(options["replication_factor"])
    assert topology.local_nodes() == (node,) and topology.pick(avoid=[node.host_id]) is None
    assert proxy.server.workers[0].plane.ctx.clusters[cluster] == topology  # the workers have it


def test_a_keyspace_made_by_another_client_reaches_the_snapshot_through_its_event(proxy, origin_session):
    control = proxy.server.control
    before = control.topologies[Cluster.ORIGIN]
    name = "topo_" + uuid.uuid4().hex[:10]
    origin_session.execute(f"CREATE KEYSPACE {name} WITH replication = "
                           "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}")
    try:
        started = time.monotonic()
        assert _wait_for(lambda: name in control.topologies[Cluster.ORIGIN].keyspaces), \
            "the new keyspace did not reach the snapshot"
        assert time.monotonic() - started < TOPOLOGY_REFRESH_S / 4  # the event, not the periodic read
        topology = control.topologies[Cluster.ORIGIN]
        assert topology.keyspaces[name].factors == (("datacenter1", 1),)
        assert before.keyspaces.get(name) is None  # a new snapshot; the old one is untouched
        assert _wait_for(lambda: name in proxy.server.workers[0].plane.ctx.clusters[Cluster.ORIGIN].keyspaces)
        # its partitions have their replica: the one node
        assert replicas(topology, name, token(b"\x00\x00\x00\x01")) == topology.nodes
        origin_session.execute(f"ALTER KEYSPACE {name} WITH replication = "
                               "{'class': 'SimpleStrategy', 'replication_factor': 2}")
        assert _wait_for(lambda: control.topologies[Cluster.ORIGIN].keyspaces[name].strategy == "SimpleStrategy")
    finally:
        origin_session.execute(f"DROP KEYSPACE IF EXISTS {name}")
    assert _wait_for(lambda: name not in control.topologies[Cluster.ORIGIN].keyspaces)


def test_a_local_dc_the_cluster_lacks_is_refused_at_start_naming_its_dcs(zdm_config):
    config = dataclasses.replace(zdm_config, target=dataclasses.replace(zdm_config.target, local_dc="dc-east"))
    control = ControlPlane(config)
    loop = LoopThread()
    try:
        with pytest.raises(ProxyError) as err:
            loop.call(control.probe())
        assert "target.local_dc is 'dc-east'" in err.value.message
        assert "datacenter1" in err.value.message and "local_dc" in err.value.hint
    finally:
        control.close()
        loop.stop()


def test_a_configured_local_dc_the_cluster_has_is_used(zdm_config):
    config = dataclasses.replace(zdm_config, origin=dataclasses.replace(zdm_config.origin, local_dc="datacenter1"),
                                 target=ClusterConfig(contact_points=("localhost",), port=zdm_config.target.port))
    control = ControlPlane(config)
    loop = LoopThread()
    try:
        loop.call(control.probe())
        assert control.topologies[Cluster.ORIGIN].local_dc == "datacenter1"
        # a host name matches no node's address: the DC of the node it reached
        assert control.topologies[Cluster.TARGET].local_dc == "datacenter1"
    finally:
        control.close()
        loop.stop()


# -- Murmur3 against the node's own token() ------------------------------------------------

KEYS = [
    ("int", [0, 1, -1, 2147483647, -2147483648, 42]),
    ("bigint", [0, -1, 9223372036854775807, -9223372036854775808]),
    ("text", ["a", "hello", "é日本語", "x" * 15, "y" * 16, "z" * 17, "ü" * 40]),
    ("uuid", [uuid.UUID(int=0), uuid.UUID("7ebe0f44-654d-4ea2-accf-416be9ed7d58"), uuid.UUID(int=(1 << 128) - 1)]),
    ("blob", [b"\x80", b"\xff" * 9, bytes(range(128, 160))]),
]


@pytest.fixture(scope="module")
def token_keyspace(origin_session):
    name = "tok_" + uuid.uuid4().hex[:10]
    origin_session.execute(f"CREATE KEYSPACE {name} WITH replication = "
                           "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    yield name
    origin_session.execute(f"DROP KEYSPACE IF EXISTS {name}")


@pytest.mark.parametrize("cql_type, values", KEYS, ids=[k[0] for k in KEYS])
def test_tokens_are_the_nodes(origin_session, token_keyspace, cql_type, values):
    origin_session.execute(f"CREATE TABLE {token_keyspace}.t_{cql_type} (k {cql_type} PRIMARY KEY)")
    for value in values:
        origin_session.execute(f"INSERT INTO {token_keyspace}.t_{cql_type} (k) VALUES (%s)", (value,))
    rows = origin_session.execute(f"SELECT k, token(k) AS t FROM {token_keyspace}.t_{cql_type}")
    seen = {row.k: row.t for row in rows}
    assert len(seen) == len(values)
    for value, expected in seen.items():
        assert token(serialize(parse_type(cql_type), value)) == expected, value


def test_composite_partition_keys_are_the_nodes(origin_session, token_keyspace):
    origin_session.execute(f"CREATE TABLE {token_keyspace}.comp (a int, b text, c uuid, d bigint, v int, "
                           "PRIMARY KEY ((a, b, c), d))")
    keys = [(1, "x", uuid.UUID(int=5)), (-7, "", uuid.UUID(int=0)), (0, "é" * 40, uuid.uuid4()),
            (2147483647, "y" * 300, uuid.uuid4())]
    for a, b, c in keys:
        origin_session.execute(f"INSERT INTO {token_keyspace}.comp (a, b, c, d, v) VALUES (%s, %s, %s, 1, 1)",
                               (a, b, c))
    types = [parse_type("int"), parse_type("text"), parse_type("uuid")]
    for row in origin_session.execute(f"SELECT a, b, c, token(a, b, c) AS t FROM {token_keyspace}.comp"):
        # the markers' order differs from the key's: pk_indexes say which is which
        values = [serialize(types[2], row.c), serialize(types[0], row.a), serialize(types[1], row.b)]
        assert token(routing_key([1, 2, 0], values)) == row.t, (row.a, row.b, row.c)


# -- the partition of a real EXECUTE and BATCH ------------------------------------------------

def test_the_partition_of_an_execute_and_a_batch_is_the_nodes(zdm_config, origin_session, token_keyspace):
    from tests.support.rawcql import RawClient
    from zdm.cql import messages as m
    from zdm.cql.constants import BatchType, Opcode
    from tests.support.primitives import write_short, write_short_bytes, write_value
    from zdm.proxy.routing_key import Partition, batch_body_partition, execute_partition, key_markers

    origin_session.execute(f"CREATE TABLE {token_keyspace}.ev (a int, b text, c int, v text, "
                           "PRIMARY KEY ((a, b), c))")
    insert = f"INSERT INTO {token_keyspace}.ev (v, b, c, a) VALUES (?, ?, ?, ?)"
    with RawClient(zdm_config.origin.port, version=4) as client:
        client.startup()
        prepared = client.prepare(insert)
        meta = m.decode_prepared_metadata(prepared.body, 4, flags=prepared.flags)
        markers = key_markers(meta)
        assert markers is not None and markers.pk_indexes == (3, 1) and markers.keyspace == token_keyspace
        pid = m.decode_prepared_result(prepared.body, 4, flags=prepared.flags).prepared_id

        def values(a: int, b: str, c: int) -> list:
            return [serialize(parse_type("text"), "v"), serialize(parse_type("text"), b),
                    serialize(parse_type("int"), c), serialize(parse_type("int"), a)]

        body = m.encode_execute(pid, values(7, "seven", 1), 4)
        assert client.request(Opcode.EXECUTE, body).opcode == Opcode.RESULT
        expected = origin_session.execute(f"SELECT token(a, b) AS t FROM {token_keyspace}.ev "
                                          "WHERE a = 7 AND b = 'seven'").one().t
        assert execute_partition(body, 4, markers) == Partition(token_keyspace, expected)

        def batch(*rows) -> bytes:
            out = bytes([BatchType.LOGGED]) + write_short(len(rows))
            for row in rows:
                out += b"\x01" + write_short_bytes(pid) + write_short(4) + b"".join(write_value(v) for v in values(*row))
            return out + write_short(1) + b"\x00"  # consistency ONE, no flags

        one = batch((7, "seven", 2), (7, "seven", 3))
        assert client.request(Opcode.BATCH, one).opcode == Opcode.RESULT
        known = {pid: markers}.get
        assert batch_body_partition(one, 4, known) == Partition(token_keyspace, expected)
        assert batch_body_partition(batch((7, "seven", 2), (8, "eight", 3)), 4, known) is None
        assert batch_body_partition(one, 4, {}.get) is None  # a statement the proxy does not know
    with RawClient(zdm_config.origin.port, version=3) as client:  # v3 results carry no indexes
        client.startup()
        prepared = client.prepare(insert)
        assert key_markers(m.decode_prepared_metadata(prepared.body, 3, flags=prepared.flags)) is None
