"""A proxy configured as zdm-proxy is, with no zdm.yaml: `zdm proxy start` in an empty working
directory with only zdm-proxy's ZDM_* variables (or its YAML file), and a DataStax driver
application through it that creates a table, writes and reads; every write lands on both."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.support.net import driver_cluster, free_port, start_proxy_process, stop_proxy_process


def _zdm_proxy_environment(sandbox, port: int) -> dict[str, str]:
    """zdm-proxy's documented variables, as a zdm-proxy deployment sets them."""
    return {
        "ZDM_ORIGIN_CONTACT_POINTS": "127.0.0.1", "ZDM_ORIGIN_PORT": str(sandbox.origin_port),
        "ZDM_TARGET_CONTACT_POINTS": "127.0.0.1", "ZDM_TARGET_PORT": str(sandbox.target_port),
        "ZDM_ORIGIN_USERNAME": "", "ZDM_ORIGIN_PASSWORD": "",
        "ZDM_TARGET_USERNAME": "", "ZDM_TARGET_PASSWORD": "",
        "ZDM_PRIMARY_CLUSTER": "ORIGIN", "ZDM_READ_MODE": "PRIMARY_ONLY",
        "ZDM_PROXY_LISTEN_ADDRESS": "127.0.0.1", "ZDM_PROXY_LISTEN_PORT": str(port),
        "ZDM_PROXY_REQUEST_TIMEOUT_MS": "10000", "ZDM_ORIGIN_CONNECTION_TIMEOUT_MS": "10000",
        "ZDM_TARGET_CONNECTION_TIMEOUT_MS": "10000", "ZDM_HEARTBEAT_INTERVAL_MS": "5000",
        "ZDM_METRICS_ENABLED": "true", "ZDM_METRICS_ADDRESS": "127.0.0.1",
        "ZDM_METRICS_PORT": str(free_port()), "ZDM_METRICS_PREFIX": "zdm",
        "ZDM_LOG_LEVEL": "INFO", "ZDM_PROXY_MAX_STREAM_IDS": "2048",
    }


@pytest.mark.parametrize("source", ["environment", "zdm-proxy-file"])
def test_proxy_configured_only_as_zdm_proxy_serves_an_application(source, tmp_path, sandbox,
                                                                  origin_session, target_session):
    port = free_port()
    settings = _zdm_proxy_environment(sandbox, port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZDM_")}
    args: list[str] = []
    if source == "environment":
        env.update(settings)
    else:  # the file holds all but the listen port, which the environment overrides
        theirs = tmp_path / "zdm-config.yml"
        theirs.write_text("".join(f"{name[4:].lower()}: '{value}'\n" for name, value in settings.items()
                                  if name != "ZDM_PROXY_LISTEN_PORT") + "proxy_listen_port: 1\n")
        env["ZDM_PROXY_LISTEN_PORT"] = str(port)
        args = ["--zdm-proxy-config", str(theirs)]
    workdir = tmp_path / "run"
    workdir.mkdir()
    proc = start_proxy_process(None, port, env=env, cwd=workdir, args=args)
    ks = "zp_" + uuid.uuid4().hex[:10]
    cluster = driver_cluster(port)
    try:
        import urllib.request

        health = f"http://127.0.0.1:{settings['ZDM_METRICS_PORT']}/health/readiness"
        assert urllib.request.urlopen(health, timeout=10).status == 200  # zdm-proxy's metrics port
        session = cluster.connect()
        local = session.execute("SELECT rpc_address, rpc_port FROM system.local").one()
        assert (str(local.rpc_address), local.rpc_port) == ("127.0.0.1", port)
        session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"CREATE TABLE {ks}.orders (id int PRIMARY KEY, item text)")
        insert = session.prepare(f"INSERT INTO {ks}.orders (id, item) VALUES (?, ?)")
        for i in range(50):
            session.execute(insert, (i, f"item-{i}"))
        select = session.prepare(f"SELECT item FROM {ks}.orders WHERE id = ?")
        assert [session.execute(select, (i,)).one().item for i in range(50)] == [f"item-{i}" for i in range(50)]
        expected = {(i, f"item-{i}") for i in range(50)}
        for s in (origin_session, target_session):
            assert {(r.id, r.item) for r in s.execute(f"SELECT id, item FROM {ks}.orders")} == expected
        # the state lives in the working directory, as zdm's default state_dir says
        assert any((workdir / ".zdm" / "state").rglob("*")), "the proxy registered no state"
        assert not (workdir / "zdm.yaml").exists()
    finally:
        cluster.shutdown()
        output = stop_proxy_process(proc)
        for s in (origin_session, target_session):
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=60)
    described = ("zdm-proxy's environment variables" if source == "environment"
                 else "; from the environment: ZDM_PROXY_LISTEN_PORT")
    assert described in " ".join(output.split()), output
    assert proc.returncode == 0, output
