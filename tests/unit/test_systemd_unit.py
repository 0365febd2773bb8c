"""deploy/systemd/zdm-proxy.service: `systemd-analyze verify` accepts every line of it, and it
says what the README and the proxy rely on (notify, reload by SIGHUP, SIGTERM to the instance
only, a stop timeout longer than the drain, the file descriptors of 1,000 clients).

verify checks that ExecStart's program exists and is executable; the unit names the documented
virtualenv (/opt/zdm/bin/zdm), which a test machine lacks, so the copy verified here runs this
environment's `zdm` (or its Python) instead, every other line unchanged."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "zdm-proxy.service"
INSTALLED = "/opt/zdm/bin/zdm"


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def verify(unit: Path) -> subprocess.CompletedProcess:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)


def here_executable() -> str:
    zdm = Path(sys.executable).parent / "zdm"
    return str(zdm) if zdm.exists() else sys.executable


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED} proxy start" in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED, here_executable()))
    result = verify(copy)
    # verify exits 0 on an unknown key or a value it cannot parse ("..., ignoring"): any line
    # about the unit fails the test
    about_it = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert result.returncode == 0 and not about_it, result.stdout + result.stderr


def test_verify_would_catch_a_mistake(tmp_path):
    """The check above can fail: a misspelt key and a missing program are reported."""
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("ProtectHome=", "ProtectHomes=")
                    .replace(INSTALLED, str(tmp_path / "missing" / "zdm")))
    result = verify(copy)
    out = result.stdout + result.stderr
    assert "ProtectHomes" in out and "missing/zdm" in out and result.returncode != 0, out


def test_the_unit_says_what_the_proxy_relies_on():
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"]  # READY=1 once it listens (zdm.proxy.sd_notify)
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["KillMode"] == ["mixed"] and d["KillSignal"] == ["SIGTERM"]
    # the instance drains 10 s, then waits 10 s more for a worker before killing it
    assert int(d["TimeoutStopSec"][0].rstrip("s")) > 20
    assert int(d["LimitNOFILE"][0]) >= 1000 * 4
    assert d["Restart"] == ["on-failure"]
    assert d["RestartPreventExitStatus"] == ["2"]  # zdm's exit code for a configuration error
    assert d["User"] == ["zdm"] and d["StateDirectory"] == ["zdm"] and d["ConfigurationDirectory"] == ["zdm"]
    assert "--config /etc/zdm/zdm.yaml" in d["ExecStart"][0]
    assert d["CapabilityBoundingSet"] == [""] and d["NoNewPrivileges"] == ["yes"]


def test_a_configuration_error_exits_with_the_code_the_unit_does_not_restart(tmp_path):
    from zdm.errors import ConfigError

    assert ConfigError.exit_code == 2
    bad = tmp_path / "zdm.yaml"
    bad.write_text("origin: {port: [}\n")
    result = subprocess.run([sys.executable, "-m", "zdm.cli.main", "proxy", "start", "--config", str(bad)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
