"""Prepared statements across schema changes, through the proxy, as a driver sees them directly.

After ``ALTER TABLE ... ADD`` (or DROP and CREATE with another column type) Cassandra forgets
the table's prepared statements and answers UNPREPARED; the driver prepares again and so learns
the new result columns and bind types.  Through the proxy the driver must get that same
UNPREPARED, in phase 1 (origin answers reads) and in phase 4 (target answers them).  The
Python driver skips result metadata on EXECUTE once it holds them, as gocql does, so a proxy
that prepared again on its own would leave it decoding new rows against old columns.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.harness import client_of, proxy_of
from tests.support.net import driver_cluster
from zdm.phases.model import Phase, routing_for


@pytest.fixture(scope="module", params=[Phase.PROXY, Phase.TARGET_READS], ids=["phase1", "phase4"])
def proxy(request, zdm_config):
    with proxy_of(zdm_config) as running:
        running.server.routing = routing_for(request.param)
        yield running


@pytest.fixture(scope="module", params=[4, 5], ids=["v4", "v5"])
def client(request, proxy):
    with client_of(proxy, request.param) as session:
        yield session


@pytest.fixture()
def ks(client):
    name = "sc_" + uuid.uuid4().hex[:10]
    client.execute(f"CREATE KEYSPACE {name} WITH replication = "
                   "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    yield name
    client.execute(f"DROP KEYSPACE IF EXISTS {name}")


def test_select_star_after_alter_add_returns_the_new_columns(client, proxy, ks, origin_session,
                                                             target_session):
    client.execute(f"CREATE TABLE {ks}.t (pk int, ck int, v text, PRIMARY KEY (pk, ck))")
    client.execute(f"INSERT INTO {ks}.t (pk, ck, v) VALUES (0, 1, 'a')")
    client.execute(f"INSERT INTO {ks}.t (pk, ck, v) VALUES (0, 2, 'b')")
    select = client.prepare(f"SELECT * FROM {ks}.t WHERE pk = ?")
    assert [tuple(r) for r in client.execute(select, (0,))] == [(0, 1, "a"), (0, 2, "b")]
    reprepares = proxy.server.stats.reprepares
    client.execute(f"ALTER TABLE {ks}.t ADD a text")
    client.execute(f"UPDATE {ks}.t SET a = 'new' WHERE pk = 0 AND ck = 1")
    rows = [r._asdict() for r in client.execute(select, (0,))]
    assert rows == [{"pk": 0, "ck": 1, "a": "new", "v": "a"}, {"pk": 0, "ck": 2, "a": None, "v": "b"}]
    assert proxy.server.stats.reprepares == reprepares  # the driver prepared again, not the proxy
    for s in (origin_session, target_session):  # the update landed on both
        assert s.execute(f"SELECT a FROM {ks}.t WHERE pk = 0 AND ck = 1").one().a == "new"


def _type_change(session, ks: str) -> list:
    """What a driver sees when a prepared INSERT outlives its table (DROP, CREATE with v bigint
    where v was int): each step's outcome and the rows."""
    seen = []
    session.execute(f"CREATE TABLE {ks}.t2 (pk int PRIMARY KEY, v int)")
    insert = session.prepare(f"INSERT INTO {ks}.t2 (pk, v) VALUES (?, ?)")
    session.execute(insert, (1, 10))
    session.execute(f"DROP TABLE {ks}.t2")
    session.execute(f"CREATE TABLE {ks}.t2 (pk int PRIMARY KEY, v bigint)")
    for values in ((2, 20), (3, 30)):
        try:
            session.execute(insert, values)
            seen.append("ok")
        except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
            seen.append(f"{type(exc).__name__}: {exc}")
    fresh = session.prepare(f"INSERT INTO {ks}.t2 (pk, v) VALUES (?, ?)")
    session.execute(fresh, (4, 2**40))  # prepared anew: the bigint binds
    seen.append(sorted(tuple(r) for r in session.execute(f"SELECT pk, v FROM {ks}.t2")))
    return seen


def test_a_prepared_insert_after_the_column_type_changed_fails_or_works_as_directly(
        client, proxy, ks, zdm_config, origin_session, target_session):
    """The Python driver keeps the bind types it prepared with, so directly its INSERT fails
    with the node's own error; through the proxy it must fail the same way (not with another
    error, nor succeed with misread bytes), and the statement prepared anew works on both."""
    primary = target_session if proxy.server.routing.primary.value == "target" else origin_session
    direct_ks = "scd_" + uuid.uuid4().hex[:10]
    primary.execute(f"CREATE KEYSPACE {direct_ks} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    try:
        port = zdm_config.target.port if primary is target_session else zdm_config.origin.port
        cluster = driver_cluster(port, client.cluster.protocol_version)
        direct = cluster.connect()
        try:
            expected = _type_change(direct, direct_ks)
        finally:
            cluster.shutdown()
    finally:
        primary.execute(f"DROP KEYSPACE IF EXISTS {direct_ks}")
    assert _type_change(client, ks) == expected
    for s in (origin_session, target_session):
        assert sorted(tuple(r) for r in s.execute(f"SELECT pk, v FROM {ks}.t2")) == expected[-1]
