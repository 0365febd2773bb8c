"""A proxy instance with two worker processes (`zdm proxy start`, as an operator runs it):
connections spread over the workers, prepared statements across them, routing changes that
reach every worker before the instance acknowledges them, counters summed, the connection
limit, and SIGTERM draining every worker."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid

import pytest
from typer.testing import CliRunner

from tests.support.harness import FaultyRelay
from tests.support.net import free_port, start_proxy_process
from tests.support.rawcql import RawClient
from zdm.cli.main import app
from zdm.cql import messages as m
from zdm.cql.constants import ErrorCode, Opcode, ResultKind
from zdm.state import FileStateStore

runner = CliRunner()


def zdm(config, *args, expect=0):
    result = runner.invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == expect, f"zdm {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.output


def write_config(path, origin_port, target_port, port, ks, **proxy):
    extra = "".join(f", {k}: {v}" for k, v in proxy.items())
    path.write_text(f"""
origin: {{port: {origin_port}}}
target: {{port: {target_port}}}
proxy: {{listen_port: {port}, metrics_port: {free_port()}, workers: 2{extra}}}
scope: {{keyspaces: [{ks}]}}
state_dir: state
""")
    return path


def stop(proc):
    proc.terminate()
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture()
def table(origin_session, target_session):
    ks = "w_" + uuid.uuid4().hex[:8]
    for s in (origin_session, target_session):
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    yield ks
    for s in (origin_session, target_session):
        s.execute(f"DROP KEYSPACE IF EXISTS {ks}")


@pytest.fixture()
def instance(tmp_path, zdm_config, table):
    port = free_port()
    config = write_config(tmp_path / "zdm.yaml", zdm_config.origin.port, zdm_config.target.port,
                          port, table)
    proc = start_proxy_process(config, port)
    yield config, port, table
    assert stop(proc) == 0


def record(config):
    (rec,) = FileStateStore(config.parent / "state").proxy_records().values()
    return rec


def wait_for(condition, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def two_clients(port):
    """Two connections, which the instance gives to its two workers (fewest connections first)."""
    clients = [RawClient(port), RawClient(port)]
    for c in clients:
        assert c.startup().opcode == Opcode.READY
    return clients


def test_a_statement_prepared_through_one_worker_is_prepared_again_through_the_other(instance,
                                                                                    origin_session,
                                                                                    target_session):
    config, port, ks = instance
    first, second = two_clients(port)
    insert = f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)"
    prepared = first.prepare(insert)
    pid = m.decode_prepared_result(prepared.body, 4).prepared_id
    assert first.execute(pid, [b"\x00\x00\x00\x01", b"one"]).opcode == Opcode.RESULT
    answer = second.execute(pid, [b"\x00\x00\x00\x02", b"two"])  # the other worker never saw it
    info = m.decode_error(answer.body)
    assert info.code == ErrorCode.UNPREPARED and info.unprepared_id == pid
    again = m.decode_prepared_result(second.prepare(insert).body, 4).prepared_id
    assert again == pid  # as a driver does: prepare through this connection, same id
    assert second.execute(pid, [b"\x00\x00\x00\x02", b"two"]).opcode == Opcode.RESULT
    for s in (origin_session, target_session):
        assert sorted(tuple(r) for r in s.execute(f"SELECT k, v FROM {ks}.t")) == [(1, "one"), (2, "two")]
    counters = wait_for(lambda: record(config).get("counters", {}).get("unknown_prepared"),
                        what="the summed counters")
    assert counters == 1


def test_the_driver_keeps_its_prepared_statements_across_workers(instance, origin_session,
                                                                target_session):
    """Sessions of one driver Cluster, one connection each, spread over both workers: the
    statements are prepared through one, and the other worker's UNPREPARED is recovered by the
    driver."""
    from tests.support.net import driver_cluster

    config, port, ks = instance
    cluster = driver_cluster(port, 4)
    sessions = [cluster.connect() for _ in range(4)]
    insert = sessions[0].prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
    select = sessions[0].prepare(f"SELECT v FROM {ks}.t WHERE k = ?")
    for k in range(40):
        sessions[k % 4].execute(insert, (k, f"v{k}"))
        assert sessions[(k + 1) % 4].execute(select, (k,)).one().v == f"v{k}"
    cluster.shutdown()
    for s in (origin_session, target_session):
        assert s.execute(f"SELECT count(*) FROM {ks}.t").one()[0] == 40
    counters = wait_for(lambda: record(config).get("counters", {}).get("executes", 0) >= 80 and
                        record(config)["counters"], what="the summed counters")
    assert 1 <= counters["unknown_prepared"] <= 2  # once per statement and worker that lacked it


def test_each_worker_records_lwt_divergences_under_the_primary_key_the_instance_read(instance, origin_session,
                                                                                    target_session):
    """The instance reads origin's primary keys and hands them to its worker processes: an
    LWT divergence through either worker names the row by its key, never by the IF value."""
    from zdm.state.divergences import DivergenceLog

    config, port, ks = instance
    for k in (1, 2):
        origin_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES ({k}, 'old')")
        target_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES ({k}, 'other')")
    first, second = two_clients(port)
    pid = m.decode_prepared_result(first.prepare(f"UPDATE {ks}.t SET v = 'new' WHERE k = 1 IF v = ?").body,
                                   4).prepared_id
    assert first.execute(pid, [b"old"]).opcode == Opcode.RESULT
    assert second.query(f"UPDATE {ks}.t SET v = 'new' WHERE k = 2 IF v = 'old'").opcode == Opcode.RESULT
    log = DivergenceLog(config.parent / "state")
    records = wait_for(lambda: len(p := log.pending()) == 2 and p, what="a record from each worker")
    assert len({r["proxy"] for r in records}) == 2  # one per worker process
    keys = sorted((r["key"] for r in records), key=lambda key: key["columns"]["k"][0]["cql"])
    assert [(key["columns"], key["partition_key"]) for key in keys] == [
        ({"k": [{"cql": "1"}]}, ["k"]), ({"k": [{"cql": "2"}]}, ["k"])]
    for c in (first, second):
        c.close()


def test_status_sums_the_workers(instance):
    config, port, _ = instance
    clients = two_clients(port)
    rec = wait_for(lambda: (r := record(config)).get("client_connections") == 2 and r,
                   what="the instance to report both connections")
    assert rec["workers"] == 2
    status = json.loads(zdm(config, "status", "--json"))
    (proxy,) = status["proxies"]
    assert (proxy["workers"], proxy["client_connections"]) == (2, 2)
    # live figures: traffic through both workers shows as requests/s and p99 per cluster
    deadline = time.monotonic() + 15
    while True:
        for c in clients:
            c.query("SELECT keyspace_name FROM system_schema.keyspaces")
        live = json.loads(zdm(config, "status", "--json"))["proxies"][0]["live"]
        if live and live["requests_per_s"] > 0 and live["p99_ms"]["origin"] is not None:
            break
        assert time.monotonic() < deadline, f"no live figures: {live}"
    assert live["error_rate"] == 0 and live["divergences"] == 0
    assert "req/s" in zdm(config, "status")
    for c in clients:
        c.close()


def test_a_routing_change_reaches_every_worker_before_the_advance_returns(instance, origin_session,
                                                                          target_session):
    config, port, ks = instance
    clients = two_clients(port)
    origin_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, 'copied')")
    zdm(config, "preflight")
    time.sleep(1.5)  # the instance publishes its health about once a second
    zdm(config, "phase", "advance")
    zdm(config, "phase", "advance", "--confirm-clients-on-proxy")
    zdm(config, "migrate")
    zdm(config, "validate")
    target_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (2, 'only on target')")
    read = f"SELECT v FROM {ks}.t WHERE k = 2"

    def rows(client):
        return m.decode_rows(client.query(read).body, 4).rows

    assert [rows(c) for c in clients] == [[], []]
    zdm(config, "phase", "advance", "--to", "4", "--skip-async-reads")
    assert [rows(c) for c in clients] == [[[b"only on target"]]] * 2  # both workers, at once
    zdm(config, "rollback", "--to", "2")
    assert [rows(c) for c in clients] == [[], []]


def test_the_connection_limit_holds_across_workers(tmp_path, zdm_config, table):
    port = free_port()
    config = write_config(tmp_path / "zdm.yaml", zdm_config.origin.port, zdm_config.target.port,
                          port, table, max_client_connections=2)
    proc = start_proxy_process(config, port)
    try:  # the start-up probe's connection must have ended first
        wait_for(lambda: record(config).get("client_connections") == 0, what="no connections")
        clients = two_clients(port)
        with RawClient(port) as third:
            info = m.decode_error(third.startup().body)
            assert info.code == ErrorCode.OVERLOADED and "max_client_connections" in info.message
        assert all(c.query("SELECT keyspace_name FROM system_schema.keyspaces").opcode == Opcode.RESULT
                   for c in clients)
        clients.pop().close()
        wait_for(lambda: record(config).get("client_connections") == 1, what="the closed client")
        with RawClient(port) as fourth:
            assert fourth.startup().opcode == Opcode.READY
    finally:
        assert stop(proc) == 0


def test_sigterm_drains_every_worker(tmp_path, zdm_config, table, origin_session):
    relay = FaultyRelay(("127.0.0.1", zdm_config.target.port))
    port = free_port()
    config = write_config(tmp_path / "zdm.yaml", zdm_config.origin.port, relay.port, port, table,
                          request_timeout_s=30)
    proc = start_proxy_process(config, port)
    try:
        clients = two_clients(port)
        relay.stalled = True
        streams = [c.send(Opcode.QUERY, m.encode_query(f"INSERT INTO {table}.t (k, v) VALUES ({i}, 'x')"))
                   for i, c in enumerate(clients)]
        time.sleep(0.5)
        proc.terminate()
        time.sleep(1.0)
        for c in clients:  # new requests, on either worker, are refused while draining
            answer = c.query("SELECT v FROM system_schema.keyspaces")
            assert m.decode_error(answer.body).code == ErrorCode.OVERLOADED
        threading.Timer(0.5, lambda: setattr(relay, "stalled", False)).start()
        for c, stream in zip(clients, streams):  # the in-flight writes complete
            answer = c.receive()
            assert answer.stream == stream and m.result_kind(answer.body) == ResultKind.VOID
        assert proc.wait(30) == 0
        assert {r.k for r in origin_session.execute(f"SELECT k FROM {table}.t")} == {0, 1}
    finally:
        if proc.poll() is None:
            proc.kill()
        relay.stop()
