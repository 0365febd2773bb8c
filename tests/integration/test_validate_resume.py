"""Validation checkpoints: an interrupted validation resumes without comparing its finished ranges
again, and --only-failed re-checks only the ranges that differed, carrying the clean ones; with
the checkpoints in files or on target."""

from __future__ import annotations

import dataclasses

import pytest

from migrate_fixtures import config_for, migration, validation
from zdm.errors import ZdmError
from zdm.migrate import migrate
from zdm.ranges.events import RangeDone
from zdm.state import open_checkpoints
from zdm.validate import validate

ROWS = 1200
SPLITS = 24


@pytest.fixture(params=["file", "cassandra"])
def copied(request, keyspace, zdm_config, tmp_path, origin_session, target_session):
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.kv (pk int PRIMARY KEY, v text)")
    ins = origin_session.prepare(f"INSERT INTO {keyspace}.kv (pk, v) VALUES (?, ?) USING TIMESTAMP ?")
    for chunk in range(0, ROWS, 300):
        for f in [origin_session.execute_async(ins, (i, f"v{i}", 1000 + i))
                  for i in range(chunk, chunk + 300)]:
            f.result()
    config = dataclasses.replace(config_for(zdm_config, tmp_path), state_store=request.param,
                                 state_keyspace=f"{keyspace}_state")
    assert migrate(config, migration(keyspace, run={"splits": SPLITS})).complete
    yield keyspace, config
    if request.param == "cassandra":
        target_session.execute(f"DROP KEYSPACE IF EXISTS {config.state_keyspace}", timeout=60)


def test_an_interrupted_validation_resumes_where_it_stopped(copied, target_session):
    ks, config = copied
    target_session.execute(f"DELETE FROM {ks}.kv WHERE pk = 7")
    seen = []

    def stop_after_some(event):
        if isinstance(event, RangeDone):
            seen.append(event.range)
            if len(seen) == 6:
                raise KeyboardInterrupt  # the operator's Ctrl-C, as the coordinator sees it

    first = validate(config, validation(ks, run={"splits": SPLITS, "workers": 0}), stop_after_some)
    assert first.interrupted and not first.clean
    with open_checkpoints(config, "validate") as store:
        cp = store.load(f"{ks}.kv")
    finished = set(cp.done)
    assert len(finished) >= 6

    compared = []
    resumed = validate(config, validation(ks, resume=True, run={"splits": SPLITS}),
                       lambda e: compared.append(e.range) if isinstance(e, RangeDone) else None)
    (table,) = resumed.tables
    assert not {r for r in compared} & {r.key() for r in finished}, "a finished range was compared again"
    assert table.ranges_carried == len(finished) and table.ranges_total == len(cp.plan)
    # the report covers the whole table: carried findings plus this run's
    assert table.rows_origin == ROWS and table.missing_on_target == 1
    assert [d["key"] for d in table.differences] == [{"pk": 7}]
    assert not resumed.clean


def test_only_failed_rechecks_the_ranges_that_differed(copied, origin_session, target_session):
    ks, config = copied
    for pk in (3, 500):  # rows only origin has (as if a write had missed target)
        origin_session.execute(f"INSERT INTO {ks}.kv (pk, v) VALUES ({pk + ROWS}, 'late') USING TIMESTAMP 5000")
    full = validate(config, validation(ks, run={"splits": SPLITS}))
    assert not full.clean and full.tables[0].missing_on_target == 2

    compared = []
    again = validate(config, validation(ks, only_failed=True, autocorrect=True, run={"splits": SPLITS}),
                     lambda e: compared.append(e.range) if isinstance(e, RangeDone) else None)
    (table,) = again.tables
    assert 1 <= len(compared) <= 2, compared  # the ranges holding the two, nothing else
    assert table.ranges_carried == table.ranges_total - len(compared)
    assert table.rows_origin == ROWS + 2 and table.missing_on_target == 2 and table.fixed == 2
    assert again.clean
    rows = {r.pk: r.v for r in target_session.execute(
        f"SELECT pk, v FROM {ks}.kv WHERE pk IN ({3 + ROWS}, {500 + ROWS})")}
    assert rows == {3 + ROWS: "late", 500 + ROWS: "late"}

    # nothing differed last time: nothing to compare, and still the whole table's report
    compared.clear()
    last = validate(config, validation(ks, only_failed=True, run={"splits": SPLITS}),
                    lambda e: compared.append(e.range) if isinstance(e, RangeDone) else None)
    assert compared == [] and last.clean and last.tables[0].rows_origin == ROWS + 2


def test_only_failed_needs_an_earlier_validation(copied):
    ks, config = copied
    with pytest.raises(ZdmError, match="no earlier validation"):
        validate(config, validation(ks, only_failed=True, run={"splits": SPLITS}))
