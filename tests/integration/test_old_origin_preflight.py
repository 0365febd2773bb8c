"""Preflight on a real Cassandra 4.1 origin and 5.0 target: it names the tables whose
non-frozen collections and UDTs take the copy's fallback, and what 5.0 refuses or treats
differently, with the fix; following the fix is what makes it pass."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest
from cassandra import InvalidRequest
from typer.testing import CliRunner

from migrate_fixtures import migration, validation
from zdm.config import ScopeConfig
from zdm.migrate.run import migrate
from zdm.clock import utcnow
from zdm.preflight import Status, run_preflight
from zdm.validate import validate

REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
TABLES = {
    "plain": "(k int PRIMARY KEY, v text, n bigint)",
    "frozen_only": "(k int PRIMARY KEY, fl frozen<list<int>>, fm frozen<map<text, int>>, fu frozen<addr>)",
    "rich": "(k int, c int, s set<text> static, l list<int>, m map<text, int>, u addr, v int, "
            "PRIMARY KEY (k, c))",
    "legacy": "(k int, c int, v int, PRIMARY KEY (k, c)) WITH COMPACT STORAGE",
}
DTCS = "WITH compaction = {'class': 'DateTieredCompactionStrategy'}"


@pytest.fixture(scope="module")
def pair(old_origin_session, target_session):
    ks = "opf_" + uuid.uuid4().hex[:10]
    try:
        for s in (old_origin_session, target_session):
            s.execute(f"CREATE KEYSPACE {ks} WITH replication = {REPLICATION}")
            s.execute(f"CREATE TYPE {ks}.addr (street text, num int)")
            for name, definition in TABLES.items():
                s.execute(f"CREATE TABLE {ks}.{name} {definition}")
        # Cassandra 4.1 still has DTCS; 5.0 removed it
        old_origin_session.execute(f"CREATE TABLE {ks}.timeseries (k int, t timestamp, v int, "
                                   f"PRIMARY KEY (k, t)) {DTCS}")
        yield ks
    finally:
        for s in (old_origin_session, target_session):
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}")


def preflight(config, ks, *exclude):
    return run_preflight(dataclasses.replace(config, scope=ScopeConfig(
        keyspaces=(ks,), exclude_tables=tuple(f"{ks}.{t}" for t in exclude))))


def test_preflight_names_the_fallback_tables_and_what_5_0_treats_differently(pair, old_config):
    report = preflight(old_config, pair, "timeseries")
    assert report.passed, report.to_dict()
    statuses = {c.name: c.status for c in report.checks}
    assert statuses == {"origin connection": Status.PASS, "target connection": Status.PASS,
                        "origin encryption": Status.PASS, "target encryption": Status.PASS,
                        "release versions": Status.PASS, "protocol version": Status.PASS,
                        "partitioner": Status.PASS, "origin nodes": Status.PASS,
                        "origin local DC": Status.PASS, "target nodes": Status.PASS,
                        "target local DC": Status.PASS, "target datacenters": Status.PASS,
                        "replication factors": Status.PASS, "schema": Status.PASS,
                        "copy fidelity": Status.WARN, "target release": Status.WARN,
                        "clock skew": Status.PASS}
    copy = {c.name.split(".")[1]: [col for col, _, _ in c.fallback] for c in report.copy}
    assert copy == {"plain": [], "frozen_only": [], "rich": ["l", "m", "s", "u"], "legacy": []}
    fidelity = {c.name: c for c in report.checks}["copy fidelity"]
    assert f"{pair}.rich (l, m, s, u)" in fidelity.detail and "Cassandra 4.1.10" in fidelity.detail
    assert "plain" not in fidelity.detail
    warnings = {t.name: t.warnings for t in report.tables}
    (compact,) = warnings[f"{pair}.legacy"]
    assert compact.startswith("COMPACT STORAGE: Cassandra 4.0+ supports it only minimally")


def test_a_removed_compaction_strategy_is_named_with_the_fix_that_5_0_accepts(
        pair, old_config, target_session):
    report = preflight(old_config, pair)
    assert [c.name for c in report.failures] == ["schema"]
    entry = {t.name: t for t in report.tables}[f"{pair}.timeseries"]
    assert entry.differences[0].startswith("table missing on target")
    (fix,) = entry.warnings
    assert fix == ("compaction DateTieredCompactionStrategy was removed in Cassandra 5.0: create "
                   "target's table with {'class': 'TimeWindowCompactionStrategy'}")
    ddl = f"CREATE TABLE {pair}.timeseries (k int, t timestamp, v int, PRIMARY KEY (k, t))"
    with pytest.raises(Exception, match="DateTieredCompactionStrategy"):
        target_session.execute(f"{ddl} {DTCS}")  # origin's definition, as it is: refused
    target_session.execute(f"{ddl} WITH compaction = {{'class': 'TimeWindowCompactionStrategy'}}")
    try:
        again = preflight(old_config, pair)
        assert again.passed, again.to_dict()
        assert f"{pair}.timeseries" not in {t.name for t in again.tables}
    finally:
        target_session.execute(f"DROP TABLE {pair}.timeseries")


def test_the_cli_preflight_lists_the_fallback_columns(pair, old_config, tmp_path):
    from zdm.cli.main import app

    cfg = tmp_path / "zdm.yaml"
    cfg.write_text(f"origin: {{port: {old_config.origin.port}}}\n"
                   f"target: {{port: {old_config.target.port}}}\n"
                   f"scope: {{keyspaces: [{pair}], exclude_tables: [{pair}.timeseries]}}\n"
                   "state_dir: st\n")
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["preflight", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "tables that take the fallback" in result.output
    row = next(line for line in result.output.splitlines() if f"{pair}.rich" in line and "list<int>" in line)
    assert "element TTLs are lost" in row
    assert "Preflight passed" in result.output


def test_a_compact_storage_table_from_4_1_copies_and_validates(pair, old_config, tmp_path,
                                                               old_origin_session, target_session):
    ins = old_origin_session.prepare(f"INSERT INTO {pair}.legacy (k, c, v) VALUES (?, ?, ?) "
                                     "USING TIMESTAMP ?")
    for i in range(50):
        old_origin_session.execute(ins, (i % 7, i, i * 3, 1_000 + i))
    config = dataclasses.replace(old_config, state_dir=tmp_path / "state")
    since = utcnow() - timedelta(minutes=1)
    only = dict(run={"splits": 8})
    settings = migration(pair, dual_writes_since=since, **only)
    settings = dataclasses.replace(settings, scope=dataclasses.replace(
        settings.scope, tables=(f"{pair}.legacy",)))
    assert migrate(config, settings).complete
    rows = target_session.execute(f"SELECT k, c, v, writetime(v) AS w FROM {pair}.legacy")
    assert sorted((r.k, r.c, r.v, r.w) for r in rows) == \
        sorted((i % 7, i, i * 3, 1_000 + i) for i in range(50))
    check = validation(pair, **only)
    check = dataclasses.replace(check, scope=dataclasses.replace(check.scope, tables=(f"{pair}.legacy",)))
    assert validate(config, check).clean
    with pytest.raises(InvalidRequest):  # a compact table still behaves as one on 5.0
        target_session.execute(f"INSERT INTO {pair}.legacy (k, c) VALUES (1, 1)")
