"""The CLI with zdm-proxy's configuration, where no cluster is needed: `zdm init --from-zdm-proxy`
and the refusals of `zdm proxy start` (each before anything listens or connects)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zdm.cli.main import app
from zdm.config import load_config
from zdm.config.zdmproxy_read import is_zdm_proxy_variable, read

runner = CliRunner()

REFERENCE = """\
primary_cluster: ORIGIN
read_mode: PRIMARY_ONLY
origin_contact_points: 127.0.0.1
origin_port: 9042
origin_username: user1
origin_password: pass1
target_contact_points: 127.0.0.2
target_port: 9042
target_username: user2
target_password: pass2
proxy_listen_address: localhost
proxy_listen_port: 14002
"""
ENV = {"ZDM_ORIGIN_CONTACT_POINTS": "127.0.0.1", "ZDM_TARGET_CONTACT_POINTS": "127.0.0.1",
       "ZDM_TARGET_PORT": "9043", "ZDM_ORIGIN_USERNAME": "", "ZDM_ORIGIN_PASSWORD": "",
       "ZDM_TARGET_USERNAME": "", "ZDM_TARGET_PASSWORD": ""}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No zdm-proxy variable of the developer's leaks in; the working directory is empty."""
    for name in list(os.environ):
        if is_zdm_proxy_variable(name) or name == "ZDM_CONFIG":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_init_from_zdm_proxy_writes_the_equivalent(tmp_path):
    (tmp_path / "zdm-config.yml").write_text(REFERENCE)
    result = runner.invoke(app, ["init", "--from-zdm-proxy", "zdm-config.yml"])
    assert result.exit_code == 0, result.output
    assert "export ZDM_ORIGIN_PASSWORD and ZDM_TARGET_PASSWORD" in " ".join(result.output.split())
    text = (tmp_path / "zdm.yaml").read_text()
    assert "pass1" not in text and "# origin_contact_points" in text
    config = load_config("zdm.yaml", environ={"ZDM_ORIGIN_PASSWORD": "pass1", "ZDM_TARGET_PASSWORD": "pass2"})
    assert config.origin.endpoints() == [("127.0.0.1", 9042)]
    assert config.target.endpoints() == [("127.0.0.2", 9042)]
    assert config.target.credentials == ("user2", "pass2")
    assert config.origin.connect_timeout_s == 30.0 and config.proxy.advertise_host == "127.0.0.1"


def test_init_converts_zdm_proxys_whole_reference_configuration(tmp_path):
    """Every key zdm-proxy's reference documents, at its documented value: the written zdm.yaml
    is the same configuration, and it lists, with the reason, each key zdm ignores."""
    reference = Path(__file__).parents[1] / "support" / "zdm-proxy-reference.yml"
    shutil.copy(reference, tmp_path / "zdm-config.yml")
    result = runner.invoke(app, ["init", "--from-zdm-proxy", "zdm-config.yml"])
    assert result.exit_code == 0, result.output
    t = read(Path("zdm-config.yml"), {})
    assert f"{len(t.accepted)} of its settings have no zdm equivalent and are ignored" in _said(result)
    config = load_config("zdm.yaml", environ={"ZDM_ORIGIN_PASSWORD": "pass1", "ZDM_TARGET_PASSWORD": "pass2"})
    expected = t.config()
    for name in ("origin", "target"):
        assert dataclasses.replace(getattr(config, name), password_env=None) == getattr(expected, name)
    assert config.proxy == expected.proxy and config.proxy.tls is None
    text = (tmp_path / "zdm.yaml").read_text()
    for g in t.accepted:
        assert f"#   {g.key}: " in text and g.setting.reason in text


def test_init_from_zdm_proxy_refuses_to_overwrite(tmp_path):
    (tmp_path / "zdm-config.yml").write_text(REFERENCE)
    (tmp_path / "zdm.yaml").write_text("origin: {port: 9999}\n")
    result = runner.invoke(app, ["init", "--from-zdm-proxy", "zdm-config.yml"])
    assert result.exit_code == 2 and "already exists" in result.output and "--force" in result.output
    assert (tmp_path / "zdm.yaml").read_text() == "origin: {port: 9999}\n"
    result = runner.invoke(app, ["init", "--from-zdm-proxy", "zdm-config.yml", "--force"])
    assert result.exit_code == 0, result.output
    assert load_config("zdm.yaml", environ={"ZDM_ORIGIN_PASSWORD": "", "ZDM_TARGET_PASSWORD": ""}).origin.port == 9042


def test_init_from_zdm_proxy_writes_nothing_for_a_refused_setting(tmp_path):
    (tmp_path / "zdm-config.yml").write_text(REFERENCE + "proxy_max_stream_ids: 4096\n")
    result = runner.invoke(app, ["init", "--from-zdm-proxy", "zdm-config.yml"])
    assert result.exit_code == 2
    assert "zdm-proxy config zdm-config.yml: proxy_max_stream_ids: 4096 is refused" in " ".join(result.output.split())
    assert not (tmp_path / "zdm.yaml").exists()


def _start(env: dict[str, str], *args: str):
    return runner.invoke(app, ["proxy", "start", *args], env=env)


def _said(result) -> str:
    return " ".join(result.output.split())


def test_proxy_start_refuses_a_primary_cluster_the_phase_does_not_have():
    result = _start({**ENV, "ZDM_PRIMARY_CLUSTER": "TARGET", "ZDM_ORIGIN_PASSWORD": "s3cr3t-pw",
                     "ZDM_ORIGIN_USERNAME": "app"})
    assert result.exit_code == 2
    said = _said(result)
    assert ("ZDM_PRIMARY_CLUSTER=TARGET: this means reads from target, but the migration is in phase "
            "0 PLAN, which reads from origin") in said
    assert "remove ZDM_PRIMARY_CLUSTER" in said and "zdm phase advance" in said
    assert "s3cr3t-pw" not in said


def test_proxy_start_refuses_zdm_proxy_variables_beside_a_zdm_yaml(tmp_path):
    (tmp_path / "zdm.yaml").write_text("{}\n")
    result = _start({"ZDM_ORIGIN_PORT": "9042"})
    assert result.exit_code == 2
    assert "zdm.yaml: zdm-proxy's settings are set in the environment too (ZDM_ORIGIN_PORT)" in _said(result)


def test_proxy_start_refuses_a_misspelt_variable():
    result = _start({**ENV, "ZDM_PROXY_LISTEN_PROT": "14002"})
    assert result.exit_code == 2
    assert "ZDM_PROXY_LISTEN_PROT: is not a zdm-proxy setting" in _said(result)
    assert "did you mean ZDM_PROXY_LISTEN_PORT?" in _said(result)


def test_proxy_start_without_any_configuration_says_what_to_do():
    result = _start({})
    assert result.exit_code == 2
    assert "zdm.yaml: file not found" in _said(result) and "--zdm-proxy-config FILE" in _said(result)
    # the variables to set, by name (a container is configured by them alone)
    assert "ZDM_CONFIG" in _said(result)
    assert "ZDM_ORIGIN_CONTACT_POINTS" in _said(result) and "ZDM_TARGET_CONTACT_POINTS" in _said(result)


def test_proxy_start_zdm_proxy_file_beside_zdm_yaml(tmp_path):
    (tmp_path / "zdm-config.yml").write_text(REFERENCE)
    (tmp_path / "zdm.yaml").write_text("{}\n")
    result = _start({}, "--zdm-proxy-config", "zdm-config.yml")
    assert result.exit_code == 2
    assert "--zdm-proxy-config: a zdm.yaml is given too (zdm.yaml)" in _said(result)
