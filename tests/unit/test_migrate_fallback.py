"""The fallback's pure parts: its timestamp, the list difference, and the writes it plans."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdm.migrate.cells import Op
from zdm.migrate.fallback import FALLBACK_MARGIN, fallback_timestamp, missing_from_list
from zdm.migrate.plan import plan_row, plan_static
from zdm.migrate.schema import Column, Kind, TableSpec
from zdm.migrate.statements import cql_for, values_for


def test_the_fallback_timestamp_is_the_margin_below_the_start_of_dual_writes():
    since = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert fallback_timestamp(since) == int((since - FALLBACK_MARGIN).timestamp()) * 1_000_000
    assert FALLBACK_MARGIN >= timedelta(minutes=1)


@pytest.mark.parametrize("origin, target, missing", [
    ([1, 2, 3], [], [1, 2, 3]),
    ([1, 2, 3], [3], [1, 2]),                 # a dual write appended 3
    ([1, 2, 3, 4], [3, 4], [1, 2]),
    ([1, 2, 3], [1, 2, 3], []),               # copied before: nothing again
    ([7, 7, 7], [7], [7, 7]),                 # repeated values are counted
    ([1, 2, 1], [1], [1, 2]),                 # matched from the end
    ([1, 2, 3], [9], [1, 2, 3]),              # target has what origin lacks
    ([1, 2, 3], [2, 1], [3]),                 # another order: nothing target has is doubled
    (None, [1], []),
    ([], None, []),
], ids=["empty target", "appended", "two appended", "already copied", "repeats",
        "from the end", "target only", "reordered", "origin empty", "both empty"])
def test_missing_from_list(origin, target, missing):
    assert missing_from_list(origin, target) == missing


@given(st.lists(st.integers(0, 4), max_size=12), st.lists(st.integers(0, 4), max_size=6))
def test_old_elements_prepended_under_appended_ones_recreate_origin(old, appended):
    """Origin = old elements + the ones dual writes appended; target had only the latter."""
    origin, target = old + appended, appended
    missing = missing_from_list(origin, target)
    assert missing + target == origin


@given(st.lists(st.integers(0, 4), max_size=10), st.lists(st.integers(0, 4), max_size=10))
def test_no_element_target_has_is_written_twice(origin, target):
    missing = missing_from_list(origin, target)
    assert not Counter(missing) - Counter(origin), "only origin's elements are written"
    after = Counter(missing) + Counter(target)
    assert all(after[v] >= n for v, n in Counter(origin).items()), "origin's all end up on target"
    assert all(after[v] <= max(Counter(origin)[v], Counter(target)[v]) for v in after)


T = 1_700_000_000_000_000
SPEC = TableSpec("ks", "t", ("k",), ("c",), (
    Column("v", "int", Kind.SIMPLE, offset=3),
    Column("l", "list<int>", Kind.LIST, offset=6, exact=False),
    Column("s", "set<text>", Kind.SET, offset=7, exact=False),
    Column("ud", "addr", Kind.UDT, fields=("a", "b"), offset=8, exact=False),
    Column("st", "map<int, int>", Kind.MAP, static=True, offset=9, exact=False),
), fallback_timestamp=T)


def row(v=(5, 100, None), l=None, s=None, ud=None, st=None):  # noqa: E741
    return (0, 1, 2, *v, l, s, ud, st)


def test_a_row_plans_its_exact_cells_then_one_fallback_write():
    writes = plan_row(SPEC, row(l=[1, 2], s={"a"}, ud=("x", None)), row(v=(None, None, None), l=[2]))
    insert, fallback = writes
    assert (insert.insert, insert.timestamp, [a.column for a in insert.assignments]) == (True, 100, ["v"])
    assert fallback.timestamp == T and fallback.ttl == 0 and not fallback.insert
    assert [(a.column, a.op, a.value) for a in fallback.assignments] == [
        ("l", Op.PREPEND, [1]), ("s", Op.SET, {"a"}), ("ud", Op.SET, ("x", None))]
    assert cql_for(SPEC, fallback) == ("UPDATE ks.t USING TIMESTAMP ? AND TTL ? SET l = ? + l, "
                                       "s = ?, ud = ? WHERE k = ? AND c = ?")
    assert values_for(SPEC, fallback, (1, 2)) == [T, 0, [1], {"a"}, ("x", None), 1, 2]


def test_nothing_to_copy_plans_no_fallback_write():
    assert [w.insert for w in plan_row(SPEC, row(l=[1]), row(l=[1]))] == [True]
    assert plan_static(SPEC, row()) == []
    (static,) = plan_static(SPEC, row(st={1: 2}))
    assert static.static and static.timestamp == T and static.assignments[0].op is Op.SET


def test_a_row_with_only_fallback_columns_still_gets_its_row_marker():
    marker, fallback = plan_row(SPEC, row(v=(None, None, None), s={"a"}))
    assert marker.insert and marker.assignments == () and marker.timestamp < T
    assert fallback.assignments[0].column == "s"


def test_without_the_fallback_timestamp_nothing_is_written():
    import dataclasses

    with pytest.raises(ValueError, match="fallback timestamp is not known"):
        plan_row(dataclasses.replace(SPEC, fallback_timestamp=None), row(s={"a"}))


@pytest.mark.parametrize("element_metadata", [True, False], ids=["5.0 origin", "older origin"])
def test_the_scan_layout_matches_its_selectors(element_metadata):
    from types import SimpleNamespace as NS

    from zdm.migrate.schema import table_spec

    def col(name, cql_type, static=False):
        return NS(name=name, cql_type=cql_type, is_static=static, is_reversed=False)

    columns = {c.name: c for c in (col("k", "int"), col("c", "int"), col("v", "text"),
                                   col("l", "list<int>"), col("ud", "addr"), col("n", "frozen<addr>"),
                                   col("m", "map<int, int>", static=True))}
    ks = NS(name="ks", user_types={"addr": NS(field_names=["a", "b"])})
    table = NS(name="t", partition_key=[columns["k"]], clustering_key=[columns["c"]], columns=columns)
    spec = table_spec(ks, table, element_metadata=element_metadata)
    selectors = spec._selectors()
    assert len(selectors) == 3 + sum(c.width for c in spec.columns)
    for c in spec.columns:
        assert selectors[c.offset] == c.q
    inexact = [c.name for c in spec.fallback_columns]
    assert inexact == ([] if element_metadata else ["l", "ud", "m"])
    assert any("WRITETIME(l)" in s for s in selectors) == element_metadata
    assert "WRITETIME(n)" in selectors, "a frozen UDT is one cell: exact everywhere"
