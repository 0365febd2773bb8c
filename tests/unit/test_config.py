"""The configuration model: defaults, secrets from the environment, and one clear error per kind of bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from zdm.config import TEMPLATE, ClusterConfig, load_config, parse_config
from zdm.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zdm.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_template_is_valid_and_points_at_the_sandbox(tmp_path):
    config = load_config(write(tmp_path, TEMPLATE))
    assert config.origin.endpoints() == [("127.0.0.1", 9042)]
    assert config.target.endpoints() == [("127.0.0.1", 9043)]
    assert (config.proxy.listen_host, config.proxy.listen_port) == ("127.0.0.1", 14002)
    assert config.state_dir == tmp_path / ".zdm/state"


def test_empty_file_gives_sandbox_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.origin.port == 9042 and config.target.port == 9043


def test_full_config_round_trip(tmp_path):
    config = load_config(write(tmp_path, """
        origin: {contact_points: [10.0.0.1, 10.0.0.2], port: 9142, username: app, password: pw,
                 local_dc: dc1, protocol_version: 4}
        target: {contact_points: host-b, port: 9043}
        proxy: {listen_port: 14003, instances: ["127.0.0.1:14002", "127.0.0.1:14003"],
                request_timeout_s: 2}
        scope: {keyspaces: [shop], exclude_tables: [shop.audit]}
        state_dir: /var/lib/zdm
    """))
    assert config.origin.contact_points == ("10.0.0.1", "10.0.0.2")
    assert config.origin.credentials == ("app", "pw")
    assert config.target.contact_points == ("host-b",)
    assert config.proxy.instances == ("127.0.0.1:14002", "127.0.0.1:14003")
    assert config.proxy.request_timeout_s == 2.0
    assert config.scope.keyspaces == ("shop",)
    assert config.state_dir == Path("/var/lib/zdm")


def test_password_from_environment(tmp_path):
    path = write(tmp_path, "origin: {username: app, password_env: ORIGIN_PW}\n")
    config = load_config(path, environ={"ORIGIN_PW": "s3cret"})
    assert config.origin.credentials == ("app", "s3cret")


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        ClusterConfig().port = 1  # type: ignore[misc]


BAD = [
    ("unknown-top-key", "origns: {}\n", "zdm.yaml: origns: unknown key", "did you mean `origin`?"),
    ("unknown-nested-key", "origin: {prot: 9042}\n", "zdm.yaml: origin.prot: unknown key",
     "did you mean `origin.port`?"),
    ("wrong-type-port", "target: {port: ninety}\n", "zdm.yaml: target.port: must be a whole number",
     None),
    ("port-out-of-range", "origin: {port: 70000}\n", "zdm.yaml: origin.port: port 70000 is out of range",
     None),
    ("port-zero", "proxy: {listen_port: 0}\n", "zdm.yaml: proxy.listen_port: port 0 is out of range", None),
    ("bool-is-not-int", "origin: {port: true}\n", "origin.port: must be a whole number", None),
    ("section-not-mapping", "origin: 127.0.0.1\n", "zdm.yaml: origin: must be a mapping, not a string",
     None),
    ("top-not-mapping", "- a\n- b\n", "the top level must be a mapping, not a list",
     None),
    ("list-expected", "scope: {keyspaces: {a: 1}}\n", "scope.keyspaces: must be a list", None),
    ("empty-contact-points", "origin: {contact_points: []}\n", "origin.contact_points: needs at least one host",
     None),
    ("bad-protocol", "origin: {protocol_version: 2}\n", "origin.protocol_version: protocol version 2", None),
    ("bad-instance", "proxy: {instances: [localhost]}\n", "proxy.instances[0]: 'localhost' is not host:port",
     "HOST:PORT"),
    ("negative-timeout", "proxy: {request_timeout_s: -1}\n", "proxy.request_timeout_s: must be a positive",
     None),
    ("missing-env", "origin: {username: u, password_env: NOPE_NOT_SET}\n",
     "origin.password_env: environment variable NOPE_NOT_SET is not set", "export NOPE_NOT_SET"),
    ("password-without-user", "target: {password: x}\n", "target.username: a password is set but no username",
     None),
    ("bad-yaml", "origin: {port: 9042\n", "zdm.yaml: not valid YAML at line", None),
    ("state-dir-type", "state_dir: [a]\n", "state_dir: must be a non-empty path string", None),
]


@pytest.mark.parametrize("text, message, hint", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_names_file_and_key(tmp_path, text, message, hint):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(path) in str(info.value)
    assert message in str(info.value)
    if hint:
        assert hint in info.value.hint


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "file not found" in str(info.value) and "zdm init" in info.value.hint


def test_missing_ok_gives_defaults(tmp_path):
    assert load_config(tmp_path / "nope.yaml", missing_ok=True).target.port == 9043


def test_parse_config_without_a_file_names_placeholder():
    with pytest.raises(ConfigError, match="<config>: origin.port"):
        parse_config({"origin": {"port": "x"}}, environ={})


def test_tls_settings_resolve_their_files_against_the_config(tmp_path):
    for name in ("ca.pem", "client.pem", "client.key", "proxy.pem", "proxy.key", "bundle.zip"):
        (tmp_path / name).write_text("x")
    config = load_config(write(tmp_path, """
        origin: {tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client.key}}
        target: {secure_connect_bundle: bundle.zip}
        proxy: {tls: {cert_file: proxy.pem, key_file: proxy.key, ca_file: ca.pem, require_client_auth: true}}
    """))
    assert config.origin.tls.ca_file == tmp_path / "ca.pem" and config.origin.tls.verify_hostname
    assert config.target.secure_connect_bundle == tmp_path / "bundle.zip"
    assert config.proxy.tls.require_client_auth and config.proxy.tls.key_file == tmp_path / "proxy.key"


@pytest.mark.parametrize("text, key, message", [
    ("origin: {tls: {ca_file: missing.pem}}", "origin.tls.ca_file", "no such file"),
    ("origin: {tls: {cert_file: x.pem}}", "origin.tls.key_file", "a certificate needs its key"),
    ("proxy: {tls: {cert_file: x.pem, key_file: x.pem, require_client_auth: true}}", "proxy.tls.ca_file",
     "require_client_auth needs the CA"),
    ("proxy: {tls: {ca_file: x.pem}}", "proxy.tls.cert_file", "is required"),
    ("target: {secure_connect_bundle: x.pem, port: 9043}", "target.port", "cannot be given with it"),
    ("origin: {tls: {verify_hostnames: false}}", "origin.tls.verify_hostnames", "unknown key"),
], ids=["missing-file", "cert-without-key", "client-auth-without-ca", "listener-without-cert",
        "bundle-and-port", "typo"])
def test_bad_tls_settings_name_the_key(tmp_path, text, key, message):
    (tmp_path / "x.pem").write_text("x")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert key in info.value.message and message in info.value.message
