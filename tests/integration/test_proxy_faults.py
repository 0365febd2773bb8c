"""Faults a real node won't produce on demand, staged with a TCP relay or raw sockets,
beside the real clusters: lost and stalled cluster connections, garbage from a client,
oversized frames, unsupported protocol versions, shutdown with requests in flight, and
two proxy instances forming the virtual topology."""

from __future__ import annotations

import dataclasses
import socket
import struct
import time

import pytest
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable

from tests.support.harness import FaultyRelay, RunningProxy
from tests.support.net import driver_cluster, free_port, start_proxy_process
from zdm.config import ClusterConfig, ProxyConfig


@pytest.fixture()
def ks(keyspace, origin_session, target_session):
    """The session's fresh keyspace, with table t on both clusters."""
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    return keyspace


def relayed_proxy(zdm_config, request_timeout_s: float):
    """A proxy whose target connections go through a fault-injecting relay."""
    relay = FaultyRelay(("127.0.0.1", zdm_config.target.port))
    config = dataclasses.replace(
        zdm_config, target=ClusterConfig(port=relay.port),
        proxy=ProxyConfig(listen_port=free_port(), request_timeout_s=request_timeout_s))
    proxy = RunningProxy(config)
    yield proxy, relay
    relay.stalled = False
    proxy.stop()
    relay.stop()


@pytest.fixture()
def relayed(zdm_config):
    yield from relayed_proxy(zdm_config, 1.5)


@pytest.fixture()
def relayed_patient(zdm_config):
    """As ``relayed``, with a request timeout longer than a stall."""
    yield from relayed_proxy(zdm_config, 20)


def raw_exchange(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send ``payload`` on a fresh socket; everything the proxy answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                return b"".join(chunks)
            chunks.append(data)
        raise AssertionError(f"the proxy did not close the connection; got {b''.join(chunks)!r}")


def error_of(answer: bytes) -> tuple[int, str]:
    """(code, message) of the ERROR frame at the start of ``answer``."""
    assert answer[4] == 0x00, f"not an ERROR frame: {answer!r}"
    code, length = struct.unpack(">iH", answer[9:15])
    return code, answer[15:15 + length].decode()


def test_lost_target_connection_fails_requests_and_client_recovers(relayed, ks, origin_session):
    proxy, relay = relayed
    cluster = driver_cluster(proxy.port, 4)
    session = cluster.connect()
    insert = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
    session.execute(insert, (1, "before"))
    relay.stalled = True
    future = session.execute_async(insert, (2, "in flight"))
    time.sleep(0.3)
    relay.cut()  # the target connection drops with the request pending
    with pytest.raises(Exception) as info:
        future.result()
    assert "lost" in str(info.value) or "closed" in str(info.value).lower() or \
        isinstance(info.value, (NoHostAvailable, OperationTimedOut))
    relay.stalled = False
    deadline = time.monotonic() + 30
    while True:  # the driver reconnects; the proxy opens new cluster connections
        try:
            session.execute(insert, (3, "after"))
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert origin_session.execute(f"SELECT v FROM {ks}.t WHERE k = 3").one().v == "after"
    # the proxy's own (control) connection to target was cut too, and comes back by itself
    from zdm.phases.model import Cluster
    deadline = time.monotonic() + 10
    while proxy.server.control.connections[Cluster.TARGET].closed:
        assert time.monotonic() < deadline, "control connection to target not restored"
        time.sleep(0.2)
    cluster.shutdown()


def test_stalled_cluster_gets_an_error_frame_not_silence(relayed, ks):
    proxy, relay = relayed
    cluster = driver_cluster(proxy.port, 5, request_timeout=30)
    session = cluster.connect()
    relay.stalled = True
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (9, 'x')")
    elapsed = time.monotonic() - started
    assert "no answer from target" in str(info.value)
    assert elapsed < 25  # the proxy's 1.5 s timeout answered, not the driver's 30 s one
    cluster.shutdown()


@pytest.fixture()
def plain_proxy(zdm_config):
    config = dataclasses.replace(zdm_config, proxy=ProxyConfig(listen_port=free_port(),
                                                              max_frame_bytes=64 * 1024))
    proxy = RunningProxy(config)
    yield proxy
    proxy.stop()


def test_garbage_from_a_client_ends_only_that_connection(plain_proxy):
    healthy = driver_cluster(plain_proxy.port, 4)
    session = healthy.connect()
    answer = raw_exchange(plain_proxy.port, b"\x04\x00\x00\x01\x07\xff\xff\xff\xf0garbage")
    code, message = error_of(answer)
    assert code == 0x000A and "exceeds the limit" in message
    answer = raw_exchange(plain_proxy.port, b"GET / HTTP/1.1\r\n\r\n")
    code, message = error_of(answer)
    assert code == 0x000A and "protocol version" in message
    assert session.execute("SELECT release_version FROM system.local").one() is not None
    healthy.shutdown()


@pytest.mark.parametrize("version", [1, 2, 0x41, 0x42, 6], ids=["v1", "v2", "dse-v1", "dse-v2", "v6"])
def test_unsupported_versions_are_told_to_downgrade(plain_proxy, version):
    if version < 3:
        options = struct.pack(">BBbBi", version, 0, 0, 0x05, 0)
    else:
        options = struct.pack(">BBhBi", version, 0, 0, 0x05, 0)
    answer = raw_exchange(plain_proxy.port, options)
    header = 8 if version < 3 else 9
    code, length = struct.unpack(">iH", answer[header:header + 6])
    assert code == 0x000A
    assert "unsupported protocol version" in answer[header + 6:header + 6 + length].decode().lower()


def test_oversized_frame_from_driver_ends_that_connection(plain_proxy, ks, origin_session):
    cluster = driver_cluster(plain_proxy.port, 4)
    session = cluster.connect()
    with pytest.raises(Exception):
        session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, %s)", ("x" * 100_000,))
    # the driver reconnects; normal requests still work
    deadline = time.monotonic() + 30
    while True:
        try:
            session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (2, 'small')")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert origin_session.execute(f"SELECT v FROM {ks}.t WHERE k = 1").one() is None
    cluster.shutdown()


