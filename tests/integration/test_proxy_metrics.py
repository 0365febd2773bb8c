"""The proxy as a production service: Prometheus metrics summed over the workers, moved by
exactly what a known workload did; readiness that follows the clusters; the Grafana
dashboard names only metrics the proxy exports."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.harness import FaultyRelay, RunningProxy
from tests.support.net import free_port, start_proxy_process
from tests.support.rawcql import RawClient
from zdm.config import ClusterConfig, ProxyConfig
from zdm.cql import messages as m
from zdm.cql.constants import Opcode

ROOT = Path(__file__).resolve().parents[2]


def scrape(port: int) -> dict[str, float]:
    """name{labels} -> value, from a real scrape."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def total(metrics: dict[str, float], name: str, **labels) -> float:
    """The sum of ``name`` over the series whose labels include ``labels``."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in metrics.items()
               if (k == name or k.startswith(name + "{")) and all(w in k for w in want))


def http_status(url: str) -> tuple[int, dict | str]:
    """The status and the body (decoded when it is JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            status, kind, body = r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        status, kind, body = e.code, e.headers.get("Content-Type", ""), e.read()
    return status, json.loads(body) if "json" in kind else body.decode()


@pytest.fixture()
def table(origin_session, target_session):
    ks = "m_" + uuid.uuid4().hex[:8]
    for s in (origin_session, target_session):
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    origin_session.execute(f"CREATE TABLE {ks}.only_origin (k int PRIMARY KEY)")
    yield ks
    for s in (origin_session, target_session):
        s.execute(f"DROP KEYSPACE IF EXISTS {ks}")


def test_counters_move_by_exactly_what_the_workload_did(tmp_path, zdm_config, table):
    port, metrics_port = free_port(), free_port()
    config = tmp_path / "zdm.yaml"
    config.write_text(f"origin: {{port: {zdm_config.origin.port}}}\ntarget: {{port: {zdm_config.target.port}}}\n"
                      f"proxy: {{listen_port: {port}, metrics_port: {metrics_port}, workers: 2}}\n"
                      "state_dir: state\n")
    proc = start_proxy_process(config, port)
    try:
        clients = [RawClient(port), RawClient(port)]  # one per worker: the scrape sums both
        for c in clients:
            assert c.startup().opcode == Opcode.READY
        ids = [m.decode_prepared_result(c.prepare(f"INSERT INTO {table}.t (k, v) VALUES (?, ?)").body, 4).prepared_id
               for c in clients]
        reads = [m.decode_prepared_result(c.prepare(f"SELECT v FROM {table}.t WHERE k = ?").body, 4).prepared_id
                 for c in clients]
        before = scrape(metrics_port)
        for i in range(10):  # 10 writes, 7 reads, 3 writes target refuses
            c = i % 2
            assert clients[c].execute(ids[c], [i.to_bytes(4, "big"), b"v"]).opcode == Opcode.RESULT
        for i in range(7):
            assert clients[i % 2].execute(reads[i % 2], [i.to_bytes(4, "big")]).opcode == Opcode.RESULT
        for i in range(3):
            assert clients[0].query(f"INSERT INTO {table}.only_origin (k) VALUES ({i})").opcode == Opcode.ERROR
        after = scrape(metrics_port)

        def moved(name, **labels):
            return total(after, name, **labels) - total(before, name, **labels)

        assert moved("zdm_proxy_request_duration_seconds_count", type="writes") == 13
        assert moved("zdm_proxy_request_duration_seconds_count", type="reads_origin") == 7
        assert moved("zdm_proxy_request_duration_seconds_count", type="reads_target") == 0
        assert moved("zdm_origin_request_duration_seconds_count") == 20
        assert moved("zdm_target_request_duration_seconds_count") == 13
        assert moved("zdm_proxy_failed_writes_total", failed_on="target") == 3
        assert moved("zdm_proxy_failed_writes_total", failed_on="origin") == 0
        assert moved("zdm_target_requests_failed_total", error="other") == 3
        assert moved("zdm_proxy_failed_reads_total") == 0
        assert total(after, "zdm_client_connections_total") == 2
        assert total(after, "zdm_workers") == 2
        assert total(after, "zdm_pscache_entries_total") == 4  # 2 statements in each worker
        assert total(after, "zdm_routing_primary", cluster="origin") == 1
        assert total(after, "zdm_cluster_connected", cluster="target") == 1
        assert total(after, "zdm_proxy_inflight_requests_total") == 0
        for c in clients:
            c.close()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_readiness_follows_the_clusters(zdm_config):
    relay = FaultyRelay(("127.0.0.1", zdm_config.target.port))
    config = dataclasses.replace(zdm_config, target=ClusterConfig(port=relay.port),
                                 proxy=ProxyConfig(listen_port=free_port(), heartbeat_interval_s=0.3,
                                                   request_timeout_s=1.0))
    proxy = RunningProxy(config)
    url = f"http://127.0.0.1:{proxy.server.metrics_port}/health"
    try:
        assert http_status(url + "/readiness") == (200, {
            "Status": "UP", "OriginStatus": {"Addr": f"127.0.0.1:{zdm_config.origin.port}", "Status": "UP"},
            "TargetStatus": {"Addr": f"127.0.0.1:{relay.port}", "Status": "UP"}})
        relay.stalled = True  # target is a black hole: the heartbeat goes unanswered
        deadline = time.monotonic() + 20
        while (status := http_status(url + "/readiness"))[0] == 200:
            assert time.monotonic() < deadline, "readiness never went down"
            time.sleep(0.2)
        assert status[0] == 503 and status[1]["Status"] == "DOWN"
        assert status[1]["TargetStatus"]["Status"] == "DOWN" and "target" in status[1]["Reason"]
        assert http_status(url + "/liveness") == (200, "OK")  # alive all the same
        relay.stalled = False
        deadline = time.monotonic() + 20
        while http_status(url + "/readiness")[0] != 200:
            assert time.monotonic() < deadline, "readiness never came back"
            time.sleep(0.2)
    finally:
        relay.stalled = False
        proxy.stop()
        relay.stop()


def declared(port: int) -> set[str]:
    """The metric names a scrape declares (# TYPE), counters with their _total."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            out.add(name + "_total" if kind == "counter" and not name.endswith("_total") else name)
    return out


def test_the_dashboard_names_only_metrics_the_proxy_exports(zdm_config, tmp_path):
    from zdm.state import FileStateStore
    from zdm.proxy.metrics import NAMES

    proxy = RunningProxy(dataclasses.replace(zdm_config, state_dir=tmp_path, proxy=ProxyConfig(
        listen_port=free_port())), store=FileStateStore(tmp_path), name="dash")
    try:
        with RawClient(proxy.port) as client:  # some traffic, so the labelled series exist
            client.startup()
            client.query("SELECT keyspace_name FROM system_schema.keyspaces")
        exported = declared(proxy.server.metrics_port)
    finally:
        proxy.stop()
    assert {f"zdm_{n}" for n in NAMES} == exported  # the module's list is what a scrape declares
    dashboard = json.loads((ROOT / "docs" / "grafana" / "zdm-proxy.json").read_text())
    panels = [p for row in dashboard["panels"] for p in [row, *row.get("panels", [])]]
    queries = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert len(queries) >= 12
    used = set()
    for expr in queries:
        names = set(re.findall(r"\b(zdm_[a-z0-9_]+?)(?:_bucket|_count|_sum)?\b(?=[{\[\s)]|$)", expr))
        assert names, expr
        used |= names
    unknown = sorted(used - exported)
    assert unknown == [], f"the dashboard queries metrics the proxy does not export: {unknown}"
    rows = [p["title"] for p in dashboard["panels"] if p.get("type") == "row"]
    assert rows == ["Traffic", "Latency by cluster", "Errors by side", "Divergence by table", "Phase"]


def test_json_logs_name_each_clients_connection(tmp_path, zdm_config):
    import socket

    port = free_port()
    config = tmp_path / "zdm.yaml"
    config.write_text(f"origin: {{port: {zdm_config.origin.port}}}\ntarget: {{port: {zdm_config.target.port}}}\n"
                      f"proxy: {{listen_port: {port}, metrics_port: {free_port()}, workers: 2, log_format: json}}\n"
                      "state_dir: state\n")
    proc = start_proxy_process(config, port)
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            peer = "%s:%d" % sock.getsockname()
            sock.sendall(b"\x04\x00\x00\x01\x01\x00\x00\x00\x02\xff\xff")  # a STARTUP that is garbage
            sock.recv(1024)
        time.sleep(0.5)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    (about,) = [r for r in records if r.get("peer") == peer]
    assert about["level"] == "warning" and "malformed STARTUP" in about["message"]
    assert about["worker"] in ("w0", "w1") and about["conn"].startswith(about["worker"] + "-")
    assert any("draining" in r["message"] for r in records)  # every line is JSON, the instance's too
