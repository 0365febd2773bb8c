"""Proxies on several hosts, as tests make them on one machine: each proxy bound to its own
loopback address (127.0.0.2, 127.0.0.3) with a working directory of its own, and an
operator's directory beside them; all coordinated through state_store: cassandra."""

from __future__ import annotations

import json
import subprocess
import sys
import time

HOSTS = ("127.0.0.2", "127.0.0.3")


def write_config(directory, clusters, *, keyspace, state_keyspace, port, host=None, metrics_port=None,
                 workers=1):
    """``directory``/zdm.yaml for one host: a proxy's (``host`` given) or the operator's;
    ``clusters`` (a zdm Config) says which nodes of origin and target this host contacts."""
    directory.mkdir(parents=True, exist_ok=True)
    proxy = ""
    if host is not None:
        instances = ", ".join(f'"{h}:{port}"' for h in HOSTS)
        proxy = (f"proxy: {{listen_host: {host}, listen_port: {port}, instances: [{instances}], "
                 f"metrics_address: {host}, metrics_port: {metrics_port}, workers: {workers}}}\n")
    (directory / "zdm.yaml").write_text(f"""
origin: {_cluster(clusters.origin)}
target: {_cluster(clusters.target)}
{proxy}scope: {{keyspaces: [{keyspace}]}}
state_store: cassandra
state_keyspace: {state_keyspace}
state_dir: state
""")
    return directory / "zdm.yaml"


def _cluster(config) -> str:
    return f"{{contact_points: [{', '.join(config.contact_points)}], port: {config.port}}}"


def zdm(directory, *args, check=True, timeout=600):
    """Run a `zdm` command in ``directory``, as an operator on that host would."""
    done = subprocess.run([sys.executable, "-m", "zdm.cli.main", *args], cwd=directory,
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"zdm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def status(operator_dir) -> dict:
    """`zdm status --json` as the operator in ``operator_dir`` sees it."""
    return json.loads(zdm(operator_dir, "status", "--json").stdout)


def wait_for(condition, timeout=30.0, what="condition", poll=0.2):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
    return result


def proxy_hosts(tmp_path, zdm_config, origin_session, target_session, *, prefix: str, workers: int,
                replication: tuple[int, int] = (1, 1), contacts=None, rows: int = 0):
    """A keyspace ``<prefix>_<random>`` with table ``t (k int PRIMARY KEY, v text)`` on both
    clusters (SimpleStrategy, ``replication`` factors on origin and on target), a working
    directory for a proxy on each of HOSTS and one for the operator, all sharing a fresh state
    keyspace on target; yields a dict with ``keyspace``, ``port``, ``dirs``, ``operator``,
    ``state_keyspace``, ``procs`` and ``start(host)``, and stops the proxies and drops both
    keyspaces afterwards.  ``contacts`` (host -> Config) gives a proxy other contact points
    than ``zdm_config``'s, which the operator uses; ``rows`` rows (k, "v<k>") are on origin
    from the start.  For a pytest fixture to ``yield from``."""
    import uuid

    from tests.support.net import free_port, start_proxy_process

    keyspace, state_keyspace = f"{prefix}_{uuid.uuid4().hex[:8]}", "zdm_state_" + uuid.uuid4().hex[:8]
    for s, rf in zip((origin_session, target_session), replication):
        s.execute(f"CREATE KEYSPACE {keyspace} WITH replication = "
                  f"{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}")
        s.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    for k in range(rows):
        origin_session.execute(f"INSERT INTO {keyspace}.t (k, v) VALUES (%s, %s)", (k, f"v{k}"))
    port = free_port()
    contacts = contacts or {}
    dirs = {h: write_config(tmp_path / f"proxy-{h}", contacts.get(h, zdm_config), keyspace=keyspace,
                            state_keyspace=state_keyspace, port=port, host=h, metrics_port=free_port(),
                            workers=workers).parent
            for h in HOSTS}
    operator = write_config(tmp_path / "operator", zdm_config, keyspace=keyspace,
                            state_keyspace=state_keyspace, port=port).parent
    procs: dict = {}

    def start(host):
        procs[host] = start_proxy_process(dirs[host] / "zdm.yaml", port, timeout=90, host=host,
                                          cwd=dirs[host])

    yield {"keyspace": keyspace, "port": port, "dirs": dirs, "operator": operator, "start": start,
           "procs": procs, "state_keyspace": state_keyspace}
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
    for s in (origin_session, target_session):
        s.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    target_session.execute(f"DROP KEYSPACE IF EXISTS {state_keyspace}", timeout=60)
