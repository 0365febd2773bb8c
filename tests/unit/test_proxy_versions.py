"""Older origins at the protocol level: the proxy's own connections negotiate the newest
version a cluster speaks, clients are told to downgrade to what both speak, and the virtual
system tables look like origin's release.  Fake nodes play a v4-only cluster (as 3.x is)."""

from __future__ import annotations

import pytest

from tests.support.fakecql import FakeNode
from tests.support.harness import RunningProxy
from tests.support.net import driver_cluster, free_port
from tests.support.rawcql import RawClient
from zdm.config import ClusterConfig, Config, ProxyConfig
from zdm.cql import messages as m
from zdm.cql.constants import ErrorCode, Opcode
from zdm.cql.errors import unsupported_version_message
from zdm.proxy.topology import Instance, VirtualTopology


def node(max_version: int, release: str):
    """A node speaking protocol v3 up to ``max_version``, of ``release``."""
    def script(frame):
        if frame.version > max_version:
            return [(Opcode.ERROR, m.encode_error(ErrorCode.PROTOCOL_ERROR, unsupported_version_message(
                frame.version, tuple(range(3, max_version + 1)))))]
        if frame.opcode == Opcode.STARTUP:
            return [(Opcode.READY, b"")]
        if frame.opcode == Opcode.OPTIONS:
            return [(Opcode.SUPPORTED, m.encode_supported({"CQL_VERSION": ["3.4.4"]}))]
        if frame.opcode == Opcode.QUERY and "system.local" in m.decode_query(frame.body, frame.version).query:
            return [(Opcode.RESULT, m.encode_rows(
                [("system", "local", "cluster_name", m.parse_type("text")),
                 ("system", "local", "release_version", m.parse_type("text"))],
                [["old-cluster", release]]))]
        if frame.opcode == Opcode.QUERY:
            return [(Opcode.RESULT, m.encode_rows([], []))]
        if frame.opcode == Opcode.REGISTER:
            return [(Opcode.READY, b"")]
        return [(Opcode.ERROR, m.encode_error(ErrorCode.SERVER_ERROR, "not scripted"))]
    return FakeNode(script)


@pytest.fixture()
def old_origin_proxy():
    origin, target = node(4, "3.11.19"), node(5, "5.0.8")
    proxy = RunningProxy(Config(origin=ClusterConfig(port=origin.port), target=ClusterConfig(port=target.port),
                                proxy=ProxyConfig(listen_port=free_port())))
    yield proxy, origin, target
    proxy.stop()
    origin.stop()
    target.stop()


def test_control_connections_negotiate_each_clusters_newest_version(old_origin_proxy):
    proxy, origin, target = old_origin_proxy
    from zdm.phases.model import Cluster

    assert proxy.server.control.versions == {Cluster.ORIGIN: 4, Cluster.TARGET: 5}
    # asks OPTIONS (the cluster's compression) at v5 first, as a driver does, then one lower
    options = [f.version for f in origin.received if f.opcode == Opcode.OPTIONS]
    assert options[:2] == [5, 4]
    startups = [f.version for f in origin.received if f.opcode == Opcode.STARTUP]
    assert startups[:1] == [4]  # the STARTUP goes at the version the node speaks
    assert proxy.server.control.compression == {Cluster.ORIGIN: (), Cluster.TARGET: ()}


def test_a_client_newer_than_one_cluster_is_told_to_downgrade(old_origin_proxy):
    proxy, _, _ = old_origin_proxy
    with RawClient(proxy.port, version=5) as client:
        answer = client.request(Opcode.OPTIONS, b"")
        info = m.decode_error(answer.body)
        assert info.code == ErrorCode.PROTOCOL_ERROR
        assert "unsupported protocol version (5)" in info.message.lower()
        assert "supported versions are (3/v3, 4/v4)" in info.message
    with RawClient(proxy.port, version=4) as client:
        supported = m.decode_supported(client.request(Opcode.OPTIONS, b"").body)
        assert supported["PROTOCOL_VERSIONS"] == ["3/v3", "4/v4"]


def test_the_driver_downgrades_and_sees_an_old_release_topology(old_origin_proxy):
    proxy, _, _ = old_origin_proxy
    cluster = driver_cluster(proxy.port, schema_metadata_enabled=False)  # negotiates by itself
    session = cluster.connect()
    try:
        assert cluster.protocol_version == 4
        local = session.execute("SELECT * FROM system.local").one()
        assert local.release_version == "3.11.19" and not hasattr(local, "rpc_port")
        with pytest.raises(Exception, match="unconfigured table peers_v2"):
            session.execute("SELECT * FROM system.peers_v2")
    finally:
        cluster.shutdown()


@pytest.mark.parametrize("release, has_ports, has_peers_v2", [
    ("3.11.19", False, False), ("4.0.19", True, True), ("5.0.8", True, True)],
    ids=["3.11", "4.0", "5.0"])
def test_virtual_tables_follow_origins_release(release, has_ports, has_peers_v2):
    topology = VirtualTopology([Instance("127.0.0.1", 14002)], {"release_version": release})
    columns = [c.name for c in m.decode_rows(topology.answer("local", "SELECT * FROM system.local",
                                                             Instance("127.0.0.1", 14002)), 4).columns]
    assert ("rpc_port" in columns) is has_ports and ("thrift_version" in columns) is not has_ports
    assert topology.has("peers_v2") is has_peers_v2 and topology.has("peers")
