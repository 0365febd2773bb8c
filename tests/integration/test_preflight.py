"""Preflight against the real sandbox: identical schemas pass, every kind of difference is
reported on its own table, and the 0->1 guard recomputes the fingerprint live."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from typer.testing import CliRunner

from zdm.config import ScopeConfig
from zdm.state import FileStateStore
from zdm.clock import iso, utcnow
from zdm.preflight import Status, live_schema, run_preflight

REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"

# table -> (origin's definition, target's definition or None when missing on target)
TABLES = {
    "same": ("(k int PRIMARY KEY, v text)",) * 2,
    "counts": ("(k int PRIMARY KEY, n counter)",) * 2,
    "missing_table": ("(k int PRIMARY KEY, v text)", None),
    "missing_col": ("(k int PRIMARY KEY, a text, b int)", "(k int PRIMARY KEY, a text)"),
    "extra_col": ("(k int PRIMARY KEY, a text)", "(k int PRIMARY KEY, a text, extra bigint)"),
    "type_diff": ("(k int PRIMARY KEY, v text)", "(k int PRIMARY KEY, v blob)"),
    "pk_diff": ("(a int, b int, c int, PRIMARY KEY ((a, b), c))",
                "(a int, b int, c int, PRIMARY KEY ((a), b, c))"),
    "ck_diff": ("(k int, c1 int, c2 int, PRIMARY KEY (k, c1, c2))",
                "(k int, c1 int, c2 int, PRIMARY KEY (k, c2, c1))"),
    "order_diff": ("(k int, c int, v int, PRIMARY KEY (k, c)) WITH CLUSTERING ORDER BY (c DESC)",
                   "(k int, c int, v int, PRIMARY KEY (k, c))"),
}

EXPECTED = [
    # id, name in the report, the exact differences
    ("missing table", "{ks}.missing_table",
     "table missing on target (origin: 2 columns, PRIMARY KEY ((k)))"),
    ("missing column", "{ks}.missing_col", "column b (int) missing on target"),
    ("extra column", "{ks}.extra_col", "column extra (bigint) exists only on target"),
    ("type difference", "{ks}.type_diff", "column v type differs: origin text, target blob"),
    ("partition key", "{ks}.pk_diff", "partition key differs: origin (a, b), target (a)",
     "clustering columns differ: origin (c), target (b, c)"),
    ("clustering key", "{ks}.ck_diff", "clustering columns differ: origin (c1, c2), target (c2, c1)"),
    ("clustering order", "{ks}.order_diff",
     "clustering order differs: origin (c DESC), target (c ASC)"),
    ("missing keyspace", "{ks}_only", "keyspace {ks}_only does not exist on target "
                                      "(origin has: lonely)"),
]


@pytest.fixture(scope="module")
def altered(origin_session, target_session):
    """A keyspace on both clusters with one table per kind of difference, and one
    keyspace only origin has."""
    ks = "pf_" + uuid.uuid4().hex[:10]
    sessions = {"origin": origin_session, "target": target_session}
    try:
        for side, s in sessions.items():
            s.execute(f"CREATE KEYSPACE {ks} WITH replication = {REPLICATION}")
            for table, defs in TABLES.items():
                definition = defs[0] if side == "origin" else defs[1]
                if definition:
                    s.execute(f"CREATE TABLE {ks}.{table} {definition}")
        origin_session.execute(f"CREATE KEYSPACE {ks}_only WITH replication = {REPLICATION}")
        origin_session.execute(f"CREATE TABLE {ks}_only.lonely (k int PRIMARY KEY)")
        yield ks
    finally:
        for s in sessions.values():
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        origin_session.execute(f"DROP KEYSPACE IF EXISTS {ks}_only")


@pytest.fixture(scope="module")
def report(altered, zdm_config):
    config = dataclasses.replace(zdm_config, scope=ScopeConfig(keyspaces=(altered, f"{altered}_only")))
    return run_preflight(config)


@pytest.mark.parametrize("name, differences", [(e[1], e[2:]) for e in EXPECTED],
                         ids=[e[0] for e in EXPECTED])
def test_each_kind_of_difference_is_reported_on_its_own_table(report, altered, name, differences):
    by_name = {t.name: t.differences for t in report.tables}
    assert by_name[name.format(ks=altered)] == tuple(d.format(ks=altered) for d in differences)


def test_altered_schemas_fail_only_the_schema_check(report, altered):
    assert not report.passed
    assert [c.name for c in report.failures] == ["schema"]
    differing = {t.name for t in report.tables if t.differences}
    assert differing == {e[1].format(ks=altered) for e in EXPECTED}, \
        "identical tables (same, counts) are not reported as different"
    counts = {t.name: t for t in report.tables}[f"{altered}.counts"]
    assert counts.warnings and not counts.differences


def test_identical_schemas_pass(report, altered, zdm_config):
    excluded = tuple(f"{altered}.{t}" for t in TABLES if t not in ("same", "counts"))
    config = dataclasses.replace(zdm_config, scope=ScopeConfig(keyspaces=(altered,),
                                                               exclude_tables=excluded))
    ok = run_preflight(config)
    assert ok.passed, ok.to_dict()
    statuses = {c.name: c.status for c in ok.checks}
    assert statuses == {"origin connection": Status.PASS, "target connection": Status.PASS,
                        "origin encryption": Status.PASS, "target encryption": Status.PASS,
                        "release versions": Status.PASS, "protocol version": Status.PASS,
                        "partitioner": Status.PASS, "origin nodes": Status.PASS,
                        "origin local DC": Status.PASS, "target nodes": Status.PASS,
                        "target local DC": Status.PASS, "target datacenters": Status.PASS,
                        "replication factors": Status.PASS, "schema": Status.PASS,
                        "copy fidelity": Status.PASS, "target release": Status.PASS,
                        "counter tables": Status.WARN, "clock skew": Status.PASS}
    assert all(c.exact for c in ok.copy), "5.0 reads every cell's writetime: all exact"
    assert ok.tables_in_scope == (f"{altered}.counts", f"{altered}.same")
    assert "v5" in {c.name: c.detail for c in ok.checks}["protocol version"]
    assert live_schema(config) == (ok.fingerprint, list(ok.tables_in_scope))


def test_cli_preflight_then_a_schema_change_blocks_the_advance(keyspace, origin_session,
                                                              target_session, zdm_config, tmp_path):
    from zdm.cli.main import app

    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    cfg = tmp_path / "zdm.yaml"
    cfg.write_text(f"origin: {{port: {zdm_config.origin.port}}}\n"
                   f"target: {{port: {zdm_config.target.port}}}\n"
                   f"scope: {{keyspaces: [{keyspace}]}}\nstate_dir: st\n")
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(app, ["preflight", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    store = FileStateStore(tmp_path / "st")
    store.register_proxy("p1", "127.0.0.1:14002")
    store.update_proxy("p1", heartbeat_at=iso(utcnow()), origin_connected=True,
                       target_connected=True)

    target_session.execute(f"ALTER TABLE {keyspace}.t ADD extra int")
    refused = runner.invoke(app, ["phase", "advance", "--config", str(cfg)])
    assert refused.exit_code == 1
    assert "the schema changed since the last preflight passed" in refused.stderr

    origin_session.execute(f"ALTER TABLE {keyspace}.t ADD extra int")
    assert runner.invoke(app, ["preflight", "--config", str(cfg)]).exit_code == 0
    store.update_proxy("p1", heartbeat_at=iso(utcnow()))
    result = runner.invoke(app, ["phase", "advance", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "to 1 PROXY" in result.output
