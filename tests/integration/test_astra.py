"""Astra DB as a migration's target, through the stand-in (tests/support/astra.py) in front of the
TLS sandbox's target: first proof that the stand-in is faithful (the DataStax driver's own
``cloud={'secure_connect_bundle': ...}`` support connects through it), then zdm's own sessions,
and `zdm preflight`, `zdm migrate` and `zdm validate` with ``target.secure_connect_bundle``."""

from __future__ import annotations

import json
import socket
import ssl
import textwrap
import uuid

import pytest
from typer.testing import CliRunner

from zdm.cli.main import app
from zdm.clusters.connect import session


def _auth():
    from cassandra.auth import PlainTextAuthProvider

    from tests.conftest import TLS_CREDENTIALS

    return PlainTextAuthProvider(*TLS_CREDENTIALS)


def test_the_drivers_own_bundle_support_connects_through_the_stand_in(astra, astra_config):
    from cassandra.cluster import Cluster

    before = sum(astra.connections.values())
    cluster = Cluster(cloud={"secure_connect_bundle": str(astra_config.target.secure_connect_bundle)},
                      auth_provider=_auth())
    try:
        s = cluster.connect()
        local = s.execute("SELECT host_id, release_version FROM system.local").one()
        assert str(local.host_id) == astra.host_ids[0]
        assert [str(h.endpoint) for h in cluster.metadata.all_hosts()] == \
            [f"127.0.0.1:{astra.sni_port}:{astra.host_ids[0]}"]
    finally:
        cluster.shutdown()
    assert sum(astra.connections.values()) > before  # through the SNI proxy, by host id


def test_an_sni_name_that_is_no_node_is_refused(astra, astra_config):
    from zdm.clusters.bundle import read_bundle

    ctx = read_bundle(astra_config.target.secure_connect_bundle).ssl_context("127.0.0.1")
    with socket.create_connection(("127.0.0.1", astra.sni_port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ctx.wrap_socket(raw, server_hostname="no-such-host-id")
    assert "no-such-host-id" in astra.refused_names


def test_zdm_sessions_reach_astra_through_its_bundle(astra, astra_config):
    before = astra.connections[astra.host_ids[0]]
    with session(astra_config.target, name="target") as s:
        assert str(s.execute("SELECT host_id FROM system.local").one()[0]) == astra.host_ids[0]
        (host,) = s.cluster.metadata.all_hosts()
        assert host.endpoint.address == "127.0.0.1" and host.endpoint.port == astra.sni_port
        assert host.datacenter == astra.local_dc
    assert astra.connections[astra.host_ids[0]] > before


@pytest.fixture()
def astra_keyspace(tls_config, astra_config):
    name = "astra_" + uuid.uuid4().hex[:10]
    ddl = (f"CREATE KEYSPACE {name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
           f"CREATE TABLE {name}.orders (customer int, id int, item text, tags set<text>, "
           "PRIMARY KEY (customer, id))")
    for cfg, who in ((tls_config.origin, "origin"), (astra_config.target, "target")):
        with session(cfg, name=who) as s:
            for statement in ddl:
                s.execute(statement, timeout=60)
    yield name
    for cfg, who in ((tls_config.origin, "origin"), (astra_config.target, "target")):
        with session(cfg, name=who) as s:
            s.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)


def _yaml(astra_config, keyspace, state_dir) -> str:
    o, t = astra_config.origin, astra_config.target
    return textwrap.dedent(f"""\
        origin:
          port: {o.port}
          username: {o.username}
          password: {o.password}
          tls: {{ca_file: {o.tls.ca_file}, cert_file: {o.tls.cert_file}, key_file: {o.tls.key_file}}}
        target:
          secure_connect_bundle: {t.secure_connect_bundle}
          username: {t.username}
          password: {t.password}
        scope: {{keyspaces: [{keyspace}]}}
        state_dir: {state_dir}
        """)


def test_preflight_migrate_and_validate_against_astra(astra, astra_config, astra_keyspace, tmp_path):
    from cassandra.concurrent import execute_concurrent_with_args

    with session(astra_config.origin, name="origin") as s:
        insert = s.prepare(f"INSERT INTO {astra_keyspace}.orders (customer, id, item, tags) "
                           "VALUES (?, ?, ?, ?) USING TIMESTAMP ?")
        execute_concurrent_with_args(s, insert, [(i % 17, i, f"item{i}", {"a", f"t{i % 3}"}, 1_000_000 + i)
                                                 for i in range(500)], raise_on_first_error=True)
    config = tmp_path / "zdm.yaml"
    config.write_text(_yaml(astra_config, astra_keyspace, tmp_path / "state"))
    runner = CliRunner(env={"COLUMNS": "250"})

    preflight = runner.invoke(app, ["preflight", "--config", str(config), "--json"])
    assert preflight.exit_code == 0, preflight.output
    checks = {c["name"]: c for c in json.loads(preflight.stdout)["checks"]}
    assert checks["target connection"]["status"] == "pass"
    assert "Astra DB, secure connect bundle secure-connect-zdm.zip" in checks["target connection"]["detail"]

    before = astra.connections[astra.host_ids[0]]
    migrate = runner.invoke(app, ["migrate", "--config", str(config), "--workers", "1", "--no-progress"])
    assert migrate.exit_code == 0, migrate.output
    assert astra.connections[astra.host_ids[0]] > before  # the worker process went through the bundle too

    with session(astra_config.target, name="target") as s:
        rows = {(r[0], r[1], r[2], frozenset(r[3]), r[4]) for r in s.execute(
            f"SELECT customer, id, item, tags, writetime(item) FROM {astra_keyspace}.orders")}
    assert len(rows) == 500 and (3, 3, "item3", frozenset({"a", "t0"}), 1_000_003) in rows

    validate = runner.invoke(app, ["validate", "--config", str(config), "--workers", "1", "--no-progress"])
    assert validate.exit_code == 0, validate.output
    assert "Origin and target agree" in validate.output, validate.output

    with session(astra_config.target, name="target") as s:  # validation reads Astra, not a copy
        s.execute(f"DELETE FROM {astra_keyspace}.orders WHERE customer = 3 AND id = 3")
    again = runner.invoke(app, ["validate", "--config", str(config), "--workers", "1", "--no-progress",
                                "--json", str(tmp_path / "report.json")])
    assert again.exit_code != 0
    (table,) = json.loads((tmp_path / "report.json").read_text())["tables"]
    assert table["missing_on_target"] == 1, table

    # nothing of the bundle's contents in anything zdm wrote or said
    status = runner.invoke(app, ["status", "--json", "--config", str(config)])
    written = [r.output for r in (preflight, migrate, validate, again, status)] + \
        [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p != config]
    secret = _bundle_secrets(astra_config.target.secure_connect_bundle)
    assert secret and not [s for s in secret for text in written if s in text]


def _bundle_secrets(path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        key = [line for line in zf.read("key").decode().split() if len(line) >= 16 and "-" not in line]
        config = json.loads(zf.read("config.json"))
    return key + [v for k, v in config.items() if "Password" in k]
