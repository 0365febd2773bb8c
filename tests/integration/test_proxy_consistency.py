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
def proxied(zdm_config, tmp_path, table):
    """A proxy started once ``table`` exists: it knows the table's primary key from the start."""
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
    # the row's primary key, exactly: not the values written, not the IF clause's
    assert text["key"]["columns"] == {"k": [{"cql": "1"}], "c": [{"cql": "'a'"}]}
    assert prepared["key"]["columns"] == {"k": [{"type": "int", "hex": "00000001"}],
                                          "c": [{"type": "text", "hex": "61"}]}
    assert prepared["key"]["partition_key"] == ["k"] and prepared["key"]["clustering_key"] == ["c"]
    assert log.summary() == {f"{table}.t": {"lwt": 2}}
    stats = proxy.server.stats
    assert stats.lwt_divergences == 2 and stats.tables[f"{table}.t"].lwt_divergences == 2


def test_an_lwt_divergence_names_its_row_and_repair_fixes_that_row(proxied, table, origin_session,
                                                                   target_session):
    import urllib.request

    from zdm.validate import repair

    config, proxy, session = proxied
    t = f"{table}.t"
    # target's row differs before the LWT; so does a row nobody touches through the proxy
    origin_session.execute(f"INSERT INTO {t} (k, c, v) VALUES (7, 'a', 'same')")
    target_session.execute(f"INSERT INTO {t} (k, c, v) VALUES (7, 'a', 'differs')")
    origin_session.execute(f"INSERT INTO {t} (k, c, v) VALUES (8, 'b', 'on origin')")
    target_session.execute(f"INSERT INTO {t} (k, c, v) VALUES (8, 'b', 'on target')")
    origin_session.execute(f"INSERT INTO {t} (k, c, v) VALUES (100, 'z', 'only on origin')")

    # literal key in WHERE, a bound value in IF: applied on origin only
    update = session.prepare(f"UPDATE {t} SET v = 'new' WHERE k = 7 AND c = 'a' IF v = ?")
    assert session.execute(update, ("same",)).one().applied is True
    # both decide "not applied", each showing its own current value: no divergence
    bound = session.prepare(f"UPDATE {t} SET v = 'x' WHERE k = ? AND c = ? IF v = ?")
    assert session.execute(bound, (8, "b", "neither")).one().applied is False

    log = DivergenceLog(config.state_dir)
    (record,) = wait_for(lambda: log.pending(), what="the LWT record")
    assert record["key"] == {"keyspace": table, "table": "t", "columns": {"k": [{"cql": "7"}], "c": [{"cql": "'a'"}]},
                             "partition_key": ["k"], "clustering_key": ["c"]}
    assert record["detail"] == "applied on origin: yes, on target: no"
    stats = proxy.server.stats
    assert (stats.lwt_divergences, stats.lwt_same_decision_different_values) == (1, 1)
    assert stats.tables[t].lwt_same_decision_different_values == 1
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{proxy.server.metrics_port}/metrics", timeout=10).read()
    assert (f'zdm_lwt_same_decision_different_values_total{{keyspace="{table}",table="t"}} 1.0'
            in scrape.decode())
    time.sleep(1.5)  # nothing else comes: the second LWT was counted, not recorded
    assert len(log.pending()) == 1

    report = repair(config)
    assert [(c.key, c.state) for c in report.checks] == [(f"{t}: k=7, c='a'", "fixed")]
    assert log.pending() == []
    assert target_session.execute(f"SELECT v FROM {t} WHERE k = 7 AND c = 'a'").one().v == "new"
    # the record named one partition: repair compared that one, not the table
    assert target_session.execute(f"SELECT v FROM {t} WHERE k = 100").one() is None
    assert target_session.execute(f"SELECT v FROM {t} WHERE k = 8").one().v == "on target"


