"""zdm's container image, built by `scripts/image` from this checkout and run with podman.

The image is built once for the module, as a user builds it (one command).  Its proxy,
configured by zdm-proxy's ZDM_* variables alone and run with ``--network host`` against the
sandbox, serves the demo's application (dual writes, reads back what it wrote); its health
check is ``zdm proxy health``; ``podman stop`` (SIGTERM) drains it, and every write the
application saw acknowledged is on both clusters.  Without settings it exits at once, naming
what to set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/zdm:test"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZDM_")}
    env.setdefault("CONTAINERS_CONF", str(ROOT / "deploy" / "container" / "containers.conf"))
    return env


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    assert shutil.which("podman"), "podman is not installed: run scripts/setup (it installs podman from Debian)"
    started = time.monotonic()
    built = subprocess.run(["bash", "scripts/image", "--tag", IMAGE], cwd=ROOT, env=_env(),
                           capture_output=True, text=True, timeout=1200)
    assert built.returncode == 0, built.stdout + built.stderr
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    print(f"scripts/image built {IMAGE} in {time.monotonic() - started:.0f} s: {size / 1e6:.0f} MB\n"
          f"{built.stdout.strip()}")
    return IMAGE


def test_the_image_runs_zdm_as_a_user_of_its_own_without_the_test_tools(image):
    (info,) = json.loads(podman("image", "inspect", image).stdout)
    config = info["Config"]
    assert config["Entrypoint"] == ["zdm"] and config["Cmd"] == ["proxy", "start"]
    assert config["User"] == "10001:10001"
    assert info["Healthcheck"]["Test"] == ["CMD", "zdm", "proxy", "health"]
    assert config["StopSignal"] in ("SIGTERM", "15")
    run = podman("run", "--rm", image, "--version")
    assert run.returncode == 0 and f"zdm {VERSION}" in run.stdout, run.stdout + run.stderr
    probe = ("import importlib.util as u, os; "
             "print(os.getuid(), [m for m in ('uvloop', 'cassandra', 'lz4', 'pytest', 'hypothesis', 'matplotlib', "
             "'pyspark') if u.find_spec(m)])")
    run = podman("run", "--rm", "--entrypoint", "python", image, "-c", probe)
    assert run.stdout.split(None, 1) == ["10001", "['uvloop', 'cassandra', 'lz4']\n"], run.stdout + run.stderr


def test_a_container_without_settings_exits_at_once_saying_what_to_set(image):
    started = time.monotonic()
    run = podman("run", "--rm", image, timeout=60)
    said = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 2, said
    assert "ZDM_ORIGIN_CONTACT_POINTS" in said and "ZDM_CONFIG" in said, said
    run = podman("run", "--rm", "-e", "ZDM_ORIGIN_CONTACT_POINTS=127.0.0.1", image, timeout=60)
    said = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 2 and "ZDM_TARGET_CONTACT_POINTS: not set" in said, said
    assert time.monotonic() - started < 60


def test_the_images_proxy_serves_the_demo_application_and_drains_on_stop(image, sandbox):
    from zdm.config import ClusterConfig, Config
    from zdm.demo import DEMO_KEYSPACE, _Application, _count, _prepare_data

    config = Config(origin=ClusterConfig(port=sandbox.origin_port), target=ClusterConfig(port=sandbox.target_port))
    history = _prepare_data(config, 200)
    port, metrics = free_port(), free_port()
    name = "zdm-test-" + uuid.uuid4().hex[:8]
    settings = {"ZDM_ORIGIN_CONTACT_POINTS": "127.0.0.1", "ZDM_ORIGIN_PORT": str(sandbox.origin_port),
                "ZDM_TARGET_CONTACT_POINTS": "127.0.0.1", "ZDM_TARGET_PORT": str(sandbox.target_port),
                "ZDM_PROXY_LISTEN_ADDRESS": "127.0.0.1", "ZDM_PROXY_LISTEN_PORT": str(port),
                "ZDM_METRICS_ADDRESS": "127.0.0.1", "ZDM_METRICS_PORT": str(metrics)}
    env_args = [a for k, v in settings.items() for a in ("-e", f"{k}={v}")]
    # no systemd here to run the health check on a timer: the test runs it
    started = podman("run", "-d", "--name", name, "--network", "host", "--health-interval", "disable",
                     *env_args, image)
    assert started.returncode == 0, started.stderr
    app = None
    try:
        deadline = time.monotonic() + 120
        while True:
            check = podman("healthcheck", "run", name)
            if check.returncode == 0:
                break
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            assert state == "running" and time.monotonic() < deadline, \
                f"not healthy ({state}): {check.stdout}{check.stderr}\n{podman('logs', name).stderr}"
            time.sleep(1)
        app = _Application(config, port, 200.0, history)
        app.start()
        while app.writes < 400:
            assert app.errors == 0 and time.monotonic() < deadline + 120, (app.errors, app.writes)
            time.sleep(0.2)
        # SIGTERM while the application writes: the proxy drains, then exits by itself
        errors_before, acknowledged_before = app.errors, len(app.acknowledged)
        stop_started = time.monotonic()
        stopped = podman("stop", "--time", "60", name, timeout=120)
        stop_took = time.monotonic() - stop_started
        assert stopped.returncode == 0, stopped.stderr
    finally:
        if app is not None:
            app.stop()
        logs = podman("logs", name)
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        podman("rm", "-f", name)
    output = logs.stdout + logs.stderr
    print(f"{app.writes} writes, {app.reads} reads, {app.tags} tags through the image's proxy; "
          f"podman stop took {stop_took:.1f} s\n{output[-1500:]}")
    assert errors_before == 0 and app.misses == 0
    assert "draining in-flight requests" in output, output[-3000:]
    assert exit_code == "0" and stop_took < 50, f"exit code {exit_code} after {stop_took:.0f} s: not drained"
    acknowledged = set(app.acknowledged)
    assert len(acknowledged) >= acknowledged_before >= 400
    for cfg, where in ((config.origin, "origin"), (config.target, "target")):
        missing = acknowledged - _count(cfg, where)
        assert not missing, f"{where} lacks {len(missing)} acknowledged writes of {DEMO_KEYSPACE}"
