"""The copy's batching, pure: target's limits, replica groups, the batcher's bounds, and the
simple-column planner that feeds it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdm.ranges.batches import (DEFAULT_PARTITIONS_WARN, DEFAULT_WARN_BYTES, BatchLimits, Batcher,
                                 ReplicaGroups, estimate_size, parse_size)
from zdm.migrate.cells import cells_of, group
from zdm.migrate.plan import plan_row, plan_simple, plan_static
from zdm.migrate.schema import Column, Kind, TableSpec
from zdm.ranges.ring import MAX_TOKEN, MIN_TOKEN


@pytest.mark.parametrize("text, expected", [
    ("5KiB", 5120), ("50KiB", 51200), ("1MiB", 1 << 20), ("512B", 512), ("7", 7), (" 2 KiB ", 2048),
    ("5kb", 5120), ("", None), ("lots", None), ("5 parsecs", None), (None, None),
], ids=["kib", "fail-default", "mib", "bytes", "bare", "spaces", "old-unit", "empty", "word",
        "unknown-unit", "none"])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("settings, expected", [
    ({}, BatchLimits(int(DEFAULT_WARN_BYTES * 0.8), DEFAULT_PARTITIONS_WARN)),
    ({"batch_size_warn_threshold": "5KiB", "batch_size_fail_threshold": "50KiB",
      "unlogged_batch_across_partitions_warn_threshold": "10"}, BatchLimits(4096, 10)),
    ({"batch_size_warn_threshold_in_kb": "8", "unlogged_batch_across_partitions_warn_threshold": "25"},
     BatchLimits(int(8192 * 0.8), 25)),
    ({"batch_size_warn_threshold": "64KiB", "batch_size_fail_threshold": "10KiB"}, BatchLimits(8192, 10)),
    ({"batch_size_warn_threshold": "junk", "unlogged_batch_across_partitions_warn_threshold": "x"},
     BatchLimits(4096, 10)),
    ({"batch_size_warn_threshold": "0B"}, BatchLimits(4096, 10)),
], ids=["defaults", "cassandra-5", "cassandra-4-names", "fail-below-warn", "unreadable", "zero"])
def test_limits_from_target_settings(settings, expected):
    assert BatchLimits.from_settings(settings) == expected


def test_estimate_counts_every_bound_byte_and_each_cell():
    assert estimate_size([b"\x00" * 4, b"abc", None], cells=1) == 16 + 7 + 16
    assert estimate_size([b"x"], cells=4) == estimate_size([b"x"], cells=1) + 3 * 16


def _batches(items, limits):
    """The copy's loop: add while it fits, else send the open batch and start another."""
    batcher, out = Batcher(limits), []
    for n, (grp, part, size) in enumerate(items):
        if not batcher.fits(grp, part, size):
            out.append(batcher.take())
        batcher.add((n, grp, part, size), grp, part, size)
    if batcher.items:
        out.append(batcher.take())
    return out


@pytest.mark.parametrize("items, limits, expected", [
    ([(0, p, 10) for p in range(25)], BatchLimits(10_000, 10), [10, 10, 5]),
    ([(0, 1, 10)] * 30, BatchLimits(100, 10), [10, 10, 10]),
    ([(0, 1, 10), (0, 2, 500), (0, 3, 10)], BatchLimits(100, 10), [1, 1, 1]),
    ([(0, 1, 10), (1, 2, 10), (1, 3, 10), (0, 4, 10)], BatchLimits(1000, 10), [1, 2, 1]),
    ([(0, 1, 10), (0, 1, 10), (0, 2, 10), (0, 2, 10), (0, 3, 10)], BatchLimits(1000, 2), [4, 1]),
], ids=["partitions", "bytes", "oversized-alone", "replica-change", "rows-of-one-partition"])
def test_batcher_bounds(items, limits, expected):
    assert [len(b) for b in _batches(items, limits)] == expected


@st.composite
def scans(draw):
    """(group, partition, size) in scan order: partitions contiguous, groups by token."""
    items, part = [], 0
    for _ in range(draw(st.integers(0, 60))):
        part += draw(st.integers(0, 1))
        grp = part // draw(st.integers(1, 8))
        items.append((grp, part, draw(st.integers(1, 600))))
    return items


