"""Pure parts of migrate: token ranges, cell grouping, checkpoints, rate limiter."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdm.migrate.cells import Cell, PK_ONLY_TIMESTAMP, group
from zdm.state.checkpoint import FileCheckpointStore
from zdm.migrate.schema import Kind
from zdm.ranges.ratelimit import RateLimiter
from zdm.ranges.ring import FULL_RING, MAX_TOKEN, MIN_TOKEN, TokenRange, split_ring, subtract

tokens = st.integers(MIN_TOKEN, MAX_TOKEN)


@given(st.lists(tokens, max_size=40), st.integers(1, 300))
def test_split_ring_covers_the_ring_once_sorted_and_aligned(boundaries, count):
    ranges = split_ring(boundaries, count)
    assert ranges[0].start == MIN_TOKEN and ranges[-1].end == MAX_TOKEN
    assert all(a.end == b.start for a, b in zip(ranges, ranges[1:]))  # contiguous: no gap, no overlap
    assert ranges == sorted(ranges)
    ends = {r.end for r in ranges}
    assert {b for b in boundaries if MIN_TOKEN < b < MAX_TOKEN} <= ends
    assert len(ranges) >= min(count, 1)


@given(st.lists(st.tuples(tokens, tokens).filter(lambda p: p[0] < p[1]).map(lambda p: TokenRange(*p)),
                max_size=10))
def test_subtract_leaves_exactly_the_uncovered_tokens(done):
    rest = subtract([FULL_RING], done)
    covered = sorted(done + rest)
    # every point of the ring is in done or rest; rest never overlaps done
    for r in rest:
        assert not any(d.start < r.end and r.start < d.end for d in done)
    assert sum(r.width for r in rest) + _union_width(done) == FULL_RING.width
    assert covered or not done


def _union_width(ranges):
    total, cur = 0, None
    for r in sorted(ranges):
        if cur is None or r.start >= cur[1]:
            if cur:
                total += cur[1] - cur[0]
            cur = [r.start, r.end]
        else:
            cur[1] = max(cur[1], r.end)
    return total + (cur[1] - cur[0] if cur else 0)


@pytest.mark.parametrize("rng, pieces, expected", [
    (TokenRange(0, 10), 2, [TokenRange(0, 5), TokenRange(5, 10)]),
    (TokenRange(0, 2), 5, [TokenRange(0, 1), TokenRange(1, 2)]),
    (TokenRange(-5, 5), 1, [TokenRange(-5, 5)]),
], ids=["even", "narrower-than-pieces", "one"])
def test_range_split(rng, pieces, expected):
    assert rng.split(pieces) == expected


cells = st.lists(st.builds(Cell, column=st.sampled_from(["a", "b", "c"]), kind=st.just(Kind.SIMPLE),
                           value=st.integers(), writetime=st.integers(0, 5), ttl=st.sampled_from([0, 60])),
                 unique_by=lambda c: c.column)


@given(cells, st.booleans())
def test_grouping_keeps_every_cell_once_with_its_own_writetime_and_ttl(cs, marker):
    writes = group(cs, marker=marker)
    seen = [(a.column, w.timestamp, w.ttl, a.value) for w in writes for a in w.assignments]
    assert sorted(seen) == sorted((c.column, c.writetime, c.ttl, c.value) for c in cs)
    keys = [(w.timestamp, w.ttl) for w in writes if w.assignments]
    assert len(keys) == len(set(keys))  # cells sharing (writetime, TTL) share one write
    inserts = [w for w in writes if w.insert]
    if marker:
        assert len(inserts) == 1
        assert inserts[0].timestamp == min((c.writetime for c in cs), default=PK_ONLY_TIMESTAMP)
    else:
        assert not inserts


def test_a_list_with_several_runs_is_a_chain_of_ordered_appends():
    cs = [Cell("l", Kind.LIST, 1, 10, 0, run=0), Cell("l", Kind.LIST, 2, 20, 0, run=1),
          Cell("l", Kind.LIST, 3, 10, 0, run=2), Cell("v", Kind.SIMPLE, "x", 10, 0)]
    writes = group(cs, marker=True)
    chain = [w for w in writes if w.chain == "l"]
    assert [(w.timestamp, w.assignments[0].value) for w in chain] == [(10, [1]), (20, [2]), (10, [3])]
    assert [w.insert for w in writes if w.chain is None] == [True]


def test_checkpoint_round_trips_and_remaining_excludes_done(tmp_path):
    store = FileCheckpointStore(tmp_path)
    plan = split_ring([], 4)
    cp = store.start("ks.t", plan, "2024-01-01T00:00:00+00:00")
    store.mark_done(cp, plan[1], 7)
    loaded = store.load("ks.t")
    assert loaded.plan == plan and loaded.done == {plan[1]: 7}
    assert loaded.remaining() == [plan[0], *plan[2:]]
    assert not list(tmp_path.rglob("*.tmp"))



def test_checkpoint_keeps_failed_and_carried_ranges_across_a_reload(tmp_path):
    store = FileCheckpointStore(tmp_path)
    plan = split_ring([], 4)
    earlier = store.start("ks.t", plan)
    store.mark_done(earlier, plan[0], 5, {"missing_on_target": 0})
    cp = store.start("ks.t", plan, "2024-01-01T00:00:00+00:00", carried=earlier)
    store.mark_done(cp, plan[1], 7)
    store.mark_failed(cp, plan[2], "OperationTimedOut: no answer")
    loaded = store.load("ks.t")
    assert loaded == cp
    assert loaded.carried == {plan[0]} and loaded.failed == {plan[2]: "OperationTimedOut: no answer"}
    assert loaded.done == {plan[0]: 5, plan[1]: 7}  # a failed range is not done
    assert loaded.remaining() == [plan[2], plan[3]] and not loaded.complete
    raw = json.loads(store.path("ks.t").read_text())
    assert raw["carried"] == [plan[0].key()] and raw["failed"] == {plan[2].key(): "OperationTimedOut: no answer"}


def test_a_checkpoint_file_without_failed_or_carried_ranges_loads_and_stays_without_them(tmp_path):
    store = FileCheckpointStore(tmp_path)
    plan = split_ring([], 2)
    store.path("ks.t").parent.mkdir(parents=True)
    store.path("ks.t").write_text(json.dumps(  # as written before checkpoints had the two keys
        {"format": 1, "table": "ks.t", "started_at": "", "plan": [r.key() for r in plan],
         "done": {plan[0].key(): 3}}))
    cp = store.load("ks.t")
    assert (cp.done, cp.carried, cp.failed) == ({plan[0]: 3}, set(), {})
    store.mark_done(cp, plan[1], 4)
    assert not {"carried", "failed"} & set(json.loads(store.path("ks.t").read_text()))


def test_done_ranges_clear_the_failures_they_wholly_cover_however_they_are_cut(tmp_path):
    store = FileCheckpointStore(tmp_path)
    plan = split_ring([], 2)
    cp = store.start("ks.t", plan)
    store.mark_failed(cp, plan[0], "first")
    store.mark_failed(cp, plan[1], "second")
    left, right = plan[0].split(2)
    store.mark_done(cp, left, 1)  # half of the failed range: still failed
    assert store.load("ks.t").failed == {plan[0]: "first", plan[1]: "second"}
    store.mark_done(cp, right, 2)  # now covered, by pieces cut differently from the failure
    assert store.load("ks.t").failed == {plan[1]: "second"}
    store.mark_failed(cp, plan[1].split(2)[0], "a piece")
    store.mark_failed(cp, plan[1], "the whole")  # a later failure of a wider range replaces it
    assert store.load("ks.t").failed == {plan[1]: "the whole"}
    store.mark_done(cp, plan[1], 3)  # the same range, done on a retry
    loaded = store.load("ks.t")
    assert loaded.failed == {} and loaded.complete


def test_a_fresh_checkpoint_marks_what_it_carried_but_not_the_earlier_failures(tmp_path):
    store = FileCheckpointStore(tmp_path)
    plan = split_ring([], 4)
    earlier = store.start("ks.t", plan)
    store.mark_done(earlier, plan[0], 1)
    store.mark_done(earlier, plan[1], 2)
    store.mark_failed(earlier, plan[2], "boom")
    recheck = store.start("ks.t", plan, carried=earlier)
    assert recheck.carried == set(recheck.done) == {plan[0], plan[1]}
    assert recheck.failed == {}  # this run tries them again
    store.mark_done(recheck, plan[2], 3)
    assert store.load("ks.t").carried == {plan[0], plan[1]}
    assert store.start("ks.t", plan).carried == set()


@pytest.mark.parametrize("rate, calls, expected_last_wait", [
    (None, [1000, 1000], 0.0), (100, [100], 0.0), (100, [100, 100, 100], 2.0),
], ids=["unlimited", "within-burst", "beyond-burst"])
def test_rate_limiter_waits_only_beyond_the_burst(rate, calls, expected_last_wait):
    limiter = RateLimiter(rate, clock=lambda: 0.0)
    waits = [limiter.reserve(n) for n in calls]
    assert waits[-1] == pytest.approx(expected_last_wait)
