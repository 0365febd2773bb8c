"""zdm's driver sessions over TLS, against the TLS sandbox's real nodes (origin requires a client
certificate, target does not), and each wrong setting met with a clear error naming the fix.

The nodes' certificates are valid, so the certificates a real node will not present on demand
(expired, not yet valid, for another host) are presented by a TLS front (tests/support/tlsfront)
relaying to the real target: the handshake zdm sees is the one such a node would give."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from tests.support.net import answers_plaintext_startup, answers_tls_startup
from tests.support.tlsfront import TlsFront
from zdm.config import ClusterConfig, TlsConfig
from zdm.clusters.connect import ConnectError, session
from zdm.sandbox import certs
from zdm.sandbox.tls import SERVER_NAMES, client_context

NOW = dt.datetime.now(dt.timezone.utc)


def _ssl_clients(sess) -> list[bool]:
    rows = sess.execute("SELECT ssl_enabled, username FROM system_views.clients")
    return [r.ssl_enabled for r in rows if r.username == "cassandra"]


def test_sessions_to_both_clusters_are_encrypted(tls_config):
    for name, cfg in (("origin", tls_config.origin), ("target", tls_config.target)):
        with session(cfg, name=name) as s:
            assert s.execute("SELECT release_version FROM system.local").one()[0]
            seen = _ssl_clients(s)  # the node's own view of its client connections
            assert seen and all(seen), (name, seen)


def test_the_tls_nodes_refuse_plaintext_cql(tls_sandbox, sandbox_tls):
    for port, client_cert in ((tls_sandbox.origin_port, True), (tls_sandbox.target_port, False)):
        assert not answers_plaintext_startup(port)
        assert answers_tls_startup(port, client_context(sandbox_tls, client_cert=client_cert))
    for spec in tls_sandbox.settings.nodes():  # and internode too: no plaintext CQL there either
        assert not answers_plaintext_startup(spec.storage_port)


@pytest.fixture(scope="module")
def fronts(tls_config, sandbox_tls):
    """TLS fronts before the real target, each presenting one kind of bad certificate."""
    ca = sandbox_tls.ca()
    upstream = ("127.0.0.1", tls_config.target.port)
    made = {
        "expired": certs.issue(ca, "expired node", **SERVER_NAMES, not_before=NOW - dt.timedelta(days=400),
                               not_after=NOW - dt.timedelta(days=35)),
        "not-yet-valid": certs.issue(ca, "future node", **SERVER_NAMES, not_before=NOW + dt.timedelta(days=3)),
        "other-host": certs.issue(ca, "elsewhere", dns=("elsewhere.example",), ips=("10.1.2.3",)),
    }
    out = {k: TlsFront(upstream, v, upstream_context=client_context(sandbox_tls, client_cert=False))
           for k, v in made.items()}
    yield out
    for f in out.values():
        f.stop()


def _other_ca_files(tmp_path):
    other = certs.new_ca("some other CA")
    client = certs.issue(other, "stranger", server=False, client=True)
    return (certs.write(tmp_path / "other-ca.pem", other.cert_pem),
            certs.write(tmp_path / "stranger.pem", client.cert_pem),
            certs.write(tmp_path / "stranger.key", client.key_pem, private=True))


def _case(case, tls_config, sandbox, fronts, tmp_path) -> tuple[str, ClusterConfig]:
    origin, target = tls_config.origin, tls_config.target
    other_ca, stranger_cert, stranger_key = _other_ca_files(tmp_path)
    via = lambda front: dataclasses.replace(target, port=fronts[front].port)  # noqa: E731
    return {
        "wrong-ca": ("target", dataclasses.replace(target, tls=TlsConfig(ca_file=other_ca))),
        "plaintext-client-on-tls-port": ("target", dataclasses.replace(target, tls=None)),
        "tls-client-on-plaintext-port": ("target", ClusterConfig(port=sandbox.target_port, tls=target.tls)),
        "client-certificate-not-sent": ("origin", dataclasses.replace(origin, tls=target.tls)),
        "client-certificate-of-another-ca": ("origin", dataclasses.replace(
            origin, tls=dataclasses.replace(origin.tls, cert_file=stranger_cert, key_file=stranger_key))),
        "expired": ("target", via("expired")),
        "not-yet-valid": ("target", via("not-yet-valid")),
        "hostname-mismatch": ("target", via("other-host")),
    }[case]


BAD = [
    # id, what the message says, what the hint names
    ("wrong-ca", "'s certificate (CN=zdm sandbox target, issued by CN=zdm sandbox CA) is not signed by a "
                 "CA in target.tls.ca_file", "target.tls.ca_file"),
    ("plaintext-client-on-tls-port", "accepts only TLS connections, and target has no TLS settings",
     "target.tls.ca_file"),
    ("tls-client-on-plaintext-port", "speaks plaintext CQL, not TLS", "remove target.tls"),
    ("client-certificate-not-sent", "requires a client certificate, and origin has none",
     "origin.tls.cert_file and origin.tls.key_file"),
    ("client-certificate-of-another-ca", "refused zdm's client certificate (origin.tls.cert_file:",
     "origin.tls.cert_file"),
    ("expired", "'s certificate (CN=expired node, issued by CN=zdm sandbox CA) expired on "
                f"{(NOW - dt.timedelta(days=35)).strftime('%Y-%m-%d')}", "renew the node's certificate"),
    ("not-yet-valid", "'s certificate (CN=future node, issued by CN=zdm sandbox CA) is not valid before "
                      f"{(NOW + dt.timedelta(days=3)).strftime('%Y-%m-%d')}", "clock"),
    ("hostname-mismatch", "is valid for elsewhere.example, 10.1.2.3, not for 127.0.0.1",
     "target.contact_points"),
]


@pytest.mark.parametrize("case, message, fix", BAD, ids=[b[0] for b in BAD])
def test_a_wrong_tls_setting_is_named_with_its_fix(case, message, fix, tls_config, sandbox, fronts, tmp_path):
    name, cfg = _case(case, tls_config, sandbox, fronts, tmp_path)
    with pytest.raises(ConnectError) as info:
        with session(dataclasses.replace(cfg, connect_timeout_s=5), name=name):
            pass
    assert message in info.value.message, info.value.message
    assert fix in info.value.hint, info.value.hint


def test_hostname_verification_off_connects_to_a_certificate_for_another_host(tls_config, fronts):
    cfg = dataclasses.replace(tls_config.target, port=fronts["other-host"].port,
                              tls=dataclasses.replace(tls_config.target.tls, verify_hostname=False))
    with session(cfg, name="target") as s:
        assert s.execute("SELECT release_version FROM system.local").one()[0]
    # the certificate itself is still checked: only the name check is off
    with pytest.raises(ConnectError, match="expired on"):
        with session(dataclasses.replace(cfg, port=fronts["expired"].port), name="target"):
            pass


def test_sandbox_status_logs_into_tls_nodes(tls_sandbox):
    import json

    from typer.testing import CliRunner

    from zdm.cli.main import app

    result = CliRunner().invoke(app, ["sandbox", "status", "--json", "--dir", str(tls_sandbox.settings.directory)])
    nodes = json.loads(result.stdout)
    assert [(n["name"], n["up"], n["release_version"]) for n in nodes] == \
        [("origin", True, "5.0.8"), ("target", True, "5.0.8")]
