"""Dual writes that stay identical, and divergence that is tracked, against the real sandbox:
lightweight transactions the clusters decide differently are recorded durably with their
keys; async reads are compared per table."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from tests.support.harness import RunningProxy
from tests.support.net import driver_cluster, free_port
from zdm.config import ProxyConfig
from zdm.state.divergences import DivergenceLog


@pytest.fixture()
def table(origin_session, target_session):
    ks = "c_" + uuid.uuid4().hex[:8]
    for s in (origin_session, target_session):
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute(f"CREATE TABLE {ks}.t (k int, c text, v text, PRIMARY KEY (k, c))")
    yield ks
    for s in (origin_session, target_session):
        s.execute(f"DROP KEYSPACE IF EXISTS {ks}")


@pytest.fixture()
def proxied(zdm_config, tmp_path):
    config = dataclasses.replace(zdm_config, state_dir=tmp_path / "state",
                                 proxy=ProxyConfig(listen_port=free_port()))
    proxy = RunningProxy(config)
    cluster = driver_cluster(proxy.port, 4)
    yield config, proxy, cluster.connect()
    cluster.shutdown()
    proxy.stop()


def wait_for(condition, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def test_lwts_the_clusters_decide_differently_are_recorded_with_their_keys(proxied, table,
                                                                           origin_session):
    config, proxy, session = proxied
    origin_session.execute(f"INSERT INTO {table}.t (k, c, v) VALUES (1, 'a', 'only on origin')")
    # on origin the row exists (not applied); on target it does not (applied)
    result = session.execute(f"INSERT INTO {table}.t (k, c, v) VALUES (1, 'a', 'new') IF NOT EXISTS")
    assert result.one().applied is False  # the client gets the primary's result
    update = session.prepare(f"UPDATE {table}.t SET v = ? WHERE k = ? AND c = ? IF v = ?")
    assert session.execute(update, ("changed", 1, "a", "only on origin")).one().applied is True
    same = session.execute(f"INSERT INTO {table}.t (k, c, v) VALUES (2, 'b', 'x') IF NOT EXISTS")
    assert same.one().applied is True  # applied on both: no divergence

    log = DivergenceLog(config.state_dir)
    records = wait_for(lambda: len(log.pending()) == 2 and log.pending(), what="two durable records")
    assert {(r["kind"], r["keyspace"], r["table"], r["source"]) for r in records} == {
        ("lwt", table, "t", "origin")}
    text, prepared = sorted(records, key=lambda r: "type" in str(r["key"]))
    assert text["key"]["columns"] == {"k": [{"cql": "1"}], "c": [{"cql": "'a'"}], "v": [{"cql": "'new'"}]}
    assert prepared["key"]["columns"]["k"] == [{"type": "int", "hex": "00000001"}]
    assert prepared["key"]["columns"]["c"] == [{"type": "text", "hex": "61"}]
    assert log.summary() == {f"{table}.t": {"lwt": 2}}
    stats = proxy.server.stats
    assert stats.lwt_divergences == 2 and stats.tables[f"{table}.t"].lwt_divergences == 2


class Writer:
    """An application thread writing verifiable rows through the proxy, one at a time."""

    def __init__(self, session, table, *, interval=0.02):
        import threading

        self.insert = session.prepare(f"INSERT INTO {table}.t (k, c, v) VALUES (?, ?, ?)")
        self.session = session
        self.acknowledged: list[int] = []
        self.errors: list[str] = []
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        k = 0
        while not self._stop.is_set():
            k += 1
            try:
                self.session.execute(self.insert, (k, "w", f"value-{k}"), timeout=30)
                self.acknowledged.append(k)
            except Exception as exc:  # noqa: BLE001 - the test counts what the client saw
                self.errors.append(f"{k}: {exc}")
            time.sleep(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join(60)


def relayed_proxy(zdm_config, tmp_path, mode):
    from tests.support.harness import FaultyRelay
    from zdm.config import ClusterConfig

    relay = FaultyRelay(("127.0.0.1", zdm_config.target.port))
    config = dataclasses.replace(
        zdm_config, state_dir=tmp_path / "state", target=ClusterConfig(port=relay.port),
        proxy=ProxyConfig(listen_port=free_port(), request_timeout_s=3, secondary_write_failure=mode,
                          secondary_write_timeout_s=1.0))
    return config, relay, RunningProxy(config)


def rows_with_writetime(session, table):
    return {r.k: (r.v, r.w) for r in session.execute(f"SELECT k, v, writetime(v) AS w FROM {table}.t")}


@pytest.mark.parametrize("mode", ["record", "fail"])
def test_a_target_outage_under_a_writing_application(zdm_config, tmp_path, table, mode,
                                                      origin_session, target_session):
    config, relay, proxy = relayed_proxy(zdm_config, tmp_path, mode)
    cluster = driver_cluster(proxy.port, 4, request_timeout=30)
    try:
        writer = Writer(cluster.connect(), table)
        time.sleep(1.5)
        relay.stalled = True  # target is a black hole: nothing comes back
        time.sleep(10)
        relay.stalled = False
        time.sleep(1.5)
        writer.stop()
        origin = rows_with_writetime(origin_session, table)
        assert writer.acknowledged and set(writer.acknowledged) <= set(origin)  # no write lost
        pending = DivergenceLog(config.state_dir).pending()
        if mode == "record":
            assert writer.errors == []  # zero client-visible errors
            assert pending and {r["kind"] for r in pending} == {"secondary_write"}
            for r in pending:  # each record carries the key and the writetime used on origin
                k = int(r["key"]["columns"]["k"][0]["hex"], 16)
                assert origin[k][1] == r["writetime"]
            target = rows_with_writetime(target_session, table)
            recorded = {int(r["key"]["columns"]["k"][0]["hex"], 16) for r in pending}
            # what target lacks (or got late), the records name
            assert set(writer.acknowledged) - set(target) <= recorded
            from zdm.validate import repair

            report = repair(config)  # while nothing else writes; see the test below for live writes
            assert report.pending == [] and report.resolved == len(pending)
            assert DivergenceLog(config.state_dir).pending() == []
            target = rows_with_writetime(target_session, table)
            for k in writer.acknowledged:  # every acknowledged write on target: value and writetime
                assert target[k] == origin[k], k
        else:
            assert writer.errors  # the client saw the outage
            assert pending == []
            target = rows_with_writetime(target_session, table)
            assert set(writer.acknowledged) <= set(target)  # fail mode: acknowledged = on both
    finally:
        cluster.shutdown()
        proxy.stop()
        relay.stop()


@pytest.fixture()
def replacing(zdm_config, tmp_path, origin_session, target_session):
    ks = "f_" + uuid.uuid4().hex[:8]
    for s in (origin_session, target_session):
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute(f"CREATE TABLE {ks}.t (k timeuuid PRIMARY KEY, v text, u uuid, ts timestamp)")
    config = dataclasses.replace(zdm_config, state_dir=tmp_path / "state",
                                 proxy=ProxyConfig(listen_port=free_port(), replace_cql_functions=True))
    proxy = RunningProxy(config)
    cluster = driver_cluster(proxy.port, 4)
    yield ks, cluster.connect()
    cluster.shutdown()
    proxy.stop()
    for s in (origin_session, target_session):
        s.execute(f"DROP KEYSPACE IF EXISTS {ks}")


def both_rows(origin_session, target_session, ks):
    return [sorted((r.k, r.v, r.u, r.ts) for r in s.execute(f"SELECT k, v, u, ts FROM {ks}.t"))
            for s in (origin_session, target_session)]


def test_now_in_a_primary_key_is_the_same_row_on_both_clusters(replacing, origin_session, target_session):
    from cassandra.query import BatchStatement, SimpleStatement

    ks, session = replacing
    session.execute(f"INSERT INTO {ks}.t (k, v, u, ts) VALUES (now(), 'query', uuid(), currentTimestamp())")
    insert = session.prepare(f"INSERT INTO {ks}.t (k, v, u) VALUES (now(), ?, uuid())")
    assert [c.name for c in insert.column_metadata] == ["v"]  # as without the proxy
    for n in range(3):
        session.execute(insert, (f"prepared {n}",))
    batch = BatchStatement()
    batch.add(insert, ("batched prepared",))
    batch.add(SimpleStatement(f"INSERT INTO {ks}.t (k, v) VALUES (currentTimeUUID(), 'batched query')"))
    session.execute(batch)
    origin, target = both_rows(origin_session, target_session, ks)
    assert len(origin) == 6 and origin == target  # the same keys, uuids and timestamps
    assert all(u is not None for k, v, u, ts in origin if v != "batched query")
    # reads are never rewritten: origin's own now() answers
    assert session.execute(f"SELECT now() AS n FROM {ks}.t LIMIT 1").one().n is not None


def test_validate_rechecks_recorded_rows_first_and_autocorrect_repairs_them(proxied, table, origin_session,
                                                                             target_session):
    from zdm.scope import Scope
    from zdm.validate import ValidationParams, ValidationSettings, validate
    from zdm.ranges.context import RunSettings

    config, proxy, session = proxied
    origin_session.execute(f"INSERT INTO {table}.t (k, c, v) VALUES (7, 'x', 'origin')")
    session.execute(f"INSERT INTO {table}.t (k, c, v) VALUES (7, 'x', 'proxy') IF NOT EXISTS")
    log = DivergenceLog(config.state_dir)
    wait_for(lambda: log.pending(), what="the LWT record")
    settings = ValidationSettings(scope=Scope(keyspaces=(table,)), run=RunSettings(workers=0),
                                  record_evidence=False)
    report = validate(config, settings)
    assert not report.clean and [c.key for c in report.recorded.pending] == [
        f"{table}.t: k=7, c='x', v='proxy'"]
    assert log.pending()  # a plain validation only re-checks
    fixed = validate(config, dataclasses.replace(settings, params=ValidationParams(autocorrect=True)))
    assert fixed.recorded.resolved == 1 and fixed.clean
    assert log.pending() == []
    assert target_session.execute(f"SELECT v FROM {table}.t WHERE k = 7 AND c = 'x'").one().v == "origin"
