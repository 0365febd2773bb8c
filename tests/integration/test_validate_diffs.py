"""Differences of each kind are found exactly; autocorrect fixes the fixable; live writes are not
differences: on each engine (local worker processes, Spark executors on local[2])."""

from __future__ import annotations

import threading

import pytest

from migrate_fixtures import config_for, migration, validation
from zdm.migrate.run import migrate
from zdm.validate import validate

TS = 1_700_000_000_000_000
ROWS = 300


@pytest.fixture()
def copied(keyspace, zdm_config, tmp_path, engine, origin_session, target_session):
    """(keyspace, config, run settings of the engine) once the table is copied on that engine."""
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.t (pk int, ck int, v text, w int, s int static, "
                  "m map<text, int>, PRIMARY KEY (pk, ck))")
    ins = origin_session.prepare(f"INSERT INTO {keyspace}.t (pk, ck, v, w, m) VALUES (?, ?, ?, ?, ?) "
                                 "USING TIMESTAMP ?")
    for i in range(ROWS):
        origin_session.execute(ins, (i % 30, i, f"v{i}", i, {"a": i}, TS + i))
    origin_session.execute(f"UPDATE {keyspace}.t USING TIMESTAMP {TS} SET s = 1 WHERE pk = 3")
    config = config_for(zdm_config, tmp_path)
    assert migrate(config, migration(keyspace, run=engine)).complete
    return keyspace, config, engine


def by_key(table_report) -> dict:
    return {(d["key"]["pk"], d["key"].get("ck")): d for d in table_report.differences}


# (name, statement run on origin or target, expected kind, key, differing (column, aspect) pairs)
INJECTIONS = [
    ("missing", "origin", "INSERT INTO {ks}.t (pk, ck, v) VALUES (1, 9001, 'new') USING TIMESTAMP {ts}",
     "missing_on_target", (1, 9001), []),
    ("value", "origin", "UPDATE {ks}.t USING TIMESTAMP {ts} SET v = 'changed' WHERE pk = 2 AND ck = 2",
     "cells_differ", (2, 2), [("v", "value"), ("v", "writetime")]),
    ("writetime", "origin", "UPDATE {ks}.t USING TIMESTAMP {ts} SET w = 4 WHERE pk = 4 AND ck = 4",
     "cells_differ", (4, 4), [("w", "writetime")]),
    ("ttl", "origin", "UPDATE {ks}.t USING TIMESTAMP {ts_same5} AND TTL 5000 SET w = 5 WHERE pk = 5 AND ck = 5",
     "cells_differ", (5, 5), [("w", "ttl")]),
    ("element", "origin", "UPDATE {ks}.t USING TIMESTAMP {ts} SET m = m + {{'b': 1}} WHERE pk = 6 AND ck = 6",
     "cells_differ", (6, 6), [("m", "value"), ("m", "writetime")]),
    ("static", "origin", "UPDATE {ks}.t USING TIMESTAMP {ts} SET s = 2 WHERE pk = 3",
     "cells_differ", (3, 3), [("s", "value"), ("s", "writetime")]),
    ("extra", "target", "INSERT INTO {ks}.t (pk, ck, v) VALUES (7, 9007, 'x') USING TIMESTAMP {ts}",
     "only_on_target", (7, 9007), []),
]


def inject(ks, origin_session, target_session, which=None):
    for name, side, stmt, *_ in INJECTIONS:
        if which and name not in which:
            continue
        session = origin_session if side == "origin" else target_session
        session.execute(stmt.format(ks=ks, ts=TS + 10_000, ts_same5=TS + 5))


def test_each_kind_of_difference_is_found_exactly(copied, origin_session, target_session):
    ks, config, engine = copied
    inject(ks, origin_session, target_session)
    report = validate(config, validation(ks, run=engine))
    assert not report.clean
    (t,) = report.tables
    assert (t.missing_on_target, t.only_on_target, t.cells_differ) == (1, 1, 5)
    found = by_key(t)
    assert set(found) == {i[4] for i in INJECTIONS}
    for name, _side, _stmt, kind, key, cells in INJECTIONS:
        assert found[key]["kind"] == kind, name
        assert {(c["column"], c["aspect"]) for c in found[key]["cells"]} == set(cells), name


def test_autocorrect_fixes_the_fixable_and_a_clean_validation_follows(copied, origin_session,
                                                                      target_session):
    ks, config, engine = copied
    inject(ks, origin_session, target_session)
    fixed = validate(config, validation(ks, autocorrect=True, run=engine))
    (t,) = fixed.tables
    assert t.fixed == 6 and t.remaining == 1
    assert [d["kind"] for d in t.differences if not d["fixed"]] == ["only_on_target"]
    # the row only on target is reported, never deleted
    assert target_session.execute(f"SELECT * FROM {ks}.t WHERE pk = 7 AND ck = 9007").one() is not None

    again = validate(config, validation(ks, run=engine))
    assert [(d["kind"], d["key"]) for d in again.tables[0].differences] == \
        [("only_on_target", {"pk": 7, "ck": 9007})]
    target_session.execute(f"DELETE FROM {ks}.t WHERE pk = 7 AND ck = 9007")
    assert validate(config, validation(ks, run=engine)).clean
    # the copy kept origin's writetime
    row = target_session.execute(f"SELECT v, writetime(v) AS wt FROM {ks}.t WHERE pk = 2 AND ck = 2").one()
    assert (row.v, row.wt) == ("changed", TS + 10_000)


def test_autocorrect_never_overwrites_a_newer_write_on_target(copied, origin_session, target_session):
    ks, config, engine = copied
    target_session.execute(f"UPDATE {ks}.t USING TIMESTAMP {TS + 50_000} SET v = 'live' WHERE pk = 8 AND ck = 8")
    report = validate(config, validation(ks, autocorrect=True, run=engine))
    (d,) = report.tables[0].differences
    assert d["kind"] == "cells_differ" and not d["fixed"]
    assert target_session.execute(f"SELECT v FROM {ks}.t WHERE pk = 8 AND ck = 8").one().v == "live"
    assert not report.clean


def test_writes_during_validation_are_not_differences(copied, origin_session, target_session):
    ks, config, engine = copied
    stop = threading.Event()
    written = []

    def dual_writer():
        """Like the proxy: the same write, same timestamp, to origin then target."""
        upd = [s.prepare(f"UPDATE {ks}.t USING TIMESTAMP ? SET v = ?, m = m + ? WHERE pk = ? AND ck = ?")
               for s in (origin_session, target_session)]
        i = 0
        while not stop.is_set():
            ts, ck = TS + 100_000 + i, (i * 7) % (ROWS + 50)  # updates and new rows
            params = (ts, f"live{i}", {"z": i}, ck % 30, ck)
            for stmt, s in zip(upd, (origin_session, target_session)):
                s.execute(stmt, params)
            written.append(ck)
            i += 1

    writer = threading.Thread(target=dual_writer)
    writer.start()
    try:
        reports = [validate(config, validation(ks, run={**engine, "fetch_size": 10})) for _ in range(2)]
    finally:
        stop.set()
        writer.join()
    assert len(written) > 10
    for report in reports:
        assert report.clean, report.to_json()["tables"][0]["differences"]
