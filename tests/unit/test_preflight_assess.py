"""The pure half of preflight: assess() on two probes, check by check."""

from __future__ import annotations

from dataclasses import replace

import pytest

from zdm.config import ScopeConfig
from zdm.errors import ZdmError
from zdm.preflight import COUNTER_WARNING, ClockSample, ClusterProbe, Status, assess, run_preflight
from zdm.preflight.schema import KeyspaceSchema, SchemaSnapshot, TableSchema
from zdm.releases import parse_version

M3 = "org.apache.cassandra.dht.Murmur3Partitioner"
T = TableSchema("app", "t", {"k": "int", "v": "text"}, ("k",))
COUNTS = TableSchema("app", "counts", {"k": "int", "n": "counter"}, ("k",))
SYS = TableSchema("system", "local", {"key": "text"}, ("key",))


def schema(*tables: TableSchema) -> SchemaSnapshot:
    ks: dict[str, dict] = {}
    for t in tables:
        ks.setdefault(t.keyspace, {})[t.name] = t
    return SchemaSnapshot({n: KeyspaceSchema(n, ts) for n, ts in ks.items()})


def probe(name="origin", release="5.0.8", dse=None, partitioner=M3, protocol=5,
          tables=(T, SYS), clock=(0.001,)) -> ClusterProbe:
    return ClusterProbe(name, "127.0.0.1:9042", release, partitioner, protocol, schema(*tables),
                        dse, tuple(ClockSample(f"10.0.0.{i}:9042", s, 0.001)
                                   for i, s in enumerate(clock)))


def check(report, name):
    (c,) = [c for c in report.checks if c.name == name]
    return c


def test_identical_clusters_pass_with_a_fingerprint():
    report = assess(probe(), probe("target"))
    assert report.passed and report.fingerprint.startswith("sha256:")
    assert [c.status for c in report.checks] == [Status.PASS] * 7
    assert report.keyspaces == ("app",) and report.tables_in_scope == ("app.t",)
    assert report.tables == ()


@pytest.mark.parametrize("origin, target, status, words", [
    (probe(release="2.1.5"), probe("target"), Status.FAIL, "Cassandra 2.1.6 or newer"),
    (probe(release="2.1.6"), probe("target", release="2.1.6"), Status.PASS, "2.1.6"),
    (probe(release="4.0.0.2284", dse="4.7.0"), probe("target"), Status.FAIL, "DSE 4.7.1 or newer"),
    (probe(release="2.1.8", dse="4.7.1"), probe("target", release="3.11.4"), Status.PASS,
     "DSE 4.7.1"),
    (probe(release="4.0.11"), probe("target", release="3.11.16"), Status.FAIL,
     "older than origin"),
    (probe(release="5.0-beta1"), probe("target", release="5.0.8"), Status.PASS, "5.0"),
    (probe(release="weird"), probe("target"), Status.WARN, "cannot read"),
], ids=["cassandra too old", "cassandra minimum", "dse too old", "dse minimum, newer target",
        "target older", "pre-release", "unparseable"])
def test_release_versions(origin, target, status, words):
    c = check(assess(origin, target), "release versions")
    assert c.status == status and words in c.detail
    assert (c.status != Status.PASS) == bool(c.todo)


@pytest.mark.parametrize("o, t, status, words", [
    (5, 5, Status.PASS, "v5 is the highest both support"),
    (5, 4, Status.WARN, "v4 is the highest both support: origin v5, target v4 (clients must not use v5)"),
    (4, 5, Status.WARN, "v4 is the highest both support: origin v4, target v5"),  # a 3.11 origin
    (3, 5, Status.WARN, "v3 is the highest"),
    (66, 4, Status.PASS, "v4 is the highest"),   # DSE_V2: speaks v4
    (2, 4, Status.FAIL, "needs v3"),
], ids=["same", "target lower", "origin 3.11", "origin 2.1", "dse protocol", "too old"])
def test_protocol_version(o, t, status, words):
    c = check(assess(probe(protocol=o), probe("target", protocol=t)), "protocol version")
    assert c.status == status and words in c.detail
    if status == Status.WARN:
        assert f"no client pins protocol v{max(o, t)}" in c.todo


def test_a_different_partitioner_fails():
    report = assess(probe(), probe("target", partitioner="org.apache.cassandra.dht.RandomPartitioner"))
    c = check(report, "partitioner")
    assert c.status == Status.FAIL and "origin uses Murmur3Partitioner, target RandomPartitioner" in c.detail
    assert M3 in c.todo and not report.passed


@pytest.mark.parametrize("skews, status, words", [
    ((0.01, -0.2), Status.PASS, "2 node(s) within 500 ms"),
    ((0.01, -0.9), Status.WARN, "10.0.0.1:9042 -900 ms"),
    ((), Status.WARN, "no node answered"),
], ids=["within", "beyond", "no samples"])
def test_clock_skew_is_a_warning_never_a_failure(skews, status, words):
    report = assess(probe(clock=skews), probe("target", clock=()))
    c = check(report, "clock skew")
    assert c.status == status and words in c.detail
    assert report.passed


