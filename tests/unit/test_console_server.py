"""Serving the console (zdm.console.server, `zdm console`): loopback by default, any other
address only with a token, the token file created once and read after."""

from __future__ import annotations

import stat

import pytest
from typer.testing import CliRunner

from zdm.cli.main import app
from zdm.console.server import LOOPBACK_HOSTS, is_loopback, plan_serving, read_or_create_token
from zdm.errors import ConfigError


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("console.example.com", False),
])
def test_which_addresses_are_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_loopback_needs_no_token_and_answers_only_loopback_names():
    serving = plan_serving("127.0.0.1", 8765, None, None, None)
    assert serving.token is None and serving.allowed_hosts == LOOPBACK_HOSTS
    assert serving.url == "http://127.0.0.1:8765/"


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
def test_another_address_without_a_token_is_refused_saying_what_to_do(host):
    with pytest.raises(ConfigError) as info:
        plan_serving(host, 8765, None, None, None)
    assert "without a token" in info.value.message
    assert "--token-file" in info.value.hint and "127.0.0.1" in info.value.hint


def test_a_token_file_is_created_once_readable_by_its_owner_only_then_read(tmp_path):
    path = tmp_path / "console.token"
    token, created = read_or_create_token(path)
    assert created and len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_token(path) == (token, False)
    serving = plan_serving("0.0.0.0", 8443, path, None, None)
    assert (serving.token, serving.token_created, serving.allowed_hosts) == (token, False, ("*",))
    serving = plan_serving("10.1.2.3", 8443, path, None, None)
    assert "10.1.2.3" in serving.allowed_hosts and "attacker.example" not in serving.allowed_hosts


@pytest.mark.parametrize("content", ["", "\n", "short\n"], ids=["empty", "blank", "too-short"])
def test_a_token_file_without_a_usable_token_is_refused(tmp_path, content):
    path = tmp_path / "console.token"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        read_or_create_token(path)
    assert "no token" in info.value.message and "delete it" in info.value.hint


def test_tls_needs_both_files(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="go together"):
        plan_serving("127.0.0.1", 8765, None, cert, None)
    with pytest.raises(ConfigError, match="is not a file"):
        plan_serving("127.0.0.1", 8765, None, cert, tmp_path / "missing.pem")
    key = tmp_path / "key.pem"
    key.write_text("x")
    serving = plan_serving("127.0.0.1", 8765, None, cert, key)
    assert serving.url == "https://127.0.0.1:8765/"


def test_zdm_console_refuses_another_address_without_a_token(tmp_path):
    cfg = tmp_path / "zdm.yaml"
    cfg.write_text("state_dir: st\n")
    result = CliRunner().invoke(app, ["console", "--config", str(cfg), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "without a token" in text and "--token-file" in text
