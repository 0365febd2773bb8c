"""The proxy over TLS, against the TLS sandbox's real nodes: applications connect to it with TLS
(proxy.tls, a client certificate required or not), it connects to origin (which requires zdm's
client certificate) and target over TLS, and to Astra DB (the stand-in) through its secure
connect bundle.  The nodes' own system_views.clients says which connections are encrypted;
each wrong setting or client is told what is wrong."""

from __future__ import annotations

import dataclasses
import logging
import ssl
import uuid

import pytest

from tests.support.harness import RunningProxy
from tests.support.net import free_port
from zdm.config import ClusterConfig, ProxyConfig, ProxyTlsConfig, TlsConfig
from zdm.clusters.connect import session
from zdm.errors import ZdmError
from zdm.sandbox import certs

USER = "cassandra"


def _proxy_config(base, sandbox_tls, *, client_auth=False, **changes):
    tls = ProxyTlsConfig(cert_file=sandbox_tls.proxy_cert_file, key_file=sandbox_tls.proxy_key_file,
                         ca_file=sandbox_tls.ca_file if client_auth else None,
                         require_client_auth=client_auth)
    return dataclasses.replace(base, proxy=ProxyConfig(listen_port=free_port(), tls=tls, workers=1),
                               **changes)


def _client(port, sandbox_tls, *, tls=True, client_cert=False, **kw):
    """An application's driver: TLS trusting the sandbox CA (and, if asked, its client certificate)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(sandbox_tls.ca_file))
        if client_cert:
            ctx.load_cert_chain(str(sandbox_tls.client_cert_file), str(sandbox_tls.client_key_file))
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=20)
    return Cluster(["127.0.0.1"], port=port, ssl_context=ctx, connect_timeout=10,
                   auth_provider=PlainTextAuthProvider(USER, "cassandra"),
                   execution_profiles={EXEC_PROFILE_DEFAULT: profile}, **kw)


@pytest.fixture(scope="module")
def tls_keyspace(tls_config):
    name = "tls_" + uuid.uuid4().hex[:8]
    for which in ("origin", "target"):
        with session(getattr(tls_config, which), name=which) as s:
            s.execute(f"CREATE KEYSPACE {name} WITH replication = "
                      "{'class': 'SimpleStrategy', 'replication_factor': 1}", timeout=60)
            s.execute(f"CREATE TABLE {name}.t (k int PRIMARY KEY, v text)", timeout=60)
    yield name
    for which in ("origin", "target"):
        with session(getattr(tls_config, which), name=which) as s:
            s.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)


def _rows(cfg, name, ks):
    with session(cfg, name=name) as s:
        return {r.k: r.v for r in s.execute(f"SELECT k, v FROM {ks}.t")}


def _proxy_connections_encrypted(cfg, name) -> list[bool]:
    """What the node says of the connections not made by this session: the proxy's."""
    with session(cfg, name=name) as s:
        rows = list(s.execute("SELECT address, port, ssl_enabled, driver_name FROM system_views.clients"))
    return [r.ssl_enabled for r in rows if r.driver_name != "DataStax Python Driver"]


def test_clients_reach_both_tls_clusters_through_a_tls_proxy(tls_config, sandbox_tls, tls_keyspace):
    proxy = RunningProxy(_proxy_config(tls_config, sandbox_tls))
    try:
        cluster = _client(proxy.port, sandbox_tls)
        s = cluster.connect(tls_keyspace)
        for k in range(5):
            s.execute("INSERT INTO t (k, v) VALUES (%s, %s)", (k, f"v{k}"))
        assert s.execute("SELECT v FROM t WHERE k = 3").one().v == "v3"
        for name in ("origin", "target"):
            assert _rows(getattr(tls_config, name), name, tls_keyspace) == {k: f"v{k}" for k in range(5)}
            seen = _proxy_connections_encrypted(getattr(tls_config, name), name)
            assert seen and all(seen), (name, seen)  # the proxy's own connections, per the node
        cluster.shutdown()
    finally:
        proxy.stop()


def test_a_required_client_certificate_is_required(tls_config, sandbox_tls, tls_keyspace):
    from cassandra.cluster import NoHostAvailable

    proxy = RunningProxy(_proxy_config(tls_config, sandbox_tls, client_auth=True))
    try:
        without = _client(proxy.port, sandbox_tls)
        with pytest.raises(NoHostAvailable):
            without.connect()
        without.shutdown()
        with_cert = _client(proxy.port, sandbox_tls, client_cert=True)
        assert with_cert.connect().execute("SELECT release_version FROM system.local").one()[0]
        with_cert.shutdown()
    finally:
        proxy.stop()


