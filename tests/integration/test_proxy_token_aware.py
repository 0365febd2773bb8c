"""Token-aware forwarding on real clusters, proven by the nodes' own counters.

On the `multinode` sandbox (a 3-node origin, a 2-node target), with RF 1 on both, each
partition has exactly one replica, so "coordinated by a replica" is exact: an EXECUTE of a
partition's key counts in that very node's ``system_views.coordinator_{write,read}_latency``
or not at all.  The test sends, for each node in turn, requests for keys only it owns (from
the DataStax driver's own token map, read directly from the cluster) through a proxy given
one contact point per cluster, and reads each node's counters before and after: the share of
requests its replica coordinated, per cluster, must be at least 95%.

With ``proxy.token_aware: false`` the same measure shows what the proxy did before: the
client connection's one origin node coordinates everything, a third of the keys' replica.
"""

from __future__ import annotations

import struct
import time

import pytest

from tests.support.harness import RunningProxy
from tests.support.multinode import NodeSessions, create_keyspace, direct, drop_keyspaces
from tests.support.net import driver_cluster, free_port
from zdm.config import Config, ProxyConfig

KEYS_PER_NODE = 100


@pytest.fixture()
def rf1(multinode):
    """A keyspace at RF 1 on both clusters, with one table; dropped afterwards."""
    ks = create_keyspace(multinode, "ta_", {"origin": 1, "target": 1})
    owners = {}
    for cluster in ("origin", "target"):
        with direct(multinode, cluster) as s:
            s.cluster.refresh_schema_metadata()
            owners[cluster] = _owners(s.cluster, ks)
    yield ks, owners
    drop_keyspaces(multinode, ks)


def _owners(cluster, ks: str) -> dict[int, str]:
    """key -> the address of its one replica, for keys 0..9999, by the driver's token map."""
    token_map = cluster.metadata.token_map
    found = {}
    for k in range(10_000):
        (host,) = token_map.get_replicas(ks, token_map.token_class.from_key(struct.pack(">i", k)))
        found[k] = host.address
    return found


def _proxy(multinode, tmp_path, token_aware: bool) -> RunningProxy:
    config = Config(state_dir=tmp_path / "state",
                    origin=multinode.cluster_config("origin", contact_points=1),
                    target=multinode.cluster_config("target", contact_points=1),
                    proxy=ProxyConfig(listen_port=free_port(), request_timeout_s=10, token_aware=token_aware))
    return RunningProxy(config)


def _replica_shares(multinode, proxy, ks: str, owners: dict[str, dict[int, str]]) -> dict[tuple[str, str], float]:
    """(cluster, "write"|"read") -> the share of requests a replica of their key coordinated
    (target: writes; reads go to origin in phase 1)."""
    client = driver_cluster(proxy.port, 5)
    counters = {c: NodeSessions(multinode, c) for c in ("origin", "target")}
    try:
        session = client.connect()
        insert = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
        select = session.prepare(f"SELECT v FROM {ks}.t WHERE k = ?")
        # warm up: the proxy opens its links and prepares the statements on them in the background
        for k in range(2000, 2300):
            session.execute(insert, (k, "warm"))
            session.execute(select, (k,))
        time.sleep(1.0)
        for k in range(2300, 2400):
            session.execute(insert, (k, "warm"))
            session.execute(select, (k,))
        shares = {}
        for cluster in ("origin", "target"):
            # in phase 1 reads go to origin alone: target coordinates writes only
            coordinated = {"write": 0, "read": 0} if cluster == "origin" else {"write": 0}
            sent = 0
            for address in multinode.addresses(cluster):
                keys = [k for k in range(10_000) if owners[cluster][k] == address][:KEYS_PER_NODE]
                before = {kind: counters[cluster].table_count(f"coordinator_{kind}_latency", ks) for kind in coordinated}
                for k in keys:
                    session.execute(insert, (k, f"v{k}"))
                    assert session.execute(select, (k,)).one().v == f"v{k}"
                after = {kind: counters[cluster].table_count(f"coordinator_{kind}_latency", ks) for kind in coordinated}
                for kind in coordinated:  # only this node owns these keys
                    coordinated[kind] += after[kind][address] - before[kind][address]
                sent += len(keys)
            for kind, n in coordinated.items():
                shares[cluster, kind] = n / sent
        return shares
    finally:
        for c in counters.values():
            c.close()
        client.shutdown()


