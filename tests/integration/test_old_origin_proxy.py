"""The proxy with a Cassandra 4.1 origin and a 5.0 target, with the real driver as the
application: dual writes of every type, a migration while the application writes
(nothing acknowledged is lost, validation is clean), async reads and reads from target."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import timedelta

import pytest
from cassandra.query import BatchStatement

from migrate_fixtures import config_for, migration, validation
from tests.support.harness import RunningProxy, client_of, proxy_of
from tests.support.net import driver_cluster, free_port
from zdm.config import ProxyConfig
from zdm.migrate.run import migrate
from zdm.clock import utcnow
from zdm.validate import validate

REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
TABLE = ("CREATE TABLE {ks}.t (k int, c int, s set<text> static, l list<int>, st set<text>, "
         "m map<text, int>, ud addr, fl frozen<list<int>>, v text, PRIMARY KEY (k, c))")


@pytest.fixture(scope="module")
def proxy(old_config):
    with proxy_of(old_config) as running:
        yield running


@pytest.fixture(scope="module", params=[4, 5], ids=["v4", "v5"])
def client(request, proxy):
    with client_of(proxy, request.param) as session:
        yield session


@pytest.fixture()
def ks(client, old_origin_session, target_session):
    """A keyspace, a type and a table created THROUGH the proxy, so on both clusters."""
    name = "op_" + uuid.uuid4().hex[:10]
    client.execute(f"CREATE KEYSPACE {name} WITH replication = {REPLICATION}")
    client.execute(f"CREATE TYPE {name}.addr (street text, num int)")
    client.execute(TABLE.format(ks=name))
    client.execute(f"CREATE TABLE {name}.hits (k int PRIMARY KEY, n counter)")
    yield name
    client.execute(f"DROP KEYSPACE IF EXISTS {name}")


def rows(session, query):
    return sorted(tuple(r) for r in session.execute(query))


def test_every_type_written_through_the_proxy_lands_on_both(client, ks, old_origin_session,
                                                           target_session):
    client.execute(f"INSERT INTO {ks}.t (k, c, l, st, m, ud, fl, v) VALUES (1, 1, [1, 2], "
                   "{'a'}, {'x': 1}, {street: 'main', num: 1}, [7], 'one') USING TTL 3600")
    update = client.prepare(f"UPDATE {ks}.t SET st = st + ?, l = l + ?, m[?] = ?, ud.num = ? "
                            "WHERE k = ? AND c = ?")
    client.execute(update, ({"b"}, [3], "y", 2, 5, 1, 1))
    client.execute(f"UPDATE {ks}.t SET st = st - {{'a'}}, s = {{'static'}} WHERE k = 1 AND c = 1")
    batch = BatchStatement()
    batch.add(client.prepare(f"INSERT INTO {ks}.t (k, c, m, v) VALUES (?, ?, ?, ?)"),
              (2, 1, {"z": 26}, "batched"))
    batch.add(f"DELETE m['x'] FROM {ks}.t WHERE k = 1 AND c = 1")
    client.execute(batch)
    client.execute(f"UPDATE {ks}.hits SET n = n + 5 WHERE k = 1")
    client.execute(f"UPDATE {ks}.t SET l = [9] WHERE k = 2 AND c = 1")

    values = f"SELECT k, c, s, l, st, m, ud, fl, v FROM {ks}.t"
    assert rows(old_origin_session, values) == rows(target_session, values)
    assert len(rows(target_session, values)) == 2
    # the simple cells carry one writetime on both (4.1 cannot read a collection's)
    meta = f"SELECT k, c, writetime(v) AS wv, writetime(fl) AS wf, ttl(v) AS tv FROM {ks}.t"
    o, t = rows(old_origin_session, meta), rows(target_session, meta)
    assert [r[:4] for r in o] == [r[:4] for r in t]
    assert all(abs((a[4] or 0) - (b[4] or 0)) <= 2 for a, b in zip(o, t))
    assert rows(old_origin_session, f"SELECT n FROM {ks}.hits") == \
        rows(target_session, f"SELECT n FROM {ks}.hits") == [(5,)]


PRE_ROWS = 1500


def test_a_migration_while_the_application_writes_through_the_proxy_loses_nothing(
        proxy, old_config, tmp_path, old_origin_session, target_session):
    ks = "live_" + uuid.uuid4().hex[:8]
    for s in (old_origin_session, target_session):
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = {REPLICATION}")
        s.execute(f"CREATE TYPE {ks}.addr (street text, num int)")
        s.execute(TABLE.format(ks=ks))
    try:
        week_ago = int((time.time() - 7 * 86400) * 1_000_000)
        ins = old_origin_session.prepare(
            f"INSERT INTO {ks}.t (k, c, l, st, m, ud, fl, v) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "USING TIMESTAMP ? AND TTL ?")
        stat = old_origin_session.prepare(f"UPDATE {ks}.t USING TIMESTAMP ? SET s = ? WHERE k = ?")
        futures = []
        for i in range(PRE_ROWS):
            futures.append(old_origin_session.execute_async(ins, (
                i % 300, i, [i, i + 1], {f"s{i % 3}", "old"}, {"a": i, "b": -i},
                (f"st{i}", i), [i], f"v{i}", week_ago + i,
                86400 * 30 if i % 4 == 0 else 0)))
            if i < 300:
                futures.append(old_origin_session.execute_async(stat, (week_ago, {"p", f"q{i}"}, i)))
        for f in futures:
            f.result()

        config = config_for(old_config, tmp_path)
        since = utcnow()  # the application starts writing through the proxy now
        cluster = driver_cluster(proxy.port, 4)
        app = cluster.connect(ks)
        acked: list[tuple[int, int]] = []
        errors: list[Exception] = []
        stop = threading.Event()
        writes = [app.prepare(q) for q in (
            "INSERT INTO t (k, c, l, st, m, v) VALUES (?, ?, [1], {'new'}, {'n': 1}, 'app')",
            "UPDATE t SET st = st + {'added'}, l = l + [99], m['x'] = 1 WHERE k = ? AND c = ?",
            "UPDATE t SET st = st - {'old'}, ud.num = -1 WHERE k = ? AND c = ?",
            "UPDATE t SET m = {'replaced': 1}, l = [42] WHERE k = ? AND c = ?",
            "DELETE FROM t WHERE k = ? AND c = ?",
            "UPDATE t SET s = s + {'live'}, v = 'static too' WHERE k = ? AND c = ?",
        )]

        def application():
            i = 0
            while not stop.is_set():
                try:
                    if i % 6 == 0:
                        key = (300 + i % 97, 10_000 + i)
                        app.execute(writes[0], key)
                        acked.append(key)
                    else:
                        n = (i * 7919) % PRE_ROWS
                        app.execute(writes[i % 6], (n % 300, n))
                except Exception as exc:  # noqa: BLE001 - any error fails the test below
                    errors.append(exc)
                i += 1

        writer = threading.Thread(target=application)
        writer.start()
        try:
            time.sleep(0.5)
            report = migrate(config, migration(ks, dual_writes_since=since,
                                               run={"fetch_size": 100, "splits": 32}))
            time.sleep(0.5)
        finally:
            stop.set()
            writer.join(30)
            cluster.shutdown()
        assert report.complete, report.to_json()
        assert report.tables[0].fallback_columns == ["l", "m", "s", "st", "ud"]
        assert not errors, errors[:3]
        assert len(acked) > 20
        on_target = {(r.k, r.c) for r in target_session.execute(f"SELECT k, c FROM {ks}.t")}
        assert not set(acked) - on_target, "an acknowledged write is missing on target"
        check = validate(config, validation(ks))
        assert check.clean, check.to_json()["tables"][0]["differences"][:5]
        assert check.tables[0].rows_origin >= PRE_ROWS
    finally:
        for s in (old_origin_session, target_session):
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}")


@pytest.mark.parametrize("phase", [3, 4], ids=["async-reads", "target-reads"])
def test_async_reads_and_reads_from_target(old_config, old_origin_session, target_session, phase):
    from zdm.phases.model import Phase, routing_for

    port = free_port()
    proxy = RunningProxy(dataclasses.replace(old_config, proxy=ProxyConfig(listen_port=port)))
    proxy.server.routing = routing_for(Phase(phase))
    cluster = driver_cluster(port, 4)
    session = cluster.connect()
    ks = "or_" + uuid.uuid4().hex[:10]
    try:
        session.execute(f"CREATE KEYSPACE {ks} WITH replication = {REPLICATION}")
        session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text, st set<text>)")
        session.execute(f"INSERT INTO {ks}.t (k, v, st) VALUES (1, 'same', {{'a'}})")
        old_origin_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (2, 'origin')")
        target_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (2, 'target')")
        select = session.prepare(f"SELECT v, st FROM {ks}.t WHERE k = ?")
        assert tuple(session.execute(select, (1,)).one()) == ("same", {"a"})
        second = session.execute(select, (2,)).one().v
        simple = session.execute(f"SELECT v FROM {ks}.t WHERE k = 2").one().v
        if phase == 3:
            assert second == simple == "origin"  # target's answer is compared, never returned
            deadline = time.monotonic() + 5
            while proxy.server.stats.async_requests < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            stats = proxy.server.stats  # a snapshot (summed over the proxy's workers)
            assert (stats.async_requests, stats.async_mismatches, stats.async_errors) == (3, 2, 0)
        else:
            assert second == simple == "target"
            assert proxy.server.stats.async_requests == 0
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        cluster.shutdown()
        proxy.stop()


def test_the_fallback_timestamp_is_below_every_dual_write(old_config, tmp_path, proxy,
                                                          old_origin_session, target_session):
    """The migration records the start of dual writes it used, and every write the proxy
    made carries a newer timestamp than the fallback's."""
    from zdm.migrate.fallback import fallback_timestamp

    ks = "ts_" + uuid.uuid4().hex[:8]
    cluster = driver_cluster(proxy.port, 4)
    session = cluster.connect()
    try:
        since = utcnow() - timedelta(seconds=1)
        session.execute(f"CREATE KEYSPACE {ks} WITH replication = {REPLICATION}")
        session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, st set<text>, v int)")
        for k in range(20):
            session.execute(f"UPDATE {ks}.t SET st = st + {{'x'}}, v = {k} WHERE k = {k}")
        dual = [r.w for r in target_session.execute(f"SELECT writetime(st) AS w FROM {ks}.t")]
        lowest = min(min(w) for w in dual)
        assert fallback_timestamp(since) < lowest
        report = migrate(config_for(old_config, tmp_path), migration(ks, dual_writes_since=since))
        assert report.fallback_timestamp == fallback_timestamp(since) < lowest
        after = [r.w for r in target_session.execute(f"SELECT writetime(st) AS w FROM {ks}.t")]
        assert sorted(after) == sorted(dual), "the copy changed no element a dual write made"
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        cluster.shutdown()


def test_the_demo_migrates_from_a_4_1_origin(old_origin, sandbox, tmp_path):
    """`zdm demo --origin-version 4.1.10` (on the 4.1 node this run already has)."""
    from typer.testing import CliRunner

    from zdm.cli.main import app

    cfg = tmp_path / "zdm.yaml"
    cfg.write_text(f"target: {{port: {sandbox.target_port}}}\n"
                   f"proxy: {{listen_port: {free_port()}, metrics_port: {free_port()}}}\nstate_dir: state\n")
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, [
        "demo", "--config", str(cfg), "--origin-version", "4.1.10",
        "--origin-port", str(old_origin.port), "--rows", "400", "--rate", "60"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "(Cassandra 4.1.10) and target" in out and "(Cassandra 5.0.8)" in out
    assert "except tags: origin cannot read its elements' writetimes" in out
    assert "tags by contents" in out
    assert "No downtime, no lost write" in out
    assert "Stopped the Cassandra" not in out, "a node that already ran is left running"
