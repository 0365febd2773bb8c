"""Credentials through the proxy, against a real node with PasswordAuthenticator.

One extra single-node cluster with authentication (port 9044) is started for this
module and stopped after it; the sandbox's origin and target run without it, which
gives every combination: only target, only origin, or both requiring a login.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import pytest
from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import NoHostAvailable

from tests.support.harness import RunningProxy
from tests.support.net import driver_cluster, free_port
from zdm.config import ClusterConfig, ProxyConfig
from zdm.proxy.server import ProxyError

AUTH_PORT = int(os.environ.get("ZDM_TEST_AUTH_PORT", "9044"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def auth_node(sandbox):
    from zdm.sandbox import jars, node

    spec = node.NodeSpec("auth", AUTH_PORT, int(os.environ.get("ZDM_TEST_AUTH_STORAGE_PORT", "7200")),
                         ROOT / ".zdm" / "test-auth-node", heap_mb=512, auth=True)
    started = False
    if node.read_pid(spec) is None:
        proc = node.start(spec, jars.find_java(), jars.ensure_jars())
        started = True
        node.wait_ready(spec, proc, timeout=240)
    else:
        node.wait_ready(spec, None, timeout=60)
    cfg = ClusterConfig(port=AUTH_PORT, username="cassandra", password="cassandra")
    from zdm.clusters.connect import session

    with session(cfg, name="auth") as s:
        s.execute("CREATE ROLE IF NOT EXISTS app WITH PASSWORD = 'app-pw' AND LOGIN = true")
        s.execute("GRANT ALL PERMISSIONS ON ALL KEYSPACES TO app")
    yield cfg
    if started and not os.environ.get("ZDM_KEEP_SANDBOX"):
        node.stop(spec)


def _proxy(zdm_config, origin: ClusterConfig, target: ClusterConfig) -> RunningProxy:
    config = dataclasses.replace(zdm_config, origin=origin, target=target,
                                 proxy=ProxyConfig(listen_port=free_port()))
    return RunningProxy(config)


def _login(port: int, user: str, password: str):
    cluster = driver_cluster(port, 4, auth_provider=PlainTextAuthProvider(user, password))
    return cluster, cluster.connect()


def test_only_target_requires_login_client_credentials_go_to_target(zdm_config, auth_node, origin_session):
    proxy = _proxy(zdm_config, zdm_config.origin, ClusterConfig(port=AUTH_PORT))
    try:
        assert proxy.server.requires_auth == {c: c.value == "target" for c in proxy.server.requires_auth}
        cluster, session = _login(proxy.port, "app", "app-pw")
        ks = "a_" + uuid.uuid4().hex[:10]
        session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY)")
        session.execute(f"INSERT INTO {ks}.t (k) VALUES (1)")
        assert origin_session.execute(f"SELECT k FROM {ks}.t").one().k == 1
        session.execute(f"DROP KEYSPACE {ks}")
        cluster.shutdown()
        with pytest.raises(NoHostAvailable) as info:
            _login(proxy.port, "app", "wrong")
        error = next(iter(info.value.errors.values()))
        assert isinstance(error, AuthenticationFailed)
        assert "Provided username app and/or password are incorrect" in str(error)  # target's own words
    finally:
        proxy.stop()


def test_only_origin_requires_login_client_credentials_go_to_origin(zdm_config, auth_node):
    proxy = _proxy(zdm_config, auth_node, zdm_config.target)
    try:
        cluster, session = _login(proxy.port, "app", "app-pw")
        assert session.execute("SELECT release_version FROM system.local").one()
        cluster.shutdown()
        with pytest.raises(NoHostAvailable, match="incorrect"):
            _login(proxy.port, "cassandra", "nope")
    finally:
        proxy.stop()


def test_both_require_login_proxy_logs_into_origin_itself(zdm_config, auth_node):
    # origin logs in with zdm.yaml's credentials (cassandra), the client's (app) go to target
    proxy = _proxy(zdm_config, auth_node, ClusterConfig(port=AUTH_PORT))
    try:
        cluster, session = _login(proxy.port, "app", "app-pw")
        assert session.execute("SELECT count(*) FROM system_schema.keyspaces").one()[0] > 0
        cluster.shutdown()
        with pytest.raises(NoHostAvailable, match="incorrect"):
            _login(proxy.port, "app", "bad")
    finally:
        proxy.stop()


def test_proxy_refuses_to_start_without_origin_credentials(zdm_config, auth_node):
    with pytest.raises(ProxyError, match="origin requires a login") as info:
        _proxy(zdm_config, ClusterConfig(port=AUTH_PORT), zdm_config.target)
    assert "origin.username" in info.value.hint


def test_wrong_origin_credentials_in_config_are_reported(zdm_config, auth_node):
    with pytest.raises(ProxyError, match="origin refused the proxy's configured credentials"):
        _proxy(zdm_config, ClusterConfig(port=AUTH_PORT, username="cassandra", password="x"),
               zdm_config.target)


def test_forwarding_client_credentials_to_origin(zdm_config, auth_node):
    """Both clusters require a login (the same real node serves as both here): with the
    option, the client's user is logged in on the origin connection and the proxy's own on
    the target one; without it, the other way round.  The node's system_views.clients says
    which user each of the proxy's connections logged in as."""
    from zdm.phases.model import Cluster

    for forward, expected in ((True, {Cluster.ORIGIN: "app", Cluster.TARGET: "cassandra"}),
                              (False, {Cluster.ORIGIN: "cassandra", Cluster.TARGET: "app"})):
        config = dataclasses.replace(zdm_config, origin=auth_node, target=auth_node,
                                     proxy=ProxyConfig(listen_port=free_port(),
                                                       forward_client_credentials_to_origin=forward))
        proxy = RunningProxy(config)
        try:
            cluster, session = _login(proxy.port, "app", "app-pw")
            from zdm.clusters.connect import session as direct

            with direct(auth_node, name="auth") as admin:  # the node's own view, as a superuser
                users = {r.port: r.username for r in admin.execute(
                    "SELECT port, username FROM system_views.clients")}
            client_sessions = [s for s in proxy.server.workers[0].plane.sessions if s.handler]
            assert client_sessions  # the driver's control and pool connections
            for client_session in client_sessions:
                ports = {c: b.transport.get_extra_info("sockname")[1]
                         for c, b in client_session.backends.items()}
                assert {c: users[p] for c, p in ports.items()} == expected, f"forward={forward}"
            cluster.shutdown()
        finally:
            proxy.stop()
