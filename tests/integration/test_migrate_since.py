"""A catch-up copy (`zdm migrate --since TIME`) copies exactly the cells written at or after
TIME, with their writetimes, and leaves the full copy's checkpoints and evidence alone."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

from migrate_fixtures import config_for, migration
from zdm.migrate.run import migrate
from zdm.state import open_checkpoints
from zdm.migrate.run import micros

SINCE = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
OLD, NEW = micros(SINCE) - 60_000_000, micros(SINCE) + 60_000_000


def test_a_catch_up_copies_only_what_was_written_since(keyspace, zdm_config, tmp_path,
                                                       origin_session, target_session):
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.t (pk int, ck int, v text, w text, st text static, "
                  "PRIMARY KEY (pk, ck))")
    o = origin_session
    for pk in range(20):  # old rows: not copied
        o.execute(f"INSERT INTO {keyspace}.t (pk, ck, v, w) VALUES ({pk}, 0, 'old', 'old') USING TIMESTAMP {OLD}")
    for pk in range(20, 30):  # written during the window: copied whole
        o.execute(f"INSERT INTO {keyspace}.t (pk, ck, v, w) VALUES ({pk}, 0, 'new', 'new') USING TIMESTAMP {NEW}")
    for pk in range(5):  # old rows updated during the window: only the new cell
        o.execute(f"UPDATE {keyspace}.t USING TIMESTAMP {NEW + pk} SET w = 'upd' WHERE pk = {pk} AND ck = 0")
    o.execute(f"UPDATE {keyspace}.t USING TIMESTAMP {NEW} SET st = 'static' WHERE pk = 7")
    o.execute(f"UPDATE {keyspace}.t USING TIMESTAMP {OLD} SET st = 'old static' WHERE pk = 8")
    config = config_for(zdm_config, tmp_path)

    report = migrate(config, migration(keyspace, since=SINCE))
    assert report.complete and report.since == SINCE
    rows = {(r.pk, r.ck): r for r in target_session.execute(
        f"SELECT pk, ck, v, writetime(v) AS vt, w, writetime(w) AS wt, st FROM {keyspace}.t")}
    expected = {(pk, 0): ("new", NEW, "new", NEW) for pk in range(20, 30)}
    expected.update({(pk, 0): (None, None, "upd", NEW + pk) for pk in range(5)})
    assert {k: (r.v, r.vt, r.w, r.wt) for k, r in rows.items() if r.ck is not None} == expected
    statics = {r.pk: r.st for r in rows.values() if r.st is not None}
    assert statics == {7: "static"}

    # the catch-up's checkpoints are its own, and it records no evidence of a full copy
    with open_checkpoints(config, "migrate") as store:
        assert store.load(f"{keyspace}.t") is None
    with open_checkpoints(config, "catchup") as store:
        assert store.load(f"{keyspace}.t").complete
    from zdm.state import open_store

    with open_store(config) as state:
        assert "migration" not in state.load().evidence


def test_a_since_that_is_not_a_time_is_refused(tmp_path):
    done = subprocess.run([sys.executable, "-m", "zdm.cli.main", "migrate", "--since", "yesterday"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "--since 'yesterday' is not an ISO 8601 time" in done.stdout + done.stderr