def test_a_table_created_while_the_proxy_runs_is_keyed_by_its_schema(proxied, table, origin_session,
                                                                       target_session):
    """Origin's SCHEMA_CHANGE event makes the proxy read the new table's key; an LWT on a static
    column that pins only the partition is recorded under the partition key."""
    from zdm.proxy.schema import TableKey, key_of
    from zdm.validate import repair

    config, proxy, session = proxied
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {table}.s (p int, q int, st int static, v int, PRIMARY KEY (p, q))")
    plane = proxy.server.workers[0].plane
    wait_for(lambda: key_of(plane.ctx.schema, table, "s"), what="the new table's key in the worker")
    assert key_of(plane.ctx.schema, table, "s") == TableKey(("p",), ("q",))
    origin_session.execute(f"INSERT INTO {table}.s (p, q, st, v) VALUES (1, 1, 10, 1)")
    target_session.execute(f"INSERT INTO {table}.s (p, q, st, v) VALUES (1, 1, 20, 1)")
    update = session.prepare(f"UPDATE {table}.s SET st = ? WHERE p = ? IF st = ?")
    assert session.execute(update, (11, 1, 10)).one().applied is True

    log = DivergenceLog(config.state_dir)
    (record,) = wait_for(lambda: log.pending(), what="the LWT record")
    assert record["key"] == {"keyspace": table, "table": "s", "columns": {"p": [{"type": "int", "hex": "00000001"}]},
                             "partition_key": ["p"], "clustering_key": ["q"]}
    report = repair(config)
    assert [(c.key, c.state) for c in report.checks] == [(f"{table}.s: p=1", "fixed")]
    assert target_session.execute(f"SELECT st FROM {table}.s WHERE p = 1").one().st == 11


def test_repair_applies_a_missed_delete_by_its_key_and_never_wider(zdm_config, tmp_path, table, origin_session,
                                                                    target_session):
    """Records of deletes target missed, keyed as the proxy keys them: the row delete is applied
    on target at its writetime; a range delete's key (its partition) is wider than what it
    removed, so repair leaves it to a person rather than deleting the partition."""
    from zdm.state.divergences import new_record
    from zdm.proxy import keys
    from zdm.proxy.schema import TableKey
    from zdm.validate import repair

    config = dataclasses.replace(zdm_config, state_dir=tmp_path / "state")
    t = f"{table}.t"
    for s in (origin_session, target_session):
        for k, c in ((1, "a"), (1, "b"), (2, "b"), (2, "n"), (2, "z")):
            s.execute(f"INSERT INTO {t} (k, c, v) VALUES ({k}, '{c}', 'x') USING TIMESTAMP 1000")
    deletes = [f"DELETE FROM {t} USING TIMESTAMP 2000 WHERE k = 1 AND c = 'a'",
               f"DELETE FROM {t} USING TIMESTAMP 2000 WHERE k = 2 AND c > 'm'"]
    writer = DivergenceLog(config.state_dir).writer("test")
    for statement in deletes:
        origin_session.execute(statement)  # target missed them
        key = keys.from_text(statement, primary_key=TableKey(("k",), ("c",)))
        writer.append(new_record("secondary_write", table, "t", key.to_json(), source="origin", proxy="test",
                                 writetime=2000, detail="target: no answer"))
    writer.close()
    row_delete, range_delete = sorted(DivergenceLog(config.state_dir).pending(), key=lambda r: r["key"]["columns"]["k"][0]["cql"])
    assert "exact" not in row_delete["key"] and range_delete["key"]["exact"] is False

    report = repair(config)
    states = {c.key: (c.state, c.detail) for c in report.checks}
    assert states[f"{t}: k=1, c='a'"][0] == "fixed"
    state, detail = states[f"{t}: k=2"]
    assert state == "differs" and "wider than what it removed: not applied" in detail
    assert [r.c for r in target_session.execute(f"SELECT c FROM {t} WHERE k = 1")] == ["b"]
    # the partition was not deleted: b, older than the delete but outside its range, is still there
    assert [r.c for r in target_session.execute(f"SELECT c FROM {t} WHERE k = 2")] == ["b", "n", "z"]
    assert [r["id"] for r in DivergenceLog(config.state_dir).pending()] == [range_delete["id"]]


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
    assert not report.clean and [c.key for c in report.recorded.pending] == [f"{table}.t: k=7, c='x'"]
    assert log.pending()  # a plain validation only re-checks
    fixed = validate(config, dataclasses.replace(settings, params=ValidationParams(autocorrect=True)))
    assert fixed.recorded.resolved == 1 and fixed.clean
    assert log.pending() == []
    assert target_session.execute(f"SELECT v FROM {table}.t WHERE k = 7 AND c = 'x'").one().v == "origin"
