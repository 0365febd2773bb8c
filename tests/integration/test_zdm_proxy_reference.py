"""zdm-proxy's reference configuration, whole, runs a proxy: `zdm proxy start --zdm-proxy-config`
with every key zdm-proxy's reference documents (tests/support/zdm-proxy-reference.yml), or the
same settings as its ZDM_* variables alone, in an empty working directory, and a DataStax driver
application writes and reads through it; every write lands on both clusters, and each key zdm
ignores is said in the proxy's log.

The copy keeps each documented value but these, which cannot work on this machine as documented:
- origin_contact_points / origin_port, target_contact_points / target_port: the sandbox's nodes
  (127.0.0.1:9042 and :9043), not the example's 127.0.0.1 and 127.0.0.2, both on 9042;
- proxy_listen_port and metrics_port: free ports, not 14002 and 14001, which another proxy on
  this machine may hold;
- target_local_datacenter: the sandbox's datacenter1, not DC1, which the sandbox lacks (a proxy
  told of a local datacenter its cluster lacks refuses to start, naming the ones it has).
The rest runs as documented: user1/pass1 and user2/pass2 are never asked for (the sandbox needs
no login); the topology's two other instances (127.0.1.2, 127.0.1.3) are not
running, and the driver, told of them as peers, finds them down and uses this one.
"""

from __future__ import annotations

import os
import re
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.support.net import driver_cluster, free_port, start_proxy_process, stop_proxy_process
from zdm.config.zdmproxy_read import read
from zdm.config.zdmproxy_table import BY_NAME

REFERENCE = Path(__file__).parents[1] / "support" / "zdm-proxy-reference.yml"


def _sandbox_copy(path: Path, changes: dict[str, object]) -> None:
    """The reference with ``changes`` to some keys' values; every other line as it is."""
    text = REFERENCE.read_text()
    for key, value in changes.items():
        text, count = re.subn(rf"(?m)^{key}:.*$", f"{key}: {value}", text)
        assert count == 1, key
    path.write_text(text)


def _as_variables(path: Path) -> dict[str, str]:
    """The file's settings as zdm-proxy's ZDM_* variables (a key with no value: set, empty)."""
    def text(value) -> str:
        return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return {BY_NAME[key].env: text(value) for key, value in yaml.safe_load(path.read_text()).items()}


@pytest.mark.parametrize("source", ["zdm-proxy-file", "environment"])
def test_proxy_started_from_zdm_proxys_whole_reference_serves_an_application(
        source, tmp_path, sandbox, origin_session, target_session):
    port, metrics_port = free_port(), free_port()
    theirs = tmp_path / "zdm-config.yml"
    _sandbox_copy(theirs, {"origin_contact_points": "127.0.0.1", "origin_port": sandbox.origin_port,
                           "target_contact_points": "127.0.0.1", "target_port": sandbox.target_port,
                           "proxy_listen_port": port, "metrics_port": metrics_port,
                           "target_local_datacenter": "datacenter1"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZDM_")}
    if source == "environment":
        variables = _as_variables(theirs)
        env.update(variables)
        ignored, args, described = read(None, variables).ignored(), [], "zdm-proxy's environment variables"
    else:
        ignored, args = read(theirs, {}).ignored(), ["--zdm-proxy-config", str(theirs)]
        described = f"zdm-proxy config {theirs}"
    assert len(ignored) == 11  # the keys zdm has no equivalent of, each with its note
    workdir = tmp_path / "run"
    workdir.mkdir()
    proc = start_proxy_process(None, port, env=env, cwd=workdir, args=args)
    ks = "zr_" + uuid.uuid4().hex[:10]
    cluster = driver_cluster(port)
    try:
        health = f"http://localhost:{metrics_port}/health/readiness"  # metrics_address: localhost
        assert urllib.request.urlopen(health, timeout=10).status == 200
        session = cluster.connect()
        # the documented topology: this instance is proxy_topology_addresses[0], the others peers
        local = session.execute("SELECT rpc_address, rpc_port FROM system.local").one()
        assert (str(local.rpc_address), local.rpc_port) == ("127.0.1.1", port)
        peers = {str(r.rpc_address) for r in session.execute("SELECT rpc_address FROM system.peers")}
        assert peers == {"127.0.1.2", "127.0.1.3"}
        session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"CREATE TABLE {ks}.orders (id int PRIMARY KEY, item text)")
        insert = session.prepare(f"INSERT INTO {ks}.orders (id, item) VALUES (?, ?)")
        for i in range(50):
            session.execute(insert, (i, f"item-{i}"))
        session.execute(f"INSERT INTO {ks}.orders (id, item) VALUES (50, 'item-50')")
        expected = {(i, f"item-{i}") for i in range(51)}
        assert {(r.id, r.item) for r in session.execute(f"SELECT id, item FROM {ks}.orders")} == expected
        for s in (origin_session, target_session):  # dual writes: both clusters have each row
            assert {(r.id, r.item) for r in s.execute(f"SELECT id, item FROM {ks}.orders")} == expected
        assert not (workdir / "zdm.yaml").exists()
    finally:
        cluster.shutdown()
        output = stop_proxy_process(proc)
        for s in (origin_session, target_session):
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=60)
    assert proc.returncode == 0, output
    said = " ".join(output.split())
    assert f"Configured from {described}" in said, output
    for note in ignored:  # each ignored key is said, not silently dropped
        assert f"zdm.config: zdm-proxy setting {note}" in said, note
    assert "pass1" not in output and "pass2" not in output
