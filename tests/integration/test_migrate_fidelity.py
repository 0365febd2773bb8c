"""A schema with every CQL type migrates to an exact copy: values, writetimes and TTLs per cell,
on each engine (local worker processes, Spark executors on local[2])."""

from __future__ import annotations

import time

import pytest
from migrate_fixtures import (BIG_PARTITION_ROWS, assert_exact_copy, config_for, create_schema,
                              fill_origin, migration, validation)
from zdm.migrate.run import migrate
from zdm.phases import evidence_of
from zdm.state import FileStateStore
from zdm.validate import validate


@pytest.fixture()
def filled(keyspace, origin_session, target_session):
    for s in (origin_session, target_session):
        create_schema(s, keyspace)
    fill_origin(origin_session, keyspace)
    return keyspace


def test_every_type_migrates_to_an_exact_copy_and_validates_clean(filled, zdm_config, tmp_path, engine,
                                                                  origin_session, target_session):
    config = config_for(zdm_config, tmp_path)
    t0 = time.monotonic()
    report = migrate(config, migration(filled, run=engine))
    assert report.complete, report.to_json()
    assert {t.table.split(".")[1] for t in report.tables} == {"everything", "counts", "keys_only", "wide"}
    compared = assert_exact_copy(origin_session, target_session, filled, time.monotonic() - t0)
    assert compared > BIG_PARTITION_ROWS

    check = validate(config, validation(filled, run=engine))
    assert check.clean, check.to_json()
    assert check.differences == 0
    state = FileStateStore(config.state_dir).load()
    assert evidence_of(state, "migration").complete
    assert evidence_of(state, "validation").clean


def test_row_liveness_choices_are_as_documented(filled, zdm_config, tmp_path, engine, target_session):
    migrate(config_for(zdm_config, tmp_path), migration(filled, run=engine))
    # a primary-key-only row exists on target; a static-only partition has no clustering row
    assert target_session.execute(f"SELECT * FROM {filled}.everything WHERE pk = 102").one() is not None
    rows = list(target_session.execute(f"SELECT ck, s_static FROM {filled}.everything WHERE pk = 100"))
    assert [(r.ck, r.s_static) for r in rows] == [(None, 12)]
    # counters copied as deltas: a second run changes nothing
    migrate(config_for(zdm_config, tmp_path), migration(filled, run=engine))
    total = sum(r.hits for r in target_session.execute(f"SELECT hits FROM {filled}.counts"))
    assert total == sum(pk + ck + 1 for pk in range(4) for ck in range(3))


def test_parallel_worker_processes_copy_the_same(filled, zdm_config, tmp_path, origin_session,
                                                 target_session):
    t0 = time.monotonic()
    report = migrate(config_for(zdm_config, tmp_path), migration(filled, run={"workers": 2}))
    assert report.complete
    assert_exact_copy(origin_session, target_session, filled, time.monotonic() - t0)


def test_lists_are_not_duplicated_when_a_range_is_copied_twice(filled, zdm_config, tmp_path, engine,
                                                               target_session):
    for _ in range(2):
        assert migrate(config_for(zdm_config, tmp_path), migration(filled, run=engine)).complete
    row = target_session.execute(f"SELECT l FROM {filled}.everything WHERE pk = 1 AND ck = 'c1'").one()
    assert row.l == [1, 2, 3, 4, 5, 6]


def test_a_slow_copy_keeps_each_cell_expiring_when_it_does_on_origin(keyspace, zdm_config, tmp_path,
                                                                     origin_session, target_session):
    """A TTL read in a page counts down while the page waits to be written (here: the rate
    limit holds each 100-row page ~4 s); target's cells must not outlive origin's by that."""
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.ttl (k int PRIMARY KEY, v text)")
    ins = origin_session.prepare(f"INSERT INTO {keyspace}.ttl (k, v) VALUES (?, 'x') USING TTL 3600")
    for k in range(200):
        origin_session.execute(ins, (k,))
    report = migrate(config_for(zdm_config, tmp_path),
                     migration(keyspace, run={"fetch_size": 100, "splits": 1, "rate_limit": 25}))
    assert report.complete and report.elapsed_s > 6
    query = f"SELECT k, ttl(v) AS t FROM {keyspace}.ttl"
    origin = {r.k: r.t for r in origin_session.execute(query)}
    target = {r.k: r.t for r in target_session.execute(query)}
    assert origin.keys() == target.keys()
    late = {k: target[k] - origin[k] for k in origin if not -1 <= target[k] - origin[k] <= 1}
    assert not late, f"cells that expire later on target (by seconds): {late}"