def test_plaintext_on_the_tls_port_is_told_to_use_tls(tls_config, sandbox_tls, caplog):
    from cassandra.cluster import NoHostAvailable

    proxy = RunningProxy(_proxy_config(tls_config, sandbox_tls))
    try:
        plain = _client(proxy.port, sandbox_tls, tls=False, protocol_version=4)
        with caplog.at_level(logging.WARNING, logger="zdm.proxy"), pytest.raises(NoHostAvailable) as info:
            plain.connect()
        plain.shutdown()
        assert "this port requires TLS" in str(info.value)
        assert any("sent plaintext CQL to this TLS port" in r.getMessage() for r in caplog.records)
        # and a TLS client right after is served
        good = _client(proxy.port, sandbox_tls)
        assert good.connect().execute("SELECT release_version FROM system.local").one()[0]
        good.shutdown()
    finally:
        proxy.stop()


def test_tls_on_the_plaintext_port_is_logged_and_closed(zdm_config, sandbox_tls, caplog):
    from cassandra.cluster import NoHostAvailable

    config = dataclasses.replace(zdm_config, proxy=ProxyConfig(listen_port=free_port(), workers=1))
    proxy = RunningProxy(config)
    try:
        client = _client(proxy.port, sandbox_tls)
        with caplog.at_level(logging.WARNING, logger="zdm.proxy"), pytest.raises(NoHostAvailable):
            client.connect()
        client.shutdown()
        assert any("a TLS client connected to this plaintext port" in r.getMessage() for r in caplog.records)
        assert proxy.server.client_connections == 0
    finally:
        proxy.stop()


def test_a_tls_handshake_a_client_fails_is_logged_with_its_peer(tls_config, sandbox_tls, tmp_path, caplog):
    from cassandra.cluster import NoHostAvailable

    proxy = RunningProxy(_proxy_config(tls_config, sandbox_tls, client_auth=True))
    try:
        stranger = certs.issue(certs.new_ca("another CA"), "stranger", server=False, client=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(sandbox_tls.ca_file))
        ctx.load_cert_chain(str(certs.write(tmp_path / "s.pem", stranger.cert_pem)),
                            str(certs.write(tmp_path / "s.key", stranger.key_pem, private=True)))
        from cassandra.cluster import Cluster

        client = Cluster(["127.0.0.1"], port=proxy.port, ssl_context=ctx, connect_timeout=5)
        with caplog.at_level(logging.WARNING, logger="zdm.proxy"), pytest.raises(NoHostAvailable):
            client.connect()
        client.shutdown()
        lines = [r.getMessage() for r in caplog.records if "TLS with client 127.0.0.1:" in r.getMessage()]
        assert lines, [r.getMessage() for r in caplog.records]
    finally:
        proxy.stop()


BAD_CLUSTER_TLS = [
    # id, change to the config, what the error says, what the hint names
    ("origin-wrong-ca", "origin", "ca", "is not signed by a CA in origin.tls.ca_file", "origin.tls.ca_file"),
    ("origin-no-client-certificate", "origin", "no-cert",
     "requires a client certificate, and origin has none", "origin.tls.cert_file"),
    ("target-no-tls", "target", "plain", "accepts only TLS connections, and target has no TLS settings",
     "target.tls.ca_file"),
]


@pytest.mark.parametrize("case, which, change, message, fix", BAD_CLUSTER_TLS,
                         ids=[c[0] for c in BAD_CLUSTER_TLS])
def test_a_proxy_with_a_wrong_cluster_tls_setting_says_which(case, which, change, message, fix,
                                                             tls_config, sandbox_tls, tmp_path):
    cfg: ClusterConfig = getattr(tls_config, which)
    if change == "ca":
        other = certs.new_ca("some other CA")
        tls = dataclasses.replace(cfg.tls, ca_file=certs.write(tmp_path / "other.pem", other.cert_pem))
    elif change == "no-cert":
        tls = TlsConfig(ca_file=cfg.tls.ca_file)
    else:
        tls = None
    bad = dataclasses.replace(cfg, tls=tls, connect_timeout_s=5)
    with pytest.raises(ZdmError) as info:
        RunningProxy(_proxy_config(tls_config, sandbox_tls, **{which: bad}))
    assert message in info.value.message, info.value.message
    assert fix in (info.value.hint or ""), info.value.hint


def test_the_proxy_reaches_astra_through_its_secure_connect_bundle(astra_config, astra, sandbox_tls,
                                                                   tls_config, tls_keyspace):
    before = dict(astra.connections)
    proxy = RunningProxy(_proxy_config(astra_config, sandbox_tls))
    try:
        cluster = _client(proxy.port, sandbox_tls)
        s = cluster.connect(tls_keyspace)
        s.execute("INSERT INTO t (k, v) VALUES (100, 'via the bundle')")
        cluster.shutdown()
    finally:
        proxy.stop()
    (host_id,) = astra.host_ids
    assert astra.connections.get(host_id, 0) > before.get(host_id, 0), "connections went through the SNI proxy"
    assert _rows(tls_config.target, "target", tls_keyspace)[100] == "via the bundle"
    assert _rows(tls_config.origin, "origin", tls_keyspace)[100] == "via the bundle"
