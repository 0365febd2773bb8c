"""The demo on a TLS sandbox (`zdm sandbox up --tls --auth`, then `zdm init`, then `zdm demo`), as
a user runs it: every connection is encrypted, which the test proves by sending a plaintext CQL
STARTUP to every port the demo and the nodes listen on while the demo runs (none may answer;
each CQL port must answer the same STARTUP over TLS); and no secret (the password, any private
key) appears in anything zdm wrote: its output, its state and journal, `zdm status` and
`zdm preflight` (plain and --json), and its error messages."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.net import answers_plaintext_startup, answers_tls_startup, free_port, listening_ports
from zdm.clusters.connect import session
from zdm.sandbox import node
from zdm.sandbox.tls import client_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def login(tls_config):
    """A login of its own, with a password no other text contains, on both clusters."""
    user = "zdm_" + secrets.token_hex(4)
    password = "pw-" + secrets.token_urlsafe(18)
    for name, cfg in (("origin", tls_config.origin), ("target", tls_config.target)):
        with session(cfg, name=name) as s:
            s.execute(f"CREATE ROLE {user} WITH PASSWORD = '{password}' AND LOGIN = true "
                      "AND SUPERUSER = true", timeout=30)
    yield user, password
    for name, cfg in (("origin", tls_config.origin), ("target", tls_config.target)):
        with session(cfg, name=name) as s:
            s.execute(f"DROP ROLE IF EXISTS {user}", timeout=30)


def _zdm(*args, env, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", "zdm.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


class PortProbe:
    """While ``pid`` runs: every listening port of it and of the nodes, probed once each with a
    plaintext STARTUP and with a TLS one."""

    def __init__(self, pid: int, node_pids: list[int], tls_context) -> None:
        self.pids = [pid, *node_pids]
        self.tls_context = tls_context
        self.plaintext: dict[int, bool] = {}
        self.tls: dict[int, bool] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for pid in self.pids:
                for port in listening_ports(pid) - set(self.plaintext):
                    self.plaintext[port] = answers_plaintext_startup(port)
                    self.tls[port] = answers_tls_startup(port, self.tls_context)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)


def _private_key_lines(directory: Path) -> list[str]:
    """Every base64 line of every private key under ``directory`` (the CA's, the nodes', zdm's,
    the proxy's)."""
    lines = []
    for path in directory.iterdir():
        text = path.read_text()
        if "PRIVATE KEY" in text:
            block = text.split("-----BEGIN PRIVATE KEY-----", 1)[1].split("-----END PRIVATE KEY-----")[0]
            lines += [line for line in block.split() if len(line) >= 16]
    return lines


def _everything_written(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                out[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return out


@pytest.fixture()
def tls_yaml(tls_sandbox, login, tmp_path):
    """`zdm init --sandbox` for the TLS sandbox, with the login of ``login`` and a free proxy port;
    returns (zdm.yaml, the environment with the passwords, what init printed)."""
    user, password = login
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "ZDM_ORIGIN_PASSWORD": password, "ZDM_TARGET_PASSWORD": password,
           "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    env.pop("ZDM_CONFIG", None)
    config = work / "zdm.yaml"
    init = _zdm("init", "--config", str(config), "--sandbox", str(tls_sandbox.settings.directory),
                env=env, cwd=work)
    assert init.returncode == 0, init.stderr
    text = config.read_text().replace("username: cassandra ", f"username: {user} ")
    config.write_text(text.replace("listen_port: 14002", f"listen_port: {free_port()}"))
    return config, env, init.stdout + init.stderr


def _operator_commands(config: Path, env: dict, password: str) -> dict[str, str]:
    """What an operator runs beside the demo, and zdm's errors for a wrong password and a
    missing certificate file."""
    work = config.parent
    outputs = {}
    for args in (("status",), ("status", "--json"), ("preflight",), ("preflight", "--json")):
        result = _zdm(*args, "--config", str(config), env=env, cwd=work)
        outputs[" ".join(args)] = result.stdout + result.stderr
    wrong = _zdm("preflight", "--config", str(config), env={**env, "ZDM_TARGET_PASSWORD": password[::-1]},
                 cwd=work)
    assert wrong.returncode != 0 and "login refused" in wrong.stdout + wrong.stderr
    outputs["wrong password"] = wrong.stdout + wrong.stderr
    broken = work / "broken.yaml"
    broken.write_text(config.read_text().replace("cert_file: ", "cert_file: ../../nowhere/", 1))
    outputs["broken"] = _zdm("preflight", "--config", str(broken), env=env, cwd=work).stderr
    assert "no such file" in outputs["broken"]
    return outputs


def _assert_no_secret(written: dict[str, str], password: str, key_dir: Path) -> None:
    keys = _private_key_lines(key_dir)
    assert keys and password
    for where, text in written.items():
        assert password not in text, f"the password is in {where}"
        assert password[::-1] not in text, f"the wrong password is in {where}"
        assert not [line for line in keys if line in text], f"a private key is in {where}"


def test_no_secret_in_what_zdm_writes_over_tls(tls_yaml, login, sandbox_tls, tls_config):
    """Without the proxy: init, preflight, status, migrate, validate and error messages."""
    config, env, init_output = tls_yaml
    _, password = login
    keyspace = "secrets_" + secrets.token_hex(4)
    for name, cfg in (("origin", tls_config.origin), ("target", tls_config.target)):
        with session(cfg, name=name) as s:
            s.execute(f"CREATE KEYSPACE {keyspace} WITH replication = "
                      "{'class': 'SimpleStrategy', 'replication_factor': 1}", timeout=60)
            s.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)", timeout=60)
            if name == "origin":
                for k in range(50):
                    s.execute(f"INSERT INTO {keyspace}.t (k, v) VALUES ({k}, 'v{k}')")
    try:
        outputs = {"init": init_output, **_operator_commands(config, env, password)}
        for args in (("migrate", "--workers", "0", "--no-progress"),
                     ("validate", "--workers", "0", "--no-progress")):
            result = _zdm(*args, "--config", str(config), "--keyspace", keyspace, env=env, cwd=config.parent)
            outputs[args[0]] = result.stdout + result.stderr
            assert result.returncode == 0, outputs[args[0]]
    finally:
        for name, cfg in (("origin", tls_config.origin), ("target", tls_config.target)):
            with session(cfg, name=name) as s:
                s.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    assert "Origin and target agree" in outputs["validate"]
    written = {**outputs, **_everything_written(config.parent)}
    assert any(name.endswith("journal.jsonl") for name in written), sorted(written)
    _assert_no_secret(written, password, sandbox_tls.directory)


def test_the_demo_over_tls_encrypts_every_connection_and_keeps_its_secrets(
        tls_sandbox, sandbox_tls, login, tls_yaml):
    config, env, init_output = tls_yaml
    _, password = login
    work = config.parent
    from zdm.config import load_config

    proxy_port = load_config(config, environ=env).proxy.listen_port
    node_pids = [node.read_pid(spec) for spec in tls_sandbox.settings.nodes()]
    demo = subprocess.Popen([sys.executable, "-m", "zdm.cli.main", "demo", "--config", str(config),
                             "--rows", "300", "--rate", "40"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    probe = PortProbe(demo.pid, node_pids, client_context(sandbox_tls, client_cert=True))
    try:
        out, err = demo.communicate(timeout=600)
    finally:
        probe.stop()
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, out + err
    assert "No downtime, no lost write" in out

    # every port: the proxy's, the nodes' CQL and internode ones, anything else the demo opened
    nodes = {p for spec in tls_sandbox.settings.nodes() for p in (spec.native_port, spec.storage_port)}
    assert {proxy_port} | nodes <= set(probe.plaintext), probe.plaintext
    assert not any(probe.plaintext.values()), probe.plaintext
    cql_ports = {proxy_port} | {spec.native_port for spec in tls_sandbox.settings.nodes()}
    assert all(probe.tls[p] for p in cql_ports), probe.tls  # they do speak CQL, over TLS

    outputs = {"init": init_output, "demo": out + err, **_operator_commands(config, env, password)}
    written = {**outputs, **_everything_written(work)}
    assert any(name.endswith("journal.jsonl") for name in written), sorted(written)
    _assert_no_secret(written, password, sandbox_tls.directory)
