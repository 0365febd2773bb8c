"""TLS in the CLI without clusters: `zdm status` and `zdm preflight` warn, loudly and with the
fix, when a cluster's TLS does not verify host names; preflight says how each cluster is
reached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.test_cli_phases import clusters  # noqa: F401 - the fake clusters fixture
from zdm.cli.main import app
from zdm.config import load_config
from zdm.preflight import Status, encryption_checks
from zdm.sandbox import certs

runner = CliRunner(env={"COLUMNS": "250", "USER": "alice"})


@pytest.fixture()
def insecure(tmp_path) -> Path:
    certs.write(tmp_path / "ca.pem", certs.new_ca("ca").cert_pem)
    path = tmp_path / "zdm.yaml"
    path.write_text("origin: {tls: {ca_file: ca.pem, verify_hostname: false}}\n"
                    "target: {port: 9043, tls: {ca_file: ca.pem}}\nstate_dir: st\n")
    return path


def test_status_warns_about_tls_without_hostname_verification(insecure):
    doc = json.loads(runner.invoke(app, ["status", "--json", "--config", str(insecure)]).stdout)
    (warning,) = doc["insecure_settings"]
    assert warning["key"] == "origin.tls.verify_hostname"
    assert "origin.tls.verify_hostname is false" in warning["what"] and "reissue" in warning["todo"]
    shown = " ".join(runner.invoke(app, ["status", "--config", str(insecure)]).stdout.split())
    assert "INSECURE: origin.tls.verify_hostname is false" in shown


def test_status_of_a_safe_configuration_has_no_warning(tmp_path):
    path = tmp_path / "zdm.yaml"
    path.write_text("state_dir: st\n")
    doc = json.loads(runner.invoke(app, ["status", "--json", "--config", str(path)]).stdout)
    assert doc["insecure_settings"] == []
    assert "INSECURE" not in runner.invoke(app, ["status", "--config", str(path)]).stdout


def test_preflight_warns_about_tls_without_hostname_verification(insecure, clusters):  # noqa: F811
    result = runner.invoke(app, ["preflight", "--json", "--config", str(insecure)])
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["origin encryption"]["status"] == "warn"
    assert "TLS WITHOUT HOSTNAME VERIFICATION" in checks["origin encryption"]["detail"]
    assert "origin.tls.verify_hostname" in checks["origin encryption"]["todo"]
    assert checks["target encryption"]["status"] == "pass"
    assert "host names checked" in checks["target encryption"]["detail"]


def test_encryption_checks_say_how_each_cluster_is_reached(tmp_path):
    certs.write(tmp_path / "ca.pem", certs.new_ca("ca").cert_pem)
    (tmp_path / "scb.zip").write_bytes(b"")
    path = tmp_path / "zdm.yaml"
    path.write_text("origin: {port: 9042}\ntarget: {secure_connect_bundle: scb.zip}\n")
    origin, target = encryption_checks(load_config(path))
    assert (origin.status, target.status) == (Status.PASS, Status.PASS)
    assert "plaintext" in origin.detail and "secure connect bundle" in target.detail


def test_zdm_proxys_tls_and_bundle_settings_make_a_working_configuration(tmp_path):
    from zdm.config.zdmproxy_read import read

    ca = certs.write(tmp_path / "ca.pem", certs.new_ca("ca").cert_pem)
    bundle = tmp_path / "secure-connect-db.zip"
    bundle.write_bytes(b"PK")
    config = read(None, {"ZDM_ORIGIN_CONTACT_POINTS": "10.0.0.1", "ZDM_ORIGIN_TLS_SERVER_CA_PATH": str(ca),
                         "ZDM_TARGET_SECURE_CONNECT_BUNDLE_PATH": str(bundle),
                         "ZDM_TARGET_USERNAME": "token", "ZDM_TARGET_PASSWORD": "AstraCS:not-a-real-one"}).config()
    assert config.origin.tls.ca_file == ca
    assert config.origin.tls.verify_hostname is False  # zdm-proxy verifies no host names
    assert config.target.secure_connect_bundle == bundle  # and no port beside it


def _sandbox(tmp_path, **kw):
    from zdm.sandbox import local
    from zdm.sandbox.tls import SandboxTls

    settings = local.SandboxSettings(directory=tmp_path / "sb", **kw)
    local.save_settings(settings)
    if settings.tls:
        SandboxTls(settings.tls_dir).ensure(("origin", "target"))
    return settings


def test_init_points_zdm_yaml_at_a_tls_sandbox(tmp_path):
    from zdm.sandbox.tls import SandboxTls

    settings = _sandbox(tmp_path, origin_port=9242, target_port=9243, origin_storage_port=7600,
                        target_storage_port=7700, auth=True, tls=True, tls_client_auth=("origin",))
    path = tmp_path / "conf" / "zdm.yaml"
    result = runner.invoke(app, ["init", "--config", str(path), "--sandbox", str(settings.directory)])
    assert result.exit_code == 0, result.output
    assert "ZDM_ORIGIN_PASSWORD" in result.output and "TLS with the sandbox's CA" in result.output
    assert str(tmp_path) not in path.read_text()  # relative paths: the pair can move together
    config = load_config(path, environ={"ZDM_ORIGIN_PASSWORD": "o", "ZDM_TARGET_PASSWORD": "t"})
    tls = SandboxTls(settings.tls_dir)
    assert (config.origin.port, config.target.port) == (9242, 9243)
    assert config.origin.tls.ca_file.resolve() == tls.ca_file.resolve() and config.origin.tls.verify_hostname
    assert config.origin.tls.cert_file.resolve() == tls.client_cert_file.resolve()
    assert config.target.tls.cert_file is None  # target does not ask for one
    assert config.proxy.tls.cert_file.resolve() == tls.proxy_cert_file.resolve()
    assert (config.origin.username, config.origin.password, config.target.password) == ("cassandra", "o", "t")


def test_init_for_the_default_sandbox_writes_the_plain_template(tmp_path):
    from zdm.config import TEMPLATE

    settings = _sandbox(tmp_path)
    path = tmp_path / "zdm.yaml"
    assert runner.invoke(app, ["init", "--config", str(path), "--sandbox", str(settings.directory)]).exit_code == 0
    assert path.read_text() == TEMPLATE


def test_a_password_is_not_in_a_configurations_repr():
    from zdm.config import ClusterConfig, Config

    config = Config(origin=ClusterConfig(username="app", password="hunter2-not-shown"))
    assert "hunter2-not-shown" not in repr(config) and "app" in repr(config)
