"""The proxy against the real sandbox, with the real driver connected to it as an application.

Every test runs over protocol v4 and v5 (v5 with its segment framing).
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
from cassandra import InvalidRequest
from cassandra.query import BatchStatement, SimpleStatement

from tests.support.harness import RunningProxy, client_of, proxy_of
from tests.support.net import driver_cluster, free_port
from zdm.config import ProxyConfig


@pytest.fixture(scope="module")
def proxy(zdm_config):
    with proxy_of(zdm_config) as running:
        yield running


@pytest.fixture(scope="module", params=[4, 5], ids=["v4", "v5"])
def client(request, proxy):
    with client_of(proxy, request.param) as session:
        yield session


@pytest.fixture()
def ks(client, origin_session, target_session):
    """A keyspace created THROUGH the proxy (so on both clusters), dropped afterwards."""
    name = "p_" + uuid.uuid4().hex[:10]
    client.execute(f"CREATE KEYSPACE {name} WITH replication = "
                   "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    yield name
    client.execute(f"DROP KEYSPACE IF EXISTS {name}")


def both(origin_session, target_session, query, params=()):
    return [list(s.execute(query, params)) for s in (origin_session, target_session)]


def test_ddl_through_proxy_creates_table_on_both(client, ks, origin_session, target_session):
    client.execute(f"CREATE TABLE {ks}.t (k int, c int, v text, PRIMARY KEY (k, c))")
    for s in (origin_session, target_session):
        cols = {r.column_name for r in s.execute(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name=%s AND table_name='t'", (ks,))}
        assert cols == {"k", "c", "v"}


def test_every_write_lands_on_both_with_same_writetime(client, ks, origin_session, target_session):
    client.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text, n int)")
    client.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, 'simple')")
    insert = client.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
    client.execute(insert, (2, "prepared"))
    batch = BatchStatement()
    batch.add(insert, (3, "batched-prepared"))
    batch.add(SimpleStatement(f"INSERT INTO {ks}.t (k, v) VALUES (4, 'batched-simple')"))
    client.execute(batch)
    client.execute(f"UPDATE {ks}.t SET n = 7 WHERE k = 1")
    client.execute(f"INSERT INTO {ks}.t (k, v) VALUES (5, 'gone')")
    client.execute(f"DELETE FROM {ks}.t WHERE k = 5")
    origin, target = both(origin_session, target_session,
                          f"SELECT k, v, n, writetime(v) AS wv, writetime(n) AS wn FROM {ks}.t")
    assert sorted(origin) == sorted(target)
    assert sorted((r.k, r.v, r.n) for r in origin) == [
        (1, "simple", 7), (2, "prepared", None), (3, "batched-prepared", None), (4, "batched-simple", None)]


def test_proxy_adds_one_timestamp_when_client_sends_none(proxy, zdm_config, origin_session, target_session):
    cluster = driver_cluster(proxy.port, 4)
    session = cluster.connect()
    session.use_client_timestamp = False  # server-side timestamps would differ between clusters
    ks = "p_" + uuid.uuid4().hex[:10]
    try:
        session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
        insert = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
        for k in range(20):
            session.execute(insert, (k, "x")) if k % 2 else \
                session.execute(f"INSERT INTO {ks}.t (k, v) VALUES ({k}, 'y')")
        origin, target = both(origin_session, target_session, f"SELECT k, writetime(v) AS w FROM {ks}.t")
        assert len(origin) == 20 and sorted(origin) == sorted(target)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        cluster.shutdown()


def test_reads_come_from_origin(client, ks, origin_session, target_session):
    client.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    origin_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, 'origin')")
    target_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, 'target')")
    assert client.execute(f"SELECT v FROM {ks}.t WHERE k = 1").one().v == "origin"
    select = client.prepare(f"SELECT v FROM {ks}.t WHERE k = ?")
    assert client.execute(select, (1,)).one().v == "origin"


def test_paging_simple_and_prepared(client, ks):
    client.execute(f"CREATE TABLE {ks}.t (k int, c int, PRIMARY KEY (k, c))")
    insert = client.prepare(f"INSERT INTO {ks}.t (k, c) VALUES (0, ?)")
    for c in range(230):
        client.execute(insert, (c,))
    simple = SimpleStatement(f"SELECT c FROM {ks}.t WHERE k = 0", fetch_size=50)
    assert [r.c for r in client.execute(simple)] == list(range(230))
    prepared = client.prepare(f"SELECT c FROM {ks}.t WHERE k = ?")
    prepared.fetch_size = 40
    result = client.execute(prepared, (0,))
    assert result.has_more_pages
    assert [r.c for r in result] == list(range(230))


def test_use_keyspace_is_tracked(proxy, ks, origin_session, target_session, client):
    client.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    cluster = driver_cluster(proxy.port)
    try:
        session = cluster.connect(ks)  # the driver sends USE on every connection
        session.execute("INSERT INTO t (k, v) VALUES (1, 'unqualified')")
        prepared = session.prepare("SELECT v FROM t WHERE k = ?")
        assert session.execute(prepared, (1,)).one().v == "unqualified"
        session.execute(f'USE "{ks}"')
        assert session.execute("SELECT v FROM t WHERE k = 1").one().v == "unqualified"
    finally:
        cluster.shutdown()
    origin, target = both(origin_session, target_session, f"SELECT v FROM {ks}.t")
    assert origin == target == [("unqualified",)]


def test_write_failing_on_one_cluster_returns_that_error(client, ks, origin_session, target_session):
    origin_session.execute(f"CREATE TABLE {ks}.only_origin (k int PRIMARY KEY)")
    with pytest.raises(InvalidRequest, match="only_origin"):
        client.execute(f"INSERT INTO {ks}.only_origin (k) VALUES (1)")
    target_session.execute(f"CREATE TABLE {ks}.only_target (k int PRIMARY KEY)")
    with pytest.raises(InvalidRequest, match="only_target"):
        client.execute(f"INSERT INTO {ks}.only_target (k) VALUES (1)")
    with pytest.raises(InvalidRequest, match="only_target"):
        client.prepare(f"INSERT INTO {ks}.only_target (k) VALUES (?)")


def test_prepared_statement_survives_target_losing_it(client, proxy, ks, origin_session, target_session):
    client.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    insert = client.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
    client.execute(insert, (1, "before"))
    # dropping and recreating the table on target alone evicts the statement from target's cache
    target_session.execute(f"DROP TABLE {ks}.t")
    target_session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    before = proxy.server.stats.reprepares
    client.execute(insert, (2, "after"))  # target answers UNPREPARED; the proxy re-prepares
    assert proxy.server.stats.reprepares == before + 1
    assert [tuple(r) for r in target_session.execute(f"SELECT k, v FROM {ks}.t")] == [(2, "after")]
    assert sorted(tuple(r) for r in origin_session.execute(f"SELECT k, v FROM {ks}.t")) == \
        [(1, "before"), (2, "after")]


def test_batch_survives_target_losing_a_childs_statement(client, proxy, ks, origin_session,
                                                        target_session):
    client.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    insert = client.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
    target_session.execute(f"DROP TABLE {ks}.t")  # evicts the statement from target's cache
    target_session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    batch = BatchStatement()
    batch.add(insert, (1, "one"))
    batch.add(insert, (2, "two"))
    before = proxy.server.stats.reprepares
    client.execute(batch)  # target answers UNPREPARED with its id; the proxy prepares it again
    assert proxy.server.stats.reprepares == before + 1
    for s in (origin_session, target_session):
        assert sorted(tuple(r) for r in s.execute(f"SELECT k, v FROM {ks}.t")) == [(1, "one"), (2, "two")]


def test_system_local_and_peers_are_virtual(client, proxy):
    local = client.execute("SELECT rpc_address, rpc_port, cluster_name, tokens FROM system.local").one()
    assert str(local.rpc_address) == "127.0.0.1" and local.rpc_port == proxy.port
    assert local.cluster_name == "zdm-sandbox-origin"
    assert list(client.execute("SELECT * FROM system.peers")) == []
    # other system tables are read from origin
    names = {r.keyspace_name for r in client.execute("SELECT keyspace_name FROM system_schema.keyspaces")}
    assert "system" in names


@pytest.mark.parametrize("phase", [3, 4], ids=["async-reads", "target-reads"])
def test_read_routing_by_phase(zdm_config, origin_session, target_session, phase):
    from zdm.phases.model import Phase, routing_for

    port = free_port()
    config = dataclasses.replace(zdm_config, proxy=ProxyConfig(listen_port=port))
    proxy = RunningProxy(config)
    proxy.server.routing = routing_for(Phase(phase))
    cluster = driver_cluster(port, 5)
    session = cluster.connect()
    ks = "r_" + uuid.uuid4().hex[:10]
    try:
        session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
        session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, 'same')")
        origin_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (2, 'origin')")
        target_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (2, 'target')")
        select = session.prepare(f"SELECT v FROM {ks}.t WHERE k = ?")
        local = session.prepare("SELECT * FROM system.local WHERE key = ?")
        row = session.execute(local, ("local",)).one()  # served like the unprepared read
        assert (row.key, str(row.rpc_address), row.rpc_port) == ("local", "127.0.0.1", port)
        assert row.cluster_name == "zdm-sandbox-origin"
        assert session.execute(select, (1,)).one().v == "same"
        second = session.execute(select, (2,)).one().v
        simple = session.execute(f"SELECT v FROM {ks}.t WHERE k = 2").one().v
        if phase == 3:
            assert second == simple == "origin"  # target's answer is compared, never returned
            deadline = time.monotonic() + 5
            while proxy.server.stats.async_requests < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            stats = proxy.server.stats
            assert (stats.async_requests, stats.async_mismatches, stats.async_errors) == (3, 2, 0)
        else:
            assert second == simple == "target"
            assert proxy.server.stats.async_requests == 0
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        cluster.shutdown()
        proxy.stop()


def test_statements_outside_the_scope_go_to_origin_only(zdm_config, origin_session, target_session):
    from zdm.config import ScopeConfig
    from zdm.phases.model import Phase, routing_for

    inside, outside = "s_" + uuid.uuid4().hex[:8], "legacy_" + uuid.uuid4().hex[:8]
    for s in (origin_session, target_session):
        s.execute(f"CREATE KEYSPACE {inside} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute(f"CREATE TABLE {inside}.t (k int PRIMARY KEY, v text)")
    origin_session.execute(f"CREATE KEYSPACE {outside} WITH replication = "  # origin only
                           "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    origin_session.execute(f"CREATE TABLE {outside}.t (k int PRIMARY KEY, v text)")
    config = dataclasses.replace(zdm_config, proxy=ProxyConfig(listen_port=free_port()),
                                 scope=ScopeConfig(keyspaces=(inside,)))
    proxy = RunningProxy(config)
    proxy.server.routing = routing_for(Phase.TARGET_READS)
    cluster = driver_cluster(proxy.port, 4)
    session = cluster.connect()
    try:
        session.execute(f"INSERT INTO {outside}.t (k, v) VALUES (1, 'origin only')")
        insert = session.prepare(f"INSERT INTO {outside}.t (k, v) VALUES (?, ?)")
        session.execute(insert, (2, "prepared"))
        session.execute(f"INSERT INTO {inside}.t (k, v) VALUES (1, 'both')")
        assert sorted(tuple(r) for r in origin_session.execute(f"SELECT k, v FROM {outside}.t")) == [
            (1, "origin only"), (2, "prepared")]
        assert [tuple(r) for r in target_session.execute(f"SELECT k, v FROM {inside}.t")] == [(1, "both")]
        # reads of what lies outside the scope come from origin, even in phase 4
        select = session.prepare(f"SELECT v FROM {outside}.t WHERE k = ?")
        assert session.execute(select, (2,)).one().v == "prepared"
        session.execute(f"USE {outside}")
        assert session.execute("SELECT v FROM t WHERE k = 1").one().v == "origin only"
    finally:
        cluster.shutdown()
        proxy.stop()
        for s in (origin_session, target_session):
            s.execute(f"DROP KEYSPACE IF EXISTS {inside}")
        origin_session.execute(f"DROP KEYSPACE IF EXISTS {outside}")
