"""Schema snapshots: reading driver metadata, scope, fingerprint, and the table-by-table diff."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace as NS

import pytest

from zdm.preflight.schema import (KeyspaceSchema, SchemaSnapshot, TableSchema, diff, fingerprint,
                                  scoped, snapshot_from_metadata)
from zdm.scope import Scope

USERS = TableSchema("app", "users", {"id": "uuid", "day": "date", "ts": "timestamp",
                                     "name": "text", "tier": "int"},
                    partition_key=("id", "day"), clustering=(("ts", "DESC"),),
                    static=frozenset({"tier"}))
EVENTS = TableSchema("app", "events", {"k": "text", "v": "blob"}, partition_key=("k",))


def snap(*tables: TableSchema, types=None, keyspaces=("app",)) -> SchemaSnapshot:
    out = {ks: KeyspaceSchema(ks, {t.name: t for t in tables if t.keyspace == ks},
                              dict(types or {})) for ks in keyspaces}
    return SchemaSnapshot(out)


ORIGIN = snap(USERS, EVENTS)

CASES = [
    # id, target snapshot, expected (name, difference) pairs
    ("identical", snap(USERS, EVENTS), []),
    ("missing table", snap(USERS),
     [("app.events", "table missing on target (origin: 2 columns, PRIMARY KEY ((k)))")]),
    ("missing column", snap(replace(USERS, columns={k: v for k, v in USERS.columns.items()
                                                    if k != "name"}), EVENTS),
     [("app.users", "column name (text) missing on target")]),
    ("extra column", snap(USERS, replace(EVENTS, columns={**EVENTS.columns, "note": "text"})),
     [("app.events", "column note (text) exists only on target")]),
    ("type difference", snap(USERS, replace(EVENTS, columns={"k": "text", "v": "text"})),
     [("app.events", "column v type differs: origin blob, target text")]),
    ("partition key", snap(replace(USERS, partition_key=("id",),
                                   clustering=(("day", "ASC"), ("ts", "DESC"))), EVENTS),
     [("app.users", "partition key differs: origin (id, day), target (id)"),
      ("app.users", "clustering columns differ: origin (ts), target (day, ts)")]),
    ("clustering order", snap(replace(USERS, clustering=(("ts", "ASC"),)), EVENTS),
     [("app.users", "clustering order differs: origin (ts DESC), target (ts ASC)")]),
    ("static column", snap(replace(USERS, static=frozenset()), EVENTS),
     [("app.users", "column tier is static only on origin")]),
    ("missing keyspace", SchemaSnapshot({}),
     [("app", "keyspace app does not exist on target (origin has: events, users)")]),
]


@pytest.mark.parametrize("target, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_diff_names_each_difference_of_each_table(target, expected):
    found = [(d.name, text) for d in diff(ORIGIN, target, ["app"]) for text in d.differences]
    assert found == expected


def test_diff_reports_every_table_and_difference_not_just_the_first():
    target = snap(replace(USERS, clustering=(("ts", "ASC"),)),
                  replace(EVENTS, columns={"k": "text", "v": "text", "x": "int"}))
    out = {d.name: d.differences for d in diff(ORIGIN, target, ["app"])}
    assert set(out) == {"app.users", "app.events"}
    assert len(out["app.events"]) == 2


@pytest.mark.parametrize("origin, target, kind", [
    (snap(USERS), snap(USERS, EVENTS), "warnings"),            # only on target: harmless
    (snap(USERS, types={"addr": (("street", "text"),)}), snap(USERS), "differences"),
    (snap(USERS, types={"addr": (("street", "text"),)}),
     snap(USERS, types={"addr": (("street", "text"), ("zip", "int"))}), "differences"),
    (snap(USERS), snap(USERS, types={"addr": (("street", "text"),)}), "warnings"),
    (SchemaSnapshot({}), snap(USERS), "differences"),          # keyspace in scope not on origin
], ids=["table only on target", "user type missing", "user type fields", "user type only on target",
        "keyspace missing on origin"])
def test_what_only_target_has_is_a_warning_the_rest_a_difference(origin, target, kind):
    (entry,) = diff(origin, target, ["app"])
    assert getattr(entry, kind) and not getattr(entry, {"warnings": "differences",
                                                        "differences": "warnings"}[kind])


def test_fingerprint_ignores_listing_order_but_not_content():
    a = fingerprint(snap(USERS, EVENTS), snap(USERS, EVENTS))
    reordered = SchemaSnapshot({"app": KeyspaceSchema("app", {"users": replace(
        USERS, columns=dict(reversed(list(USERS.columns.items())))), "events": EVENTS})})
    assert fingerprint(reordered, snap(EVENTS, USERS)) == a
    assert a.startswith("sha256:")
    changed = [
        fingerprint(snap(USERS), snap(USERS, EVENTS)),
        fingerprint(snap(USERS, EVENTS), snap(USERS, replace(EVENTS, columns={"k": "text"}))),
        fingerprint(snap(USERS, EVENTS), snap(replace(USERS, clustering=(("ts", "ASC"),)), EVENTS)),
        fingerprint(snap(USERS, EVENTS, types={"t": (("a", "int"),)}), snap(USERS, EVENTS)),
        fingerprint(snap(USERS, EVENTS), snap(USERS, EVENTS)) + "x",
    ]
    assert a not in changed[:4] and len(set(changed)) == 5
    assert fingerprint(snap(USERS), snap(EVENTS)) != fingerprint(snap(EVENTS), snap(USERS)), \
        "origin and target are not interchangeable"


@pytest.mark.parametrize("present, wanted, expected", [
    (["system", "system_schema", "app", "dse_security", "b", "system_views"], [], ["app", "b"]),
    (["system", "app", "b"], ["b", "missing", "b"], ["b", "missing"]),
    (["system_auth", "system_traces", "OpsCenter"], [], []),
], ids=["every non-system keyspace", "the configured ones, in order", "nothing"])
def test_scope_keyspaces(present, wanted, expected):
    assert Scope(wanted).keyspaces_in(present) == expected


def _col(name, cql_type, static=False, reversed_=False):
    return NS(name=name, cql_type=cql_type, is_static=static, is_reversed=reversed_)


def test_snapshot_from_driver_metadata():
    cols = {"id": _col("id", "uuid"), "ts": _col("ts", "timestamp", reversed_=True),
            "tier": _col("tier", "int", static=True), "c": _col("c", "counter")}
    table = NS(columns=cols, partition_key=[cols["id"]], clustering_key=[cols["ts"]])
    other = NS(columns={"k": _col("k", "text")}, partition_key=[_col("k", "text")],
               clustering_key=[])
    ks = NS(tables={"t": table, "skip": other},
            user_types={"addr": NS(field_names=["street", "zip"], field_types=["text", "int"])})
    metadata = NS(keyspaces={"app": ks})
    out = snapshot_from_metadata(metadata, ["app", "absent"])
    assert list(out.keyspaces) == ["app"]
    assert sorted(out.keyspaces["app"].tables) == ["skip", "t"]
    _, in_scope, _ = scoped(out, out, Scope(exclude_tables=["app.skip"]))  # the one scope
    t = out.keyspaces["app"].tables["t"]
    assert list(in_scope.keyspaces["app"].tables) == ["t"]
    assert (t.partition_key, t.clustering, t.static) == (("id",), (("ts", "DESC"),),
                                                        frozenset({"tier"}))
    assert t.columns == {"id": "uuid", "ts": "timestamp", "tier": "int", "c": "counter"}
    assert t.is_counter_table and not USERS.is_counter_table
    assert out.keyspaces["app"].user_types == {"addr": (("street", "text"), ("zip", "int"))}
