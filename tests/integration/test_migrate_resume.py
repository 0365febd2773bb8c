"""A migration killed midway and resumed yields the exact copy without redoing finished ranges,
with its checkpoints in files (state_store: file) or on target (state_store: cassandra)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import dataclasses

import pytest
import yaml

from migrate_fixtures import config_for, migration, validation
from zdm.migrate.run import migrate
from zdm.state import open_checkpoints
from zdm.validate import validate

ROWS = 2000


@pytest.mark.parametrize("state_store", ["file", "cassandra"])
def test_killed_migration_resumes_only_unfinished_ranges(state_store, keyspace, zdm_config, tmp_path,
                                                         origin_session, target_session):
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.kv (pk int PRIMARY KEY, v text)")
    ins = origin_session.prepare(f"INSERT INTO {keyspace}.kv (pk, v) VALUES (?, ?) USING TIMESTAMP ?")
    for i in range(ROWS):
        origin_session.execute_async(ins, (i, f"v{i}", 1000 + i))
    while origin_session.execute(f"SELECT count(*) FROM {keyspace}.kv").one().count < ROWS:
        time.sleep(0.05)

    config = dataclasses.replace(config_for(zdm_config, tmp_path), state_store=state_store,
                                 state_keyspace=f"{keyspace}_state")
    cfg_file = tmp_path / "zdm.yaml"
    cfg_file.write_text(yaml.safe_dump({"origin": {"port": config.origin.port},
                                        "target": {"port": config.target.port},
                                        "state_dir": str(config.state_dir),
                                        "state_store": state_store,
                                        "state_keyspace": config.state_keyspace}))
    # slow enough (rate limit) that the kill lands mid-run
    proc = subprocess.Popen([sys.executable, "-m", "zdm.cli.main", "migrate", "-c", str(cfg_file),
                             "-k", keyspace, "--workers", "1", "--splits", "32", "--rate-limit", "400",
                             "--fetch-size", "20", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = open_checkpoints(config, "migrate")
    table = f"{keyspace}.kv"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            cp = store.load(table)
            if cp is not None and len(cp.done) >= 5:
                break
            assert proc.poll() is None, "the migration finished before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done_before = set(store.load(table).done)
    assert 5 <= len(done_before) < 32

    report = migrate(config, migration(keyspace, resume=True, run={"splits": 32}))
    assert report.complete
    (result,) = report.tables
    redone = {r for r in result.ranges_copied}
    assert not redone & {r.key() for r in done_before}
    assert result.ranges_skipped == len(done_before)
    assert result.rows_total == ROWS

    check = validate(config, validation(keyspace))
    assert check.clean, json.dumps(check.to_json(), default=str)[:2000]
    assert check.tables[0].rows_origin == ROWS

    # the checkpoint lives in the store the configuration names, and only there
    store.close()
    with open_checkpoints(config, "migrate") as fresh:
        final = fresh.load(table)
    assert final.complete and final.rows_done == ROWS
    assert (config.state_dir / "migrate").exists() == (state_store == "file")
    if state_store == "cassandra":
        target_session.execute(f"DROP KEYSPACE IF EXISTS {config.state_keyspace}", timeout=60)
