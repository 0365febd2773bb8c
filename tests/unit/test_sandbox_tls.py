"""`zdm sandbox up --tls` without starting Java: the certificates it makes, the cassandra.yaml it
writes, the releases it refuses, and the settings it keeps."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
import yaml
from typer.testing import CliRunner

from zdm.cli.main import app
from zdm.errors import SandboxError
from zdm.sandbox import local, node
from zdm.sandbox.tls import SandboxTls


def _settings(tmp_path, **kw) -> local.SandboxSettings:
    return local.SandboxSettings(directory=tmp_path / "sb", tls=True, **kw)


def test_certificates_are_made_once_and_fit_together(tmp_path):
    tls = SandboxTls(tmp_path / "tls")
    tls.ensure(("origin", "target"))
    made = {p.name: p.read_bytes() for p in tls.directory.iterdir()}
    assert set(made) == {"ca.pem", "ca.key", "origin.pem", "target.pem", "client.pem", "client.key",
                         "proxy.pem", "proxy.key"}
    for private in ("ca.key", "origin.pem", "client.key", "proxy.key"):
        assert (tls.directory / private).stat().st_mode & 0o777 == 0o600
    tls.ensure(("origin", "target"))
    assert made == {p.name: p.read_bytes() for p in tls.directory.iterdir()}  # kept, not remade
    from cryptography import x509

    node_cert = x509.load_pem_x509_certificate(tls.keystore("origin").read_bytes().split(b"-----END PRIVATE KEY-----\n")[1])
    assert node_cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3000)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tls.keystore("origin")))  # key and certificate in one file, as Cassandra reads it
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(str(tls.ca_file))
    client.load_cert_chain(str(tls.client_cert_file), str(tls.client_key_file))


def test_node_yaml_accepts_only_tls(tmp_path):
    settings = _settings(tmp_path, tls_client_auth=("origin",))
    origin, target = settings.nodes()
    conf = yaml.safe_load(node.yaml_text(origin, tmp_path))
    client = conf["client_encryption_options"]
    assert client["enabled"] is True and client["optional"] is False
    assert client["ssl_context_factory"]["class_name"] == "org.apache.cassandra.security.PEMBasedSslContextFactory"
    assert client["keystore"].endswith("tls/origin.pem") and client["truststore"].endswith("tls/ca.pem")
    assert client["require_client_auth"] is True
    assert yaml.safe_load(node.yaml_text(target, tmp_path))["client_encryption_options"]["require_client_auth"] is False
    server = conf["server_encryption_options"]
    assert server["internode_encryption"] == "all" and server["optional"] is False
    plain = local.SandboxSettings(directory=tmp_path / "p").nodes()[0]
    assert "encryption_options" not in node.yaml_text(plain, tmp_path)  # the default stays plaintext


@pytest.mark.parametrize("release", ["4.0.19", "3.11.19"])
def test_releases_without_pem_keystores_are_refused(tmp_path, release):
    with pytest.raises(SandboxError, match="needs Cassandra 4.1 or newer"):
        _settings(tmp_path, origin_version=release).validate()


def test_tls_settings_are_kept(tmp_path):
    settings = _settings(tmp_path, tls_client_auth=("origin", "target"))
    local.save_settings(settings)
    assert local.saved_settings(settings.directory) == settings


def test_the_cli_flags(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(local, "up", lambda settings, **kw: seen.setdefault("s", settings) and [])
    result = CliRunner().invoke(app, ["sandbox", "up", "--dir", str(tmp_path / "sb"), "--tls-client-auth",
                                      "--config", str(tmp_path / "none.yaml")])
    assert result.exit_code == 0, result.output
    assert seen["s"].tls and seen["s"].tls_client_auth == ("origin", "target")
    assert "zdm init" in result.output
