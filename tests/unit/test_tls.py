"""zdm.clusters.tls and tls_diagnosis without Cassandra: contexts from the configuration (and the errors naming the key),
certificate name matching, the pinned-name context over blocking sockets and asyncio, and
the classification of failures as OpenSSL and the driver word them."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import threading

import pytest

from zdm.clusters import tls, tls_diagnosis
from zdm.config import TlsConfig
from zdm.errors import ConfigError
from zdm.sandbox import certs

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="module")
def ca():
    return certs.new_ca("test CA")


@pytest.fixture(scope="module")
def server_cert(ca):
    return certs.issue(ca, "node", dns=("node.example", "localhost"), ips=("127.0.0.1",))


def _files(tmp_path, ca, issued=None, *, key_pem=None):
    ca_file = certs.write(tmp_path / "ca.pem", ca.cert_pem)
    if issued is None:
        return ca_file, None, None
    cert = certs.write(tmp_path / "cert.pem", issued.cert_pem)
    key = certs.write(tmp_path / "key.pem", key_pem or issued.key_pem, private=True)
    return ca_file, cert, key


# -- contexts ---------------------------------------------------------------------------------

def test_context_verifies_certificates_and_hostnames_by_default(tmp_path, ca):
    ca_file, _, _ = _files(tmp_path, ca)
    ctx = tls.client_context(TlsConfig(ca_file=ca_file), name="origin")
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    off = tls.client_context(TlsConfig(ca_file=ca_file, verify_hostname=False), name="origin")
    assert off.verify_mode == ssl.CERT_REQUIRED and not off.check_hostname


def test_key_files_are_written_for_their_owner_only(tmp_path, ca):
    _, _, key = _files(tmp_path, ca, certs.issue(ca, "zdm", server=False, client=True))
    assert key.stat().st_mode & 0o777 == 0o600


def _encrypted(issued: certs.Issued) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.BestAvailableEncryption(b"passphrase"))


BAD_FILES = [
    ("ca-not-pem", "ca", "origin.tls.ca_file", "not a PEM CA certificate"),
    ("key-of-another-certificate", "mismatch", "origin.tls.key_file", "is not the key of origin.tls.cert_file"),
    ("key-with-passphrase", "encrypted", "origin.tls.key_file", "encrypted with a passphrase"),
    ("certificate-not-pem", "cert", "origin.tls.cert_file", "not a PEM certificate and its key"),
]


@pytest.mark.parametrize("case, key, message", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_unusable_files_are_refused_by_key_without_their_contents(tmp_path, ca, case, key, message):
    client = certs.issue(ca, "zdm", server=False, client=True)
    ca_file, cert, key_file = _files(tmp_path, ca, client)
    if case == "ca":
        ca_file.write_text("this is not a certificate\n")
    elif case == "mismatch":
        key_file.write_bytes(certs.issue(ca, "other", client=True).key_pem)
    elif case == "encrypted":
        key_file.write_bytes(_encrypted(client))
    elif case == "cert":
        cert.write_text("garbage\n")
    with pytest.raises(ConfigError) as info:
        tls.client_context(TlsConfig(ca_file=ca_file, cert_file=cert, key_file=key_file), name="origin")
    assert info.value.key == key and message in str(info.value)
    said = str(info.value) + (info.value.hint or "")
    for line in client.key_pem.decode().splitlines()[1:-1]:
        assert line not in said


# -- names ------------------------------------------------------------------------------------

def _peer(dns=(), ips=(), cn="node"):
    sans = tuple(("DNS", d) for d in dns) + tuple(("IP Address", i) for i in ips)
    return {"subject": ((("commonName", cn),),), **({"subjectAltName": sans} if sans else {})}


MATCHES = [
    ("dns-exact", _peer(dns=("node.example",)), "node.example", True),
    ("dns-case", _peer(dns=("Node.Example",)), "node.EXAMPLE", True),
    ("dns-other", _peer(dns=("node.example",)), "other.example", False),
    ("wildcard-one-label", _peer(dns=("*.db.example",)), "abc.db.example", True),
    ("wildcard-not-two-labels", _peer(dns=("*.db.example",)), "a.b.db.example", False),
    ("wildcard-not-the-parent", _peer(dns=("*.db.example",)), "db.example", False),
    ("wildcard-inside-a-label-is-not-one", _peer(dns=("a*.db.example",)), "ab.db.example", False),
    ("ip", _peer(ips=("127.0.0.1",)), "127.0.0.1", True),
    ("ip-other", _peer(ips=("127.0.0.1",)), "127.0.0.2", False),
    ("ip-not-by-dns-name", _peer(dns=("127.0.0.1",)), "127.0.0.1", False),
    ("ipv6-normalised", _peer(ips=("0:0:0:0:0:0:0:1",)), "::1", True),
    ("cn-without-dns-names", _peer(cn="node.example"), "node.example", True),
    ("no-cn-when-dns-names", _peer(dns=("a.example",), cn="node.example"), "node.example", False),
]


@pytest.mark.parametrize("cert, name, expected", [m[1:] for m in MATCHES], ids=[m[0] for m in MATCHES])
def test_certificate_names(cert, name, expected):
    assert tls.certificate_matches(cert, name) is expected


# -- the pinned-name context -------------------------------------------------------------------

class _TlsServer:
    """A TLS echo server on loopback that records the SNI names it is sent."""

    def __init__(self, issued: certs.Issued, tmp_path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(certs.write(tmp_path / "srv.pem", issued.keystore_pem, private=True)))
        self.names: list[str | None] = []
        self.ctx.sni_callback = lambda sock, name, ctx: self.names.append(name)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as s:
                    s.sendall(s.recv(100))
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.sock.close()


def _pinned(ca, name):
    ctx = tls.pinned_context(name)
    ctx.load_verify_locations(cadata=ca.cert_pem.decode())
    return ctx


def test_pinned_context_checks_its_name_not_the_sni_name(tmp_path, ca, server_cert):
    server = _TlsServer(server_cert, tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            with _pinned(ca, "node.example").wrap_socket(raw, server_hostname="host-id-1") as s:
                s.sendall(b"ping")
                assert s.recv(4) == b"ping"
        assert server.names == ["host-id-1"]
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                _pinned(ca, "astra.example").wrap_socket(raw, server_hostname="node.example")
        assert "Hostname mismatch, certificate is not valid for 'astra.example'" in str(info.value)
        assert tls_diagnosis.classify(info.value) == tls_diagnosis.Failure.NAME_MISMATCH
    finally:
        server.close()


def test_pinned_context_checks_its_name_under_asyncio(tmp_path, ca, server_cert):
    server = _TlsServer(server_cert, tmp_path)

    async def connect(name):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=_pinned(ca, name),
                                                       server_hostname="host-id-2")
        writer.write(b"pong")
        data = await reader.readexactly(4)
        writer.close()
        return data

    try:
        assert asyncio.run(connect("127.0.0.1")) == b"pong"
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            asyncio.run(connect("127.0.0.2"))
        assert server.names[0] == "host-id-2"
    finally:
        server.close()


# -- failures ---------------------------------------------------------------------------------

DRIVER = "Tried connecting to [('127.0.0.1', 9242)]. Last error: "
FAILURES = [
    ("untrusted", DRIVER + "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get "
                           "local issuer certificate (_ssl.c:1006)", tls_diagnosis.Failure.UNTRUSTED),
    ("self-signed", "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
                    "certificate (_ssl.c:1006)", tls_diagnosis.Failure.UNTRUSTED),
    ("expired", DRIVER + "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate "
                         "has expired (_ssl.c:1006)", tls_diagnosis.Failure.EXPIRED),
    ("not-yet-valid", "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate is "
                      "not yet valid (_ssl.c:1006)", tls_diagnosis.Failure.NOT_YET_VALID),
    ("hostname", "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, "
                 "certificate is not valid for 'x'. (_ssl.c:1006)", tls_diagnosis.Failure.NAME_MISMATCH),
    ("tls-to-plaintext", DRIVER + "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",
     tls_diagnosis.Failure.NOT_TLS),
    ("client-cert-required", "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate "
                             "required (_ssl.c:2580)", tls_diagnosis.Failure.CLIENT_CERT_REQUIRED),
    ("client-cert-unknown-ca", "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)",
     tls_diagnosis.Failure.CLIENT_CERT_REJECTED),
    ("plaintext-to-tls", ConnectionResetError(104, "Connection reset by peer"), tls_diagnosis.Failure.CLOSED),
    ("refused", ConnectionRefusedError(111, "Connection refused"), None),
    ("timeout", "OperationTimedOut('errors=Timed out creating connection (5 seconds)')", None),
]


@pytest.mark.parametrize("error, failure", [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_failures_are_classified_from_their_text(error, failure):
    assert tls_diagnosis.classify(error) is failure


def test_verify_hostname_off_is_an_insecure_setting(tmp_path, ca):
    from zdm.config import ClusterConfig, Config

    ca_file, _, _ = _files(tmp_path, ca)
    config = Config(origin=ClusterConfig(tls=TlsConfig(ca_file=ca_file, verify_hostname=False)),
                    target=ClusterConfig(port=9043, tls=TlsConfig(ca_file=ca_file)))
    (warning,) = tls_diagnosis.insecure_settings(config)
    assert warning["key"] == "origin.tls.verify_hostname"
    assert tls_diagnosis.insecure_settings(Config()) == []


def test_explanations_name_the_certificate_and_the_fix(tmp_path, ca):
    """Against a TLS port presenting an expired certificate for other names."""
    expired = certs.issue(ca, "old node", dns=("old.example",), not_before=NOW - dt.timedelta(days=30),
                          not_after=NOW - dt.timedelta(days=1))
    server = _TlsServer(expired, tmp_path)
    ca_file, _, _ = _files(tmp_path, ca)
    config = TlsConfig(ca_file=ca_file)
    try:
        error = DRIVER + "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired"
        why = tls_diagnosis.explain(error, name="target", tls=config, host="127.0.0.1", port=server.port)
        assert why.failure == tls_diagnosis.Failure.EXPIRED
        assert f"127.0.0.1:{server.port}'s certificate (CN=old node, issued by CN=test CA) expired on " \
               f"{(NOW - dt.timedelta(days=1)).strftime('%Y-%m-%d')}" in why.message
        assert "renew" in why.hint
        mismatch = tls_diagnosis.explain("Hostname mismatch, certificate is not valid for '127.0.0.1'",
                               name="target", tls=config, host="127.0.0.1", port=server.port)
        assert "is valid for old.example, not for 127.0.0.1" in mismatch.message
        assert "target.contact_points" in mismatch.hint and "target.tls.verify_hostname" in mismatch.hint
        assert tls_diagnosis.explain(ConnectionRefusedError(111, "refused"), name="target", tls=config,
                           host="127.0.0.1", port=server.port) is None
    finally:
        server.close()
