"""The control connection follows a cluster's topology events: what a single real node will not
do on demand (another node going down, joining), played by a fake 3.11 node.

The real single-node sandbox checks the same owner end to end
(tests/integration/test_proxy_cluster_topology.py); here a fake node answers ``system.local``,
``system.peers`` (it has no ``peers_v2``, as before 4.0) and ``system_schema.keyspaces`` from
rows the test changes, and pushes the EVENTs a real node would.
"""

from __future__ import annotations

import ipaddress
import time
import uuid

import pytest

from tests.support.fakecql import FakeNode
from tests.support.harness import LoopThread
from zdm.config import ClusterConfig, Config
from zdm.cql import messages as m
from zdm.cql.constants import ErrorCode, Opcode
from zdm.cql.errors import unsupported_version_message
from tests.support.primitives import write_inet, write_string
from zdm.phases.model import Cluster
from zdm.proxy.control import ControlPlane, ProxyError

HOSTS = [str(uuid.UUID(int=i + 1)) for i in range(4)]
TYPES = {"host_id": "uuid", "data_center": "text", "rack": "text", "tokens": "set<text>",
         "rpc_address": "inet", "peer": "inet", "cluster_name": "text", "release_version": "text",
         "keyspace_name": "text", "replication": "map<text, text>"}


class FakeCluster:
    """One fake node standing for a cluster: its system tables are ``local``, ``peers`` and
    ``keyspaces``, which the test may change."""

    def __init__(self, dc: str = "dc1") -> None:
        self.local = {"cluster_name": "fake", "release_version": "3.11.19", "host_id": uuid.UUID(HOSTS[0]),
                      "data_center": dc, "rack": "r1", "rpc_address": ipaddress.ip_address("127.0.0.1"),
                      "tokens": {"-100", "100"}}
        self.peers = [{"peer": ipaddress.ip_address("127.0.0.2"), "rpc_address": ipaddress.ip_address("127.0.0.2"),
                       "host_id": uuid.UUID(HOSTS[1]), "data_center": dc, "rack": "r2", "tokens": {"0"}}]
        self.keyspaces = {"ks": {"class": "org.apache.cassandra.locator.SimpleStrategy",
                                 "replication_factor": "2"}}
        self.node = FakeNode(self._script)

    @staticmethod
    def _rows(table: str, rows: list[dict]) -> bytes:
        names = list(rows[0]) if rows else ["host_id"]
        return m.encode_rows([("system", table, n, m.parse_type(TYPES[n])) for n in names],
                             [[r[n] for n in names] for r in rows])

    def _script(self, frame):
        if frame.version > 4:
            return [(Opcode.ERROR, m.encode_error(ErrorCode.PROTOCOL_ERROR,
                                                  unsupported_version_message(frame.version, (3, 4))))]
        if frame.opcode == Opcode.OPTIONS:
            return [(Opcode.SUPPORTED, m.encode_supported({"CQL_VERSION": ["3.4.4"]}))]
        if frame.opcode in (Opcode.STARTUP, Opcode.REGISTER):
            return [(Opcode.READY, b"")]
        if frame.opcode != Opcode.QUERY:
            return [(Opcode.ERROR, m.encode_error(ErrorCode.SERVER_ERROR, "not scripted"))]
        query = m.decode_query(frame.body, frame.version).query
        if "system.local" in query:
            return [(Opcode.RESULT, self._rows("local", [self.local]))]
        if "system.peers_v2" in query:
            return [(Opcode.ERROR, m.encode_error(ErrorCode.INVALID, "table peers_v2 does not exist"))]
        if "system.peers" in query:
            return [(Opcode.RESULT, self._rows("peers", self.peers))]
        if "system_schema.keyspaces" in query:
            return [(Opcode.RESULT, self._rows("keyspaces", [{"keyspace_name": k, "replication": v}
                                                            for k, v in self.keyspaces.items()]))]
        return [(Opcode.RESULT, m.encode_rows([], []))]

    def event(self, event_type: str, change: str, address: str, port: int = 9042) -> None:
        self.node.push(Opcode.EVENT, write_string(event_type) + write_string(change) + write_inet(address, port))

    def keyspace_event(self, change: str, keyspace: str) -> None:
        self.node.push(Opcode.EVENT, write_string("SCHEMA_CHANGE") + write_string(change) +
                       write_string("KEYSPACE") + write_string(keyspace))


@pytest.fixture()
def clusters():
    fakes = {Cluster.ORIGIN: FakeCluster(), Cluster.TARGET: FakeCluster("east")}
    yield fakes
    for fake in fakes.values():
        fake.node.stop()


def _plane(fakes, **target) -> tuple[ControlPlane, LoopThread, list]:
    config = Config(origin=ClusterConfig(port=fakes[Cluster.ORIGIN].node.port),
                    target=ClusterConfig(port=fakes[Cluster.TARGET].node.port, **target))
    control = ControlPlane(config)
    published = []
    control.on_topology = lambda cluster, topology: published.append((cluster, topology))
    return control, LoopThread(), published


