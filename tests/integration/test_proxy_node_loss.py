"""A cluster node lost under a connected client: the proxy moves the client's cluster connection
to another node and the client stays connected, as a driver would see a coordinator die.

Staged with TCP relays in front of the real target node (a relay that cuts its connections is
a node that restarted; one that also stops accepting is a node that died): the requests in
flight get an error, the next ones succeed on their first try, and a new client connects at
once.  The real multi-node clusters' node failures are proven in the end-to-end tests.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from tests.support.harness import FaultyRelay, RunningProxy
from tests.support.net import driver_cluster, free_port
from zdm.config import ClusterConfig, ProxyConfig


@pytest.fixture()
def ks(keyspace, origin_session, target_session):
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    return keyspace


@pytest.fixture()
def two_target_nodes(zdm_config):
    """A proxy whose target has two contact points, each a relay to the target node."""
    # one "node" per relay, each on its own loopback address with the same port, as a
    # cluster's nodes are
    port = free_port()
    relays = [FaultyRelay(("127.0.0.1", zdm_config.target.port), listen=(host, port))
              for host in ("127.0.0.61", "127.0.0.62")]
    config = dataclasses.replace(
        zdm_config, target=ClusterConfig(contact_points=tuple(r.host for r in relays), port=port),
        proxy=ProxyConfig(listen_port=free_port(), request_timeout_s=5))
    proxy = RunningProxy(config)
    yield proxy, relays
    proxy.stop()
    for relay in relays:
        relay.stop()


def _sessions(proxy):
    return list(proxy.server.workers[0].plane.sessions)


@pytest.mark.parametrize("version", [4, 5], ids=["v4", "v5"])
def test_a_restarted_node_is_replaced_under_the_connected_client(two_target_nodes, ks, target_session,
                                                                 version):
    proxy, relays = two_target_nodes
    cluster = driver_cluster(proxy.port, version)
    session = cluster.connect(ks)  # USE ks: the new connection must be in it too
    insert = session.prepare("INSERT INTO t (k, v) VALUES (?, ?)")
    session.execute(insert, (1, "before"))
    clients = _sessions(proxy)  # the driver's control connection and its pool's
    lost = {c: c.backends[_target()] for c in clients}
    for relay in relays:
        relay.cut()  # every target connection drops; the relays still accept new ones
    deadline = time.monotonic() + 10
    while any(c.backends[_target()] is lost[c] or c.moving for c in clients):
        assert time.monotonic() < deadline, "a client's target connection was not replaced"
        time.sleep(0.05)
    # the client connections are the same ones, and their next requests succeed on the first try
    assert set(_sessions(proxy)) == set(clients) and not any(c.closed for c in clients)
    session.execute(insert, (2, "after"))
    session.execute("INSERT INTO t (k, v) VALUES (3, 'unqualified, in the keyspace USE set')")
    assert sorted(tuple(r) for r in target_session.execute(f"SELECT k, v FROM {ks}.t")) == [
        (1, "before"), (2, "after"), (3, "unqualified, in the keyspace USE set")]
    cluster.shutdown()


def test_requests_sent_while_the_node_is_replaced_wait_and_succeed(two_target_nodes, ks, target_session):
    proxy, relays = two_target_nodes
    cluster = driver_cluster(proxy.port, 4)
    session = cluster.connect()
    insert = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
    session.execute(insert, (0, "warm"))
    clients = _sessions(proxy)
    pool = max(clients, key=lambda c: c.handler.in_flight + len(c.ctx.prepared))  # any will do
    used = pool.backends[_target()].endpoint
    dead = next(r for r in relays if r.host == used.host)
    dead.stop_accepting()  # the node dies: its connections drop and it accepts no more
    dead.cut()
    futures = [session.execute_async(insert, (k, f"v{k}")) for k in range(1, 51)]
    outcomes = []
    for f in futures:
        try:
            f.result()
            outcomes.append("ok")
        except Exception as exc:  # noqa: BLE001 - what the client saw is the result
            outcomes.append(type(exc).__name__)
    # a request the lost connection had in flight may fail (as with a dead coordinator);
    # everything sent after the loss is served by the other node
    assert outcomes.count("ok") >= 45, outcomes
    acknowledged = {k for k, o in zip(range(1, 51), outcomes) if o == "ok"}
    stored = {r.k for r in target_session.execute(f"SELECT k FROM {ks}.t")}
    assert acknowledged <= stored  # no acknowledged write is lost
    assert all(c.backends[_target()].endpoint.host != dead.host and not c.closed for c in clients)
    # a new client right after the failure connects, to the live node (the dead one is tried
    # last, so it is not even dialled while the other answers)
    before = set(_sessions(proxy))
    other = driver_cluster(proxy.port, 4)
    other.connect().execute(insert.query_string.replace("?", "%s"), (100, "new client"))
    new = set(_sessions(proxy)) - before
    assert new and all(c.backends[_target()].endpoint.host != dead.host for c in new)
    other.shutdown()
    cluster.shutdown()


def _target():
    from zdm.phases.model import Cluster
    return Cluster.TARGET
