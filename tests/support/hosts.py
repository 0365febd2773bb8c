"""Proxies on several hosts, as tests make them on one machine: each proxy bound to its own
loopback address (127.0.0.2, 127.0.0.3) with a working directory of its own, and an
operator's directory beside them; all coordinated through state_store: cassandra."""

from __future__ import annotations

import subprocess
import sys
import time

HOSTS = ("127.0.0.2", "127.0.0.3")


def write_config(directory, ports, *, keyspace, state_keyspace, port, host=None, metrics_port=None,
                 workers=1):
    """``directory``/zdm.yaml for one host: a proxy's (``host`` given) or the operator's."""
    directory.mkdir(parents=True, exist_ok=True)
    proxy = ""
    if host is not None:
        instances = ", ".join(f'"{h}:{port}"' for h in HOSTS)
        proxy = (f"proxy: {{listen_host: {host}, listen_port: {port}, instances: [{instances}], "
                 f"metrics_address: {host}, metrics_port: {metrics_port}, workers: {workers}}}\n")
    (directory / "zdm.yaml").write_text(f"""
origin: {{port: {ports[0]}}}
target: {{port: {ports[1]}}}
{proxy}scope: {{keyspaces: [{keyspace}]}}
state_store: cassandra
state_keyspace: {state_keyspace}
state_dir: state
""")
    return directory / "zdm.yaml"


def zdm(directory, *args, check=True, timeout=600):
    """Run a `zdm` command in ``directory``, as an operator on that host would."""
    done = subprocess.run([sys.executable, "-m", "zdm.cli.main", *args], cwd=directory,
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"zdm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def wait_for(condition, timeout=30.0, what="condition", poll=0.2):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
    return result
