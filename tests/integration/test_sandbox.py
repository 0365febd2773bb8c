"""The sandbox is two real, separate Cassandra 5.0 clusters that the real driver reads and writes
(the older releases it runs are tried in test_old_origin*.py)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from zdm.cli.main import app
from zdm.clusters.connect import ConnectError, session
from zdm.config import ClusterConfig

import pytest


def test_write_and_read_back_on_both_clusters(origin_session, target_session, keyspace):
    for s, who in ((origin_session, "origin"), (target_session, "target")):
        s.execute(f"CREATE TABLE {keyspace}.kv (k int PRIMARY KEY, v text)")
        s.execute(f"INSERT INTO {keyspace}.kv (k, v) VALUES (1, %s) USING TIMESTAMP 1000", (who,))
    assert origin_session.execute(f"SELECT v, writetime(v) AS wt FROM {keyspace}.kv WHERE k = 1").one() \
        == ("origin", 1000)
    assert target_session.execute(f"SELECT v FROM {keyspace}.kv WHERE k = 1").one().v == "target"


def test_clusters_are_separate(origin_session, target_session, keyspace):
    origin_session.execute(f"CREATE TABLE {keyspace}.only_origin (k int PRIMARY KEY)")
    names = {r.table_name for r in target_session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))}
    assert "only_origin" not in names
    local_o = origin_session.execute("SELECT cluster_name, release_version FROM system.local").one()
    local_t = target_session.execute("SELECT cluster_name, release_version FROM system.local").one()
    assert local_o.cluster_name != local_t.cluster_name
    assert local_o.release_version.startswith("5.0") and local_t.release_version.startswith("5.0")


def test_sandbox_status_cli_reports_both_up(sandbox):
    if not sandbox.started_here:
        pytest.skip("a sandbox that was already running is reused; its directory is not known here")
    result = CliRunner().invoke(app, ["sandbox", "status", "--json", "--dir", str(sandbox.settings.directory)])
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.output)
    assert {n["name"]: n["up"] for n in nodes} == {"origin": True, "target": True}
    assert all(n["release_version"].startswith("5.0") for n in nodes)
    assert all(n["release"] == n["release_version"] for n in nodes)
    assert all(n["java_version"] in (11, 17) and n["java"] for n in nodes)
    assert all(n["rss_bytes"] > 100 * 2**20 for n in nodes)


def test_unreachable_cluster_is_a_clear_error():
    with pytest.raises(ConnectError, match=r"origin \(127.0.0.1:1\): not reachable") as info:
        with session(ClusterConfig(port=1, connect_timeout_s=1), name="origin"):
            pass
    assert "origin.port" in info.value.hint
