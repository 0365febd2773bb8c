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
from zdm.phases.divergences import DivergenceLog


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