def test_graceful_shutdown_drains_in_flight_and_refuses_new(relayed_patient, ks, origin_session):
    proxy, relay = relayed_patient
    cluster = driver_cluster(proxy.port, 4, request_timeout=30)
    session = cluster.connect()
    insert = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
    relay.stalled = True
    in_flight = session.execute_async(insert, (1, "in flight"))
    time.sleep(0.3)
    import asyncio
    done = asyncio.run_coroutine_threadsafe(proxy.server.shutdown(drain_timeout=15), proxy.thread.loop)
    time.sleep(0.3)
    with pytest.raises(Exception, match="shutting down"):
        session.execute(insert, (2, "new"))
    relay.stalled = False
    in_flight.result()  # the in-flight write completes
    done.result(20)
    assert origin_session.execute(f"SELECT v FROM {ks}.t WHERE k = 1").one().v == "in flight"
    assert origin_session.execute(f"SELECT v FROM {ks}.t WHERE k = 2").one() is None
    cluster.shutdown()


def test_two_instances_form_the_topology(zdm_config, ks, origin_session):
    ports = [free_port(), free_port()]
    instances = tuple(f"127.0.0.1:{p}" for p in ports)
    proxies = [RunningProxy(dataclasses.replace(
        zdm_config, proxy=ProxyConfig(listen_port=p, instances=instances))) for p in ports]
    try:
        cluster = driver_cluster(ports[0], 5)
        session = cluster.connect()
        endpoints = sorted((h.endpoint.address, h.endpoint.port) for h in cluster.metadata.all_hosts())
        assert endpoints == sorted(("127.0.0.1", p) for p in ports)
        assert all(h.is_up for h in cluster.metadata.all_hosts())
        insert = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
        for k in range(20):  # round-robin: both instances serve requests
            session.execute(insert, (k, "x"))
        assert origin_session.execute(f"SELECT count(*) FROM {ks}.t").one()[0] == 20
        assert all(p.server.stats.client_connections > 0 for p in proxies)
        cluster.shutdown()
    finally:
        for p in proxies:
            p.stop()


def test_idle_cluster_connections_get_heartbeats(zdm_config):
    config = dataclasses.replace(zdm_config, proxy=ProxyConfig(listen_port=free_port(),
                                                              heartbeat_interval_s=0.2))
    proxy = RunningProxy(config)
    try:
        cluster = driver_cluster(proxy.port, 4)
        session = cluster.connect()
        time.sleep(2.0)  # idle: the proxy sends OPTIONS on its cluster connections
        assert proxy.server.stats.heartbeats >= 4
        assert session.execute("SELECT release_version FROM system.local").one()
        sessions = proxy.server.workers[0].plane.sessions
        assert sessions and all(not b.closed for s in sessions for b in s.backends.values())
        cluster.shutdown()
    finally:
        proxy.stop()


def test_sigterm_drains_and_exits_cleanly(tmp_path, zdm_config):
    port = free_port()
    cfg = tmp_path / "zdm.yaml"
    cfg.write_text(f"origin: {{port: {zdm_config.origin.port}}}\ntarget: {{port: {zdm_config.target.port}}}\n"
                   f"proxy: {{listen_port: {port}, metrics_port: {free_port()}}}\n")
    proc = start_proxy_process(cfg, port)
    try:
        cluster = driver_cluster(port, 4)
        session = cluster.connect()
        assert session.execute("SELECT release_version FROM system.local").one()
        proc.terminate()
        assert proc.wait(20) == 0
        output = proc.stdout.read()
        assert "draining" in output
        cluster.shutdown()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_unreachable_cluster_is_reported_to_the_connecting_client(relayed):
    proxy, relay = relayed
    relay.stop_accepting()
    cluster = driver_cluster(proxy.port, 4)
    with pytest.raises(NoHostAvailable, match="target .* is not reachable"):
        cluster.connect()
    cluster.shutdown()