@given(scans(), st.integers(1, 2000), st.integers(1, 12))
def test_every_batch_is_one_replica_group_within_its_bounds_in_scan_order(items, max_bytes, max_parts):
    limits = BatchLimits(max_bytes, max_parts)
    batches = _batches(items, limits)
    assert [it for b in batches for it in b] == [(n, *it) for n, it in enumerate(items)]
    for b in batches:
        assert len({grp for _, grp, _, _ in b}) == 1
        assert len({part for _, _, part, _ in b}) <= max_parts
        assert len(b) == 1 or sum(size for *_, size in b) <= max_bytes


def test_replica_groups_follow_target_ring_and_wrap_around():
    # ranges (.., -100], (-100, 0], (0, 100], (100, ..): the last wraps to the first's replicas
    groups = ReplicaGroups([-100, 0, 100], [{"a", "b"}, {"b", "c"}, {"a", "b"}])
    assert groups.count == 2
    assert groups.group_of(MIN_TOKEN + 1) == groups.group_of(-100) == groups.group_of(50)
    assert groups.group_of(-99) == groups.group_of(0) != groups.group_of(1)
    assert groups.group_of(MAX_TOKEN) == groups.group_of(-100)
    assert ReplicaGroups.single().group_of(12345) == ReplicaGroups.single().group_of(-5)


def test_replica_groups_from_a_driver_token_map():
    from cassandra.metadata import Murmur3Token

    class Host:
        def __init__(self, host_id):
            self.host_id = host_id

    a, b = Host("a"), Host("b")
    ring = [Murmur3Token(-10), Murmur3Token(10)]

    class TokenMap:
        def __init__(self):
            self.ring = ring

        def get_replicas(self, keyspace, token):
            assert keyspace == "ks"
            return [a] if token.value == -10 else [b]

    groups = ReplicaGroups.from_token_map(TokenMap(), "ks")
    assert groups.group_of(-20) == groups.group_of(11) != groups.group_of(0)
    assert ReplicaGroups.from_token_map(None, "ks").count == 1


# -- the simple-column planner is the general one, faster --------------------------------------

SIMPLE = TableSpec("ks", "t", ("pk",), ("ck",), (
    Column("s", "int", Kind.SIMPLE, static=True, offset=3),
    Column("a", "text", Kind.SIMPLE, offset=6),
    Column("b", "int", Kind.SIMPLE, offset=9),
    Column("c", "blob", Kind.SIMPLE, offset=12),
))

cell = st.one_of(st.none(), st.tuples(st.integers(0, 3), st.integers(1, 3), st.sampled_from([None, 0, 60, 3600])))


@given(st.lists(cell, min_size=4, max_size=4), st.booleans())
def test_plan_simple_is_group_of_cells(cells, static_only):
    row = [0, 1, None if static_only else 2]
    for c in cells:
        row += [None, None, None] if c is None else list(c)
    row = tuple(row)
    general = group(cells_of(row, SIMPLE.regulars), marker=True)
    assert plan_row(SIMPLE, row) == ([] if static_only else general)
    assert plan_static(SIMPLE, row) == group(cells_of(row, SIMPLE.statics), static=True)
    assert plan_simple(row, SIMPLE.simple_offsets(static=False), marker=True, static=False) == general


def test_only_all_simple_exact_columns_take_the_simple_planner():
    assert SIMPLE.simple_offsets(static=False) == (("a", 6), ("b", 9), ("c", 12))
    assert SIMPLE.simple_offsets(static=True) == (("s", 3),)
    with_set = TableSpec("ks", "t", ("pk",), (), (Column("v", "set<int>", Kind.SET, offset=2),))
    assert with_set.simple_offsets(static=False) is None
    inexact = TableSpec("ks", "t", ("pk",), (), (Column("v", "int", Kind.SIMPLE, offset=2, exact=False),))
    assert inexact.simple_offsets(static=False) is None
