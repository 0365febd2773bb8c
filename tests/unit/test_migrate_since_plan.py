"""A catch-up copy (``zdm migrate --since``) plans only the cells written at or after its time."""

from __future__ import annotations

import pytest

from zdm.migrate.plan import plan_row, plan_static
from zdm.migrate.run import micros
from zdm.migrate.schema import Column, Kind, TableSpec

SPEC = TableSpec("ks", "t", ("k",), ("c",), (
    Column("v", "int", Kind.SIMPLE, offset=3),
    Column("w", "int", Kind.SIMPLE, offset=6),
    Column("st", "int", Kind.SIMPLE, static=True, offset=9),
))
SINCE = 1_000


def row(v=(None, None, None), w=(None, None, None), st=(None, None, None)):
    return (0, 1, 2, *v, *w, *st)


def columns(writes):
    return [(w.timestamp, w.insert, [a.column for a in w.assignments]) for w in writes]


@pytest.mark.parametrize("scan, expected", [
    (row(v=(5, 10, None), w=(6, 20, None)), []),
    (row(v=(5, 10, None), w=(6, 2000, None)), [(2000, True, ["w"])]),
    (row(v=(5, 1000, None), w=(6, 2000, None)), [(1000, True, ["v"]), (2000, False, ["w"])]),
    (row(), [(0, True, [])]),
], ids=["all older: nothing", "one cell newer: it alone, with the row's marker",
        "at the time counts", "no cells: the key, undatable, at the lowest timestamp"])
def test_only_cells_at_or_after_since_are_planned(scan, expected):
    assert columns(plan_row(SPEC, scan, since=SINCE)) == expected


def test_without_since_every_cell_is_planned():
    assert columns(plan_row(SPEC, row(v=(5, 10, None), w=(6, 2000, None)))) == [
        (10, True, ["v"]), (2000, False, ["w"])]


def test_static_cells_follow_since_too():
    assert plan_static(SPEC, row(st=(1, 10, None)), since=SINCE) == []
    assert columns(plan_static(SPEC, row(st=(1, 5000, None)), since=SINCE)) == [(5000, False, ["st"])]


def test_since_is_in_writetime_units():
    from datetime import datetime, timezone

    t = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=timezone.utc)
    assert micros(t) == 1_714_564_800_250_000
    assert micros(datetime(2024, 5, 1, 12, 0, 0, 250_000)) == micros(t), "no zone: UTC"
