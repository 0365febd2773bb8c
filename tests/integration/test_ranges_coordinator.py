"""The coordinator of range work checkpoints a range it gave up on, with its error, so the
console can show it; a resumed run that finishes the range (cut however it is) clears it.
Real worker context (sessions to the sandbox), a job that fails on one range, checkpoints in
files or on target."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from zdm.ranges.context import RunSettings
from zdm.ranges.coordinator import run_ranges
from zdm.ranges.events import RangeDone, RangeFailed
from zdm.ranges.ring import FULL_RING
from zdm.state import open_checkpoints

TABLE = "ks.t"


async def fail_inside(ctx, spec, rng, params, on_rows):
    """One row per range, except that a range inside ``params`` (None: none) always fails."""
    if params is not None and params.start <= rng.start and rng.end <= params.end:
        raise RuntimeError(f"injected failure of {rng.key()}")
    on_rows(1)
    return 1


@pytest.fixture(params=["file", "cassandra"])
def config(request, zdm_config, tmp_path, target_session):
    keyspace = "zdm_state_" + uuid.uuid4().hex[:10]
    yield dataclasses.replace(zdm_config, state_store=request.param, state_keyspace=keyspace,
                              state_dir=tmp_path / "state")
    target_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)


def run(config, bad, checkpoint_of):
    events: list = []
    with open_checkpoints(config, "migrate") as store:
        cp = checkpoint_of(store)
        interrupted = run_ranges(config, RunSettings(workers=0, concurrency=2), {TABLE: None},
                                 fail_inside, bad, store, {TABLE: cp}, max_attempts=2,
                                 retry_splits=2, on_event=events.append)
    assert not interrupted
    return events


def test_a_range_failing_on_every_attempt_ends_in_the_checkpoint_with_its_error(config):
    plan = FULL_RING.split(4)
    bad = plan[2]
    events = run(config, bad, lambda store: store.start(TABLE, plan))
    final = [e for e in events if isinstance(e, RangeFailed) and e.final]
    pieces = bad.split(2)  # the second attempt's pieces, each given up on
    assert sorted(e.range for e in final) == sorted(p.key() for p in pieces)
    with open_checkpoints(config, "migrate") as store:
        cp = store.load(TABLE)
    assert cp.failed == {p: f"RuntimeError: injected failure of {p.key()}" for p in pieces}
    assert set(cp.done) == {plan[0], plan[1], plan[3]} and not cp.complete
    assert cp.remaining() == [bad]

    # resumed, the range succeeds whole: the failures of its pieces are covered and go
    events = run(config, None, lambda store: store.load(TABLE))
    assert [e.range for e in events if isinstance(e, RangeDone)] == [bad.key()]
    with open_checkpoints(config, "migrate") as store:
        cp = store.load(TABLE)
    assert cp.failed == {} and cp.complete and cp.rows_done == 4
