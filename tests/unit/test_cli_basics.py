"""CLI paths that need no cluster: init, config errors, sandbox arguments, --debug."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from zdm.cli.main import app
from zdm.config import load_config

runner = CliRunner()


def test_init_writes_a_valid_template(tmp_path):
    path = tmp_path / "zdm.yaml"
    result = runner.invoke(app, ["init", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert load_config(path).target.port == 9043
    assert "# zdm.yaml" in path.read_text()


def test_init_refuses_to_overwrite(tmp_path):
    path = tmp_path / "zdm.yaml"
    path.write_text("origin: {port: 9999}\n")
    result = runner.invoke(app, ["init", "--config", str(path)])
    assert result.exit_code == 2
    assert "already exists" in result.output and "--force" in result.output
    assert path.read_text() == "origin: {port: 9999}\n"  # nothing lost
    assert runner.invoke(app, ["init", "--config", str(path), "--force"]).exit_code == 0
    assert load_config(path).origin.port == 9042


def test_sandbox_status_without_a_sandbox(tmp_path):
    result = runner.invoke(app, ["sandbox", "status", "--dir", str(tmp_path / "none")])
    assert result.exit_code == 0
    assert "No sandbox" in result.output


def test_sandbox_up_reports_bad_config_file(tmp_path):
    cfg = tmp_path / "zdm.yaml"
    cfg.write_text("origin: {port: nope}\n")
    result = runner.invoke(app, ["sandbox", "up", "--dir", str(tmp_path / "sb"), "--config", str(cfg)])
    assert result.exit_code == 2
    assert "origin.port: must be a whole number" in result.output


@pytest.mark.parametrize("args, message", [
    (["sandbox", "up", "--origin-port", "9042", "--target-port", "9042"], "ports must all differ"),
    (["sandbox", "up", "--heap-mb", "64"], "too small"),
    (["sandbox", "up", "--origin-port", "80"], "out of range"),
], ids=["same-ports", "tiny-heap", "privileged-port"])
def test_sandbox_up_rejects_bad_settings(tmp_path, args, message):
    result = runner.invoke(app, [*args, "--dir", str(tmp_path / "sb"), "--config", str(tmp_path / "none.yaml")])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "sb").exists()  # refused before anything was written


def test_unknown_option_is_a_usage_error():
    result = runner.invoke(app, ["sandbox", "up", "--bogus"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_debug_reraises(tmp_path):
    path = tmp_path / "zdm.yaml"
    path.write_text("x: 1\n")
    result = runner.invoke(app, ["--debug", "init", "--config", str(path)])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "ConfigError"