def _eventually(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


@pytest.fixture()
def plane(clusters):
    control, loop, published = _plane(clusters)
    loop.call(control.probe())
    assert [c for c, _ in published] == [Cluster.ORIGIN, Cluster.TARGET]  # the first ones
    published.clear()
    yield control, loop, published
    control.close()
    loop.stop()


def test_before_4_0_the_nodes_come_from_system_peers(plane, clusters):
    control, _, _ = plane
    origin, port = control.topologies[Cluster.ORIGIN], clusters[Cluster.ORIGIN].node.port
    # no port columns before 4.0: every node has the configured port
    assert [(n.address, n.port, n.dc, n.rack, n.tokens) for n in origin.nodes] == [
        ("127.0.0.1", port, "dc1", "r1", (-100, 100)), ("127.0.0.2", port, "dc1", "r2", (0,))]
    assert origin.local_dc == "dc1" and control.topologies[Cluster.TARGET].local_dc == "east"
    queries = [m.decode_query(f.body, f.version).query for f in clusters[Cluster.ORIGIN].node.received
               if f.opcode == Opcode.QUERY]
    assert any("system.peers_v2" in q for q in queries) and any(q.endswith("system.peers") for q in queries)
    registers = [m.decode_register(f.body) for f in clusters[Cluster.TARGET].node.received
                 if f.opcode == Opcode.REGISTER]
    assert registers == [["TOPOLOGY_CHANGE", "STATUS_CHANGE", "SCHEMA_CHANGE"]]


def test_a_status_change_marks_the_node_and_publishes_a_new_snapshot(plane, clusters):
    control, _, published = plane
    before = control.topologies[Cluster.TARGET]
    clusters[Cluster.TARGET].event("STATUS_CHANGE", "DOWN", "127.0.0.2")
    assert _eventually(lambda: published)
    cluster, down = published[-1]
    assert cluster is Cluster.TARGET and [n.up for n in down.nodes] == [True, False]
    assert [n.address for n in down.local_nodes()] == ["127.0.0.1"]
    assert [n.up for n in before.nodes] == [True, True]  # the old snapshot is untouched
    assert control.topologies[Cluster.ORIGIN].node_at("127.0.0.2").up  # the other cluster's own
    clusters[Cluster.TARGET].event("STATUS_CHANGE", "UP", "127.0.0.2")
    assert _eventually(lambda: control.topologies[Cluster.TARGET].node_at("127.0.0.2").up)


def test_a_new_node_is_read_on_its_topology_event_and_keeps_known_statuses(plane, clusters):
    control, _, published = plane
    fake = clusters[Cluster.ORIGIN]
    fake.event("STATUS_CHANGE", "DOWN", "127.0.0.2")
    assert _eventually(lambda: not control.topologies[Cluster.ORIGIN].node_at("127.0.0.2").up)
    fake.peers.append({"peer": ipaddress.ip_address("127.0.0.3"), "rpc_address": ipaddress.ip_address("127.0.0.3"),
                       "host_id": uuid.UUID(HOSTS[2]), "data_center": "dc1", "rack": "r1", "tokens": {"50"}})
    fake.event("TOPOLOGY_CHANGE", "NEW_NODE", "127.0.0.3")
    assert _eventually(lambda: control.topologies[Cluster.ORIGIN].node_at("127.0.0.3") is not None)
    topology = control.topologies[Cluster.ORIGIN]
    assert [(n.address, n.up) for n in topology.nodes] == [("127.0.0.1", True), ("127.0.0.2", False),
                                                          ("127.0.0.3", True)]
    assert published[-1] == (Cluster.ORIGIN, topology)


def test_a_keyspace_event_reads_the_replication_again(plane, clusters):
    control, _, _ = plane
    fake = clusters[Cluster.TARGET]
    fake.keyspaces["new_ks"] = {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "east": "1"}
    fake.keyspace_event("CREATED", "new_ks")
    assert _eventually(lambda: "new_ks" in control.topologies[Cluster.TARGET].keyspaces)
    assert control.topologies[Cluster.TARGET].keyspaces["new_ks"].factors == (("east", 1),)


def test_the_periodic_read_catches_what_no_event_said(plane, clusters):
    control, loop, _ = plane
    clusters[Cluster.ORIGIN].peers.clear()  # removed, and the event lost
    due = control._topology_due[Cluster.ORIGIN]

    async def tick():
        control.tick(now=due + 1)
    loop.call(tick())
    assert _eventually(lambda: len(control.topologies[Cluster.ORIGIN].nodes) == 1)


def test_a_local_dc_the_cluster_lacks_is_refused_at_start(clusters):
    control, loop, _ = _plane(clusters, local_dc="dc1")
    try:
        with pytest.raises(ProxyError) as err:
            loop.call(control.probe())
        assert err.value.message == ("target.local_dc is 'dc1', but target has no such datacenter; "
                                     "its datacenters: east")
    finally:
        control.close()
        loop.stop()


def test_a_joining_node_without_tokens_yet_is_read_again_a_little_later(plane, clusters):
    control, loop, _ = plane
    fake = clusters[Cluster.ORIGIN]
    joining = {"peer": ipaddress.ip_address("127.0.0.4"), "rpc_address": ipaddress.ip_address("127.0.0.4"),
               "host_id": uuid.UUID(HOSTS[3]), "data_center": "dc1", "rack": "r1", "tokens": set()}
    fake.peers.append(joining)

    def peers_reads() -> int:
        return sum(1 for f in list(fake.node.received) if f.opcode == Opcode.QUERY and
                   m.decode_query(f.body, f.version).query.endswith("system.peers"))
    before = peers_reads()
    fake.event("TOPOLOGY_CHANGE", "NEW_NODE", "127.0.0.4")
    assert _eventually(lambda: peers_reads() > before and control._topology_tasks[Cluster.ORIGIN].done())
    assert control.topologies[Cluster.ORIGIN].node_at("127.0.0.4") is None  # no tokens: not yet
    joining["tokens"] = {"77"}
    settle = control._topology_settle[Cluster.ORIGIN]

    async def tick():
        control.tick(now=settle + 0.1)
    loop.call(tick())
    assert _eventually(lambda: control.topologies[Cluster.ORIGIN].node_at("127.0.0.4") is not None)
    assert control.topologies[Cluster.ORIGIN].node_at("127.0.0.4").tokens == (77,)
