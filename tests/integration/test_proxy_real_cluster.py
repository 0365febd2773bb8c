"""The proxy on real multi-node clusters (the `multinode` sandbox: a 3-node origin, a 3-node
target): one contact point is enough to reach every node, and the death of that very node
(SIGKILL, two replicas of three still up) costs the application no more than the requests it
had in flight at that moment; every write it saw acknowledged is on both clusters."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

from tests.support.harness import RunningProxy
from tests.support.multinode import create_keyspace, direct, drop_keyspaces
from tests.support.net import driver_cluster, free_port
from zdm.config import ProxyConfig
from zdm.phases.model import Cluster

WRITERS = 4


@pytest.fixture()
def proxied(multinode, tmp_path):
    """A proxy given ONE contact point per cluster (origin's first node, target's first), and a
    keyspace at RF 3 on origin and RF 2 on target."""
    config = dataclasses.replace(
        _base(tmp_path), origin=multinode.cluster_config("origin", contact_points=1),
        target=multinode.cluster_config("target", contact_points=1),
        proxy=ProxyConfig(listen_port=free_port(), request_timeout_s=10))
    ks = create_keyspace(multinode, "rc_", {"origin": 3, "target": 2})
    proxy = RunningProxy(config)
    yield proxy, ks
    proxy.stop()
    multinode.restore()
    drop_keyspaces(multinode, ks)


def _base(tmp_path):
    from zdm.config import Config
    return Config(state_dir=tmp_path / "state")


def _origin_nodes_in_use(proxy) -> set[str]:
    plane = proxy.server.workers[0].plane
    return {s.backends[Cluster.ORIGIN].endpoint.host for s in plane.sessions if Cluster.ORIGIN in s.backends}


def test_one_contact_point_reaches_every_node(proxied, multinode):
    proxy, ks = proxied
    clients = [driver_cluster(proxy.port, 5) for _ in range(6)]
    for c in clients:
        c.connect().execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, 'x')")
    try:
        assert _origin_nodes_in_use(proxy) == set(multinode.addresses("origin"))
    finally:
        for c in clients:
            c.shutdown()


def test_the_contact_points_death_costs_only_the_requests_in_flight(proxied, multinode):
    proxy, ks = proxied
    client = driver_cluster(proxy.port, 5)
    session = client.connect()
    insert = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
    insert.consistency_level = ConsistencyLevel.QUORUM
    acknowledged: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def write(first: int) -> None:
        k = first
        while not stop.is_set() and k < first + 1_000_000:
            try:
                session.execute(insert, (k, f"v{k}"))
                acknowledged.append(k)
            except Exception as exc:  # noqa: BLE001 - what the application saw is the result
                errors.append(f"{type(exc).__name__}: {exc}")
            k += WRITERS

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(WRITERS)]
    for t in threads:
        t.start()
    _wait(lambda: len(acknowledged) > 200, "writes to flow")
    contact = multinode.addresses("origin")[0]
    multinode.stop_node(contact)  # SIGKILL: two replicas of three are still up
    killed_at = len(acknowledged)
    _wait(lambda: len(acknowledged) > killed_at + 500, "writes to go on after the node died")
    # a new client connects right after the failure, and writes
    other = driver_cluster(proxy.port, 5)
    other.connect().execute(SimpleStatement(f"INSERT INTO {ks}.t (k, v) VALUES (-1, 'new client')",
                                            consistency_level=ConsistencyLevel.QUORUM))
    other.shutdown()
    assert contact not in _origin_nodes_in_use(proxy)  # every client connection moved off it
    stop.set()
    for t in threads:
        t.join(timeout=60)
    client.shutdown()
    print(f"{len(acknowledged)} writes acknowledged, {len(errors)} failed: {errors[:WRITERS]}")
    # at most the requests in flight when the node died failed (one per writer thread)
    assert len(errors) <= WRITERS, errors[:10]
    # the node back first: a full scan at QUORUM right after a kill waits on the dead replica
    # until every coordinator has marked it down, and that is Cassandra's business, not the proxy's
    multinode.start_node(contact)
    for cluster in ("origin", "target"):
        with direct(multinode, cluster) as s:
            scan = SimpleStatement(f"SELECT k, v FROM {ks}.t", consistency_level=ConsistencyLevel.QUORUM)
            rows = {r.k: r.v for r in s.execute(scan, timeout=120)}
            missing = [k for k in acknowledged if rows.get(k) != f"v{k}"]
            assert not missing, f"{cluster} lacks {len(missing)} acknowledged writes, e.g. {missing[:5]}"
            assert rows.get(-1) == "new client"


def _wait(condition, what: str, timeout: float = 120.0) -> None:
    """Wait for ``condition`` (a bound, not a measure)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