def test_schema_differences_fail_table_by_table():
    other = TableSchema("app", "u", {"k": "int"}, ("k",))
    report = assess(probe(tables=(T, other)), probe("target", tables=(replace(T, columns={"k": "int"}),)))
    assert not report.passed and check(report, "schema").status == Status.FAIL
    assert {t.name: t.differences for t in report.tables} == {
        "app.t": ("column v (text) missing on target",),
        "app.u": ("table missing on target (origin: 1 columns, PRIMARY KEY ((k)))",)}
    assert "app.t" in report.summary() and report.fingerprint  # recorded as a failed preflight


def test_counter_tables_are_warned_about_per_table():
    report = assess(probe(tables=(T, COUNTS)), probe("target", tables=(T, COUNTS)))
    assert report.passed
    assert check(report, "counter tables").status == Status.WARN
    assert [(t.name, t.warnings) for t in report.tables] == [("app.counts", (COUNTER_WARNING,))]


@pytest.mark.parametrize("scope, keyspaces, tables", [
    (ScopeConfig(), ("app",), ("app.counts", "app.t")),
    (ScopeConfig(exclude_tables=("app.counts",)), ("app",), ("app.t",)),
    (ScopeConfig(keyspaces=("app",)), ("app",), ("app.counts", "app.t")),
], ids=["default", "excluded table", "explicit keyspaces"])
def test_scope_decides_what_is_compared_and_fingerprinted(scope, keyspaces, tables):
    origin = probe(tables=(T, COUNTS, SYS))
    target = probe("target", tables=(T, SYS))   # counts missing on target
    report = assess(origin, target, scope)
    assert (report.keyspaces, report.tables_in_scope) == (keyspaces, tables)
    assert report.passed == ("app.counts" not in tables)


def test_a_system_keyspace_named_in_the_scope_is_refused_not_compared():
    with pytest.raises(ZdmError) as refused:
        assess(probe(), probe("target"), ScopeConfig(keyspaces=("app", "system")))
    assert "system" in refused.value.message and "never migrates" in refused.value.message
    assert "scope.keyspaces" in refused.value.hint


def test_changes_outside_scope_do_not_change_the_fingerprint():
    extra = TableSchema("other", "x", {"k": "int"}, ("k",))
    scope = ScopeConfig(keyspaces=("app",))
    a = assess(probe(), probe("target"), scope).fingerprint
    b = assess(probe(tables=(T, extra)), probe("target"), scope).fingerprint
    c = assess(probe(), probe("target", tables=(replace(T, partition_key=("v",)),)), scope).fingerprint
    assert a == b != c


def test_nothing_in_scope_is_a_warning():
    report = assess(probe(tables=(SYS,)), probe("target", tables=(SYS,)))
    assert check(report, "schema").status == Status.WARN


def test_run_preflight_reports_an_unreachable_cluster_as_a_failed_check(monkeypatch):
    from zdm.config import Config
    from zdm.clusters.connect import ConnectError
    from zdm.preflight import run as preflight

    def fake_probe(cfg, name, **kw):
        if name == "target":
            raise ConnectError("target (127.0.0.1:9043): not reachable: refused", hint="check it")
        return probe(name)
    monkeypatch.setattr(preflight, "probe_cluster", fake_probe)
    report = run_preflight(Config())
    assert not report.passed and report.fingerprint is None
    assert [(c.name, c.status) for c in report.checks] == [
        ("origin connection", Status.PASS), ("target connection", Status.FAIL)]
    assert report.failures[0].todo == "check it"


@pytest.mark.parametrize("text, expected", [
    ("5.0.8", (5, 0, 8)), ("4.0.0.6816", (4, 0, 0, 6816)), ("5.0-beta1", (5, 0)),
    (" 2.1.6 ", (2, 1, 6)), ("", None), (None, None), ("x1", None),
])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_run_preflight_lets_unexpected_errors_through(monkeypatch):
    from zdm.config import Config
    from zdm.preflight import run as preflight

    def boom(cfg, name, **kw):
        raise RuntimeError("bug")
    monkeypatch.setattr(preflight, "probe_cluster", boom)
    with pytest.raises(RuntimeError):
        run_preflight(Config())


RICH = TableSchema("app", "rich", {"k": "int", "c": "int", "l": "list<int>", "s": "set<text>",
                                   "m": "map<text, int>", "u": "addr", "fu": "frozen<addr>",
                                   "fl": "frozen<list<int>>", "v": "text", "st": "set<int>"},
                   ("k",), (("c", "ASC"),), static=frozenset({"st"}))


def with_types(snap: SchemaSnapshot) -> SchemaSnapshot:
    ks = snap.keyspaces["app"]
    return SchemaSnapshot({**snap.keyspaces, "app": replace(ks, user_types={
        "addr": (("street", "text"), ("num", "int"))})})