def test_requests_are_coordinated_by_a_replica_of_their_partition(multinode, rf1, tmp_path):
    ks, owners = rf1
    proxy = _proxy(multinode, tmp_path, token_aware=True)
    try:
        shares = _replica_shares(multinode, proxy, ks, owners)
        metrics = proxy.server.workers[0].plane.ctx.stats
        print(f"replica shares: {shares}; proxy counted {metrics.token_aware_replica} replica, "
              f"{metrics.token_aware_fallback} home")
    finally:
        proxy.stop()
    for (cluster, kind), share in shares.items():
        assert share >= 0.95, f"{cluster} {kind}s: only {share:.0%} coordinated by their replica ({shares})"


def test_without_token_awareness_the_connections_node_coordinates_everything(multinode, rf1, tmp_path):
    ks, owners = rf1
    proxy = _proxy(multinode, tmp_path, token_aware=False)
    try:
        shares = _replica_shares(multinode, proxy, ks, owners)
    finally:
        proxy.stop()
    # one client connection, one origin node: the replica of a third of the keys
    assert shares["origin", "write"] < 0.8 and shares["origin", "read"] < 0.8, shares


def test_a_replica_links_death_costs_only_the_requests_in_flight(multinode, tmp_path):
    """RF 2 on the 3-node origin: the connection's own node is a replica of two keys in three,
    and a link of the proxy's carries the rest.  SIGKILL a node that only a link reaches (not
    the application connection's own node): the writes on that link at that moment may fail,
    every later one succeeds, and every write acknowledged is on origin."""
    import threading

    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    from zdm.phases.model import Cluster

    ks = create_keyspace(multinode, "tl_", {"origin": 2, "target": 1})
    proxy = _proxy(multinode, tmp_path, token_aware=True)
    client = driver_cluster(proxy.port, 5)
    killed = None
    try:
        session = client.connect()
        insert = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
        insert.consistency_level = ConsistencyLevel.ONE  # one replica of two is enough
        for k in range(-300, 0):  # links opened and the statement prepared on them
            session.execute(insert, (k, "warm"))
        plane = proxy.server.workers[0].plane
        # the application's connection (the driver's control connection is the one that REGISTERs)
        (home,) = {s.backends[Cluster.ORIGIN].endpoint.host for s in plane.sessions
                   if s.handler is not None and s.handler.registered is None}
        linked = {b.address[0] for b in plane.links.backends() if b.cluster is Cluster.ORIGIN}
        contact = multinode.addresses("origin")[0]
        # not the contact point if it can be helped (the proxy's control connection is there)
        candidates = sorted(linked - {home}, key=lambda a: a == contact)
        assert candidates, f"no link to a node other than {home}: {linked}"
        acknowledged, errors, stop = [], [], threading.Event()

        def write(first: int) -> None:
            k = first
            while not stop.is_set():
                try:
                    session.execute(insert, (k, f"v{k}"))
                    acknowledged.append(k)
                except Exception as exc:  # noqa: BLE001 - what the application saw is the result
                    errors.append(f"{type(exc).__name__}: {exc}")
                k += 4

        threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        _wait_for(lambda: len(acknowledged) > 300)
        killed = candidates[0]
        multinode.stop_node(killed)
        at_kill = len(acknowledged)
        _wait_for(lambda: len(acknowledged) > at_kill + 600)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        print(f"{len(acknowledged)} writes acknowledged, {len(errors)} failed: {errors[:4]}")
        assert len(errors) <= 4, errors[:10]  # one request in flight per writer at most
        multinode.start_node(killed)
        killed = None
        with direct(multinode, "origin") as s:
            scan = SimpleStatement(f"SELECT k, v FROM {ks}.t", consistency_level=ConsistencyLevel.QUORUM)
            rows = {r.k: r.v for r in s.execute(scan, timeout=120)}
        missing = [k for k in acknowledged if rows.get(k) != f"v{k}"]
        assert not missing, f"origin lacks {len(missing)} acknowledged writes, e.g. {missing[:5]}"
    finally:
        client.shutdown()
        proxy.stop()
        if killed is not None:
            multinode.start_node(killed)
        drop_keyspaces(multinode, ks)


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
