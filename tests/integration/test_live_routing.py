"""The whole operator flow through the CLI, with a real proxy process and a connected
application session: preflight, phases 0 to 4 with a real migration and validation, reads
moving to target live (no reconnect), and a rollback moving them back to origin."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from typer.testing import CliRunner

from tests.support.net import driver_cluster, free_port, start_proxy_process
from zdm.cli.main import app

runner = CliRunner()


def zdm(config, *args, expect=0):
    result = runner.invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == expect, f"zdm {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.output


@pytest.fixture()
def flow(tmp_path, zdm_config, origin_session, target_session):
    ks = "live_" + uuid.uuid4().hex[:8]
    for s in (origin_session, target_session):
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    origin_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, 'pre-existing')")
    port = free_port()
    config = tmp_path / "zdm.yaml"
    config.write_text(f"""
origin: {{port: {zdm_config.origin.port}}}
target: {{port: {zdm_config.target.port}}}
proxy: {{listen_port: {port}, metrics_port: {free_port()}}}
scope: {{keyspaces: [{ks}]}}
state_dir: state
""")
    proxy = start_proxy_process(config, port)
    yield config, ks, port
    proxy.terminate()
    try:
        proxy.wait(20)
    except subprocess.TimeoutExpired:
        proxy.kill()
    for s in (origin_session, target_session):
        s.execute(f"DROP KEYSPACE IF EXISTS {ks}")


def test_reads_follow_the_phase_live(flow, origin_session, target_session):
    config, ks, port = flow
    zdm(config, "phase", "advance", expect=1)  # no preflight yet: refused
    zdm(config, "preflight")
    time.sleep(1.5)  # the proxy publishes its health about once a second
    zdm(config, "phase", "advance")  # 0 -> 1
    cluster = driver_cluster(port, 5)
    app_session = cluster.connect()
    select = app_session.prepare(f"SELECT v FROM {ks}.t WHERE k = ?")
    app_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (2, 'dual-written')")
    zdm(config, "phase", "advance", expect=1)  # clients not confirmed on the proxy
    zdm(config, "phase", "advance", "--confirm-clients-on-proxy")  # 1 -> 2
    zdm(config, "migrate")
    zdm(config, "validate")
    assert target_session.execute(f"SELECT v FROM {ks}.t WHERE k = 1").one().v == "pre-existing"

    # a row only target has tells which cluster answers the application's reads
    target_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (3, 'target-only')")
    assert app_session.execute(select, (3,)).one() is None
    zdm(config, "phase", "advance", "--to", "4", "--skip-async-reads")
    assert app_session.execute(select, (3,)).one().v == "target-only"
    assert app_session.execute(f"SELECT v FROM {ks}.t WHERE k = 3").one().v == "target-only"
    status = json.loads(zdm(config, "status", "--json"))
    assert status["phase"] == 4

    zdm(config, "rollback", "--to", "2")
    assert app_session.execute(select, (3,)).one() is None
    assert app_session.execute(select, (1,)).one().v == "pre-existing"
    cluster.shutdown()