@pytest.mark.parametrize("release, dse, fallback", [
    ("5.0.8", None, ()),
    ("4.1.10", None, ("l", "m", "s", "st", "u")),
    ("3.11.19", None, ("l", "m", "s", "st", "u")),
    ("4.0.0.6850", "6.8.50", ("l", "m", "s", "st", "u")),
], ids=["5.0 exact", "4.1 fallback", "3.11 fallback", "dse fallback"])
def test_copy_plan_names_each_column_that_takes_the_fallback(release, dse, fallback):
    origin = replace(probe(release=release, dse=dse), schema=with_types(schema(RICH, T)))
    target = replace(probe("target"), schema=with_types(schema(RICH, T)))
    report = assess(origin, target)
    plan = {c.name: c for c in report.copy}
    assert tuple(col for col, _, _ in plan["app.rich"].fallback) == fallback
    assert plan["app.t"].exact, "a table of simple columns copies exactly everywhere"
    c = check(report, "copy fidelity")
    if fallback:
        assert c.status == Status.WARN and "app.rich (l, m, s, st, u)" in c.detail
        assert "app.t" not in c.detail
        kept = {col: keeps for col, _, keeps in plan["app.rich"].fallback}
        assert "order" in kept["l"] and "TTLs are lost" in kept["u"]
    else:
        assert c.status == Status.PASS
    assert report.passed, "the fallback never fails a preflight"
    assert report.to_dict()["copy"][0]["table"] == "app.rich"


COMPACT = replace(T, name="compact", compact_storage=True)
V3_OPTIONS = {"read_repair_chance": 0.0, "dclocal_read_repair_chance": 0.1,
              "compaction": {"class": "org.apache.cassandra.db.compaction.DateTieredCompactionStrategy"},
              "gc_grace_seconds": 864000}
V5_OPTIONS = {"gc_grace_seconds": 864000, "read_repair": "BLOCKING",
              "compaction": {"class": "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy"}}
OLD = replace(T, name="old", options=V3_OPTIONS)
SYS5 = replace(SYS, options=V5_OPTIONS)

# id, origin tables, target tables, target release, expected (table, words in its warnings)
RELEASE_CASES = [
    ("compact storage on both", (COMPACT, SYS), (COMPACT, SYS5), "5.0.8",
     [("app.compact", "COMPACT STORAGE: Cassandra 4.0+ supports it only minimally")]),
    ("3.11 options, table missing on target", (OLD, SYS), (SYS5,), "5.0.8",
     [("app.old", "table option dclocal_read_repair_chance: removed in Cassandra 4.0"),
      ("app.old", "table option read_repair_chance: removed in Cassandra 4.0"),
      ("app.old", "compaction DateTieredCompactionStrategy was removed in Cassandra 5.0: create "
                  "target's table with {'class': 'TimeWindowCompactionStrategy'}")]),
    ("dtcs is fine on a 4.1 target", (OLD, SYS), (SYS5,), "4.1.10",
     [("app.old", "read_repair_chance: removed"), ("app.old", "dclocal_read_repair_chance")]),
    ("table already on target", (OLD, SYS), (replace(OLD, options=V5_OPTIONS), SYS5), "5.0.8", []),
    ("dse option", (replace(T, options={"nodesync": {"enabled": "true"}}), SYS), (SYS5,), "5.0.8",
     [("app.t", "table option nodesync: a DSE option")]),
]


@pytest.mark.parametrize("origin_tables, target_tables, release, expected",
                         [c[1:] for c in RELEASE_CASES], ids=[c[0] for c in RELEASE_CASES])
def test_what_the_target_release_refuses_is_named_with_its_fix(origin_tables, target_tables,
                                                              release, expected):
    report = assess(probe(release="3.11.19", tables=origin_tables),
                    probe("target", release=release, tables=target_tables))
    warnings = {t.name: t.warnings for t in report.tables}
    for table, words in expected:
        assert any(words in w for w in warnings.get(table, ())), (table, words, warnings)
    found = sum(len(w) for w in warnings.values())
    assert found == len(expected), warnings
    c = check(report, "target release")
    assert (c.status == Status.WARN) == bool(expected)


def test_compact_storage_on_one_side_only_is_a_schema_difference():
    report = assess(probe(tables=(COMPACT, SYS)), probe("target", tables=(replace(COMPACT,
                                                                          compact_storage=False), SYS)))
    assert not report.passed
    (d,) = [t for t in report.tables if t.name == "app.compact"]
    assert d.differences == ("COMPACT STORAGE only on origin (a row without values, or a null "
                             "written to its last value, lives on one side and not the other): "
                             "run `ALTER TABLE app.compact DROP COMPACT STORAGE` on origin, or "
                             "create the other side's table the same way",)


def test_options_and_compactness_keep_existing_fingerprints():
    plain = assess(probe(), probe("target")).fingerprint
    with_options = assess(probe(tables=(replace(T, options=V3_OPTIONS), SYS)),
                          probe("target")).fingerprint
    assert plain == with_options
    assert assess(probe(tables=(replace(T, compact_storage=True), SYS)),
                  probe("target")).fingerprint != plain
