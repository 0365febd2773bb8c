"""The Spark engine keeps the local engine's contract: checkpoints advance range by range (a run
resumed on the other engine skips what the first finished), the retries the coordinator asks
for run, a crashed Python worker costs only its own range, and the spark-submit line of the
README works.  Real Cassandra, real pyspark on local[2]."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cassandra.concurrent import execute_concurrent_with_args

from migrate_fixtures import config_for, migration, run_settings, validation
from zdm.errors import ZdmError
from zdm.migrate import migrate
from zdm.migrate.run import CopyParams, copy_job
from zdm.migrate.tables import plan_tables
from zdm.ranges import engine as engines
from zdm.ranges.events import RangeDone
from zdm.ranges.pool import Job
from zdm.scope import Scope
from zdm.state.checkpoint import FileCheckpointStore
from zdm.validate import validate

ROWS = 600
SPLITS = 16


def _pickled_by_value() -> None:
    """Spark's workers cannot import this test module: its job functions travel by value."""
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


_pickled_by_value()


@pytest.fixture()
def kv(keyspace, origin_session, target_session):
    for s in (origin_session, target_session):
        s.execute(f"CREATE TABLE {keyspace}.kv (pk int PRIMARY KEY, v text)")
    ins = origin_session.prepare(f"INSERT INTO {keyspace}.kv (pk, v) VALUES (?, ?) USING TIMESTAMP ?")
    execute_concurrent_with_args(origin_session, ins, [(i, f"v{i}", 1000 + i) for i in range(ROWS)],
                                 concurrency=50)
    return keyspace


def on(name: str, request) -> dict:
    return {"engine": "spark", "master": request.getfixturevalue("spark_master")} \
        if name == "spark" else {"engine": "local"}


def stop_after(ranges: int):
    """An event callback that interrupts the run (as Ctrl-C would) once ``ranges`` are done."""
    seen = []

    def on_event(e) -> None:
        if isinstance(e, RangeDone):
            seen.append(e.range)
            if len(seen) == ranges:
                raise KeyboardInterrupt
    return on_event


@pytest.mark.parametrize("first, then", [("local", "spark"), ("spark", "local")],
                         ids=["local-then-spark", "spark-then-local"])
def test_a_run_resumed_on_the_other_engine_skips_what_the_first_finished(kv, zdm_config, tmp_path,
                                                                        request, first, then):
    config = config_for(zdm_config, tmp_path)
    table = f"{kv}.kv"
    part = migrate(config, migration(kv, run={**on(first, request), "splits": SPLITS}),
                   on_event=stop_after(5))
    assert part.interrupted and not part.complete
    done_before = set(FileCheckpointStore(config.state_dir).load(table).done)
    assert len(done_before) == 5  # each range checkpointed as it finished, none after the stop

    rest = migrate(config, migration(kv, resume=True, run={**on(then, request), "splits": SPLITS}))
    assert rest.complete
    (result,) = rest.tables
    assert result.ranges_skipped == 5
    assert not set(result.ranges_copied) & {r.key() for r in done_before}
    assert len(result.ranges_copied) == result.ranges_total - 5
    assert result.rows_total == ROWS

    check = validate(config, validation(kv, run=on(then, request)))
    assert check.clean and check.tables[0].rows_origin == ROWS


async def copy_unless_failing(ctx, spec, rng, params, on_rows):
    """``copy_job``, except that a range failing per ``params`` fails before copying anything:
    ``("once", R)``: the range R itself (its pieces then copy); ``("always", R)``: R and every
    piece of it."""
    mode, bad = params
    if rng == bad or (mode == "always" and bad.start <= rng.start and rng.end <= bad.end):
        raise RuntimeError(f"injected failure of {rng.key()}")
    return await copy_job(ctx, spec, rng, CopyParams(), on_rows)


async def copy_unless_crashing(ctx, spec, rng, params, on_rows):
    """``copy_job``, except that the Python worker running the range ``params`` dies."""
    if rng == params:
        os._exit(3)
    return await copy_job(ctx, spec, rng, CopyParams(), on_rows)


def run_with_retries(config, run, keyspace, job_fn, params_of, *, max_attempts=2):
    """Every range of ``keyspace.kv`` through the engine, with a coordinator that, like migrate's,
    retries a failed range in two pieces until ``max_attempts``; returns (plan, events)."""
    run = engines.prepare(run)
    (spec,), plan = plan_tables(config, Scope(keyspaces=(keyspace,)), run)
    events = []

    def handle(event):
        events.append(event)
        if event[0] == "failed" and event[1].attempt < max_attempts:
            job = event[1]
            return [Job(job.table, piece, job.attempt + 1) for piece in job.rng.split(2)]
        return []

    engines.run_jobs(config, run, {spec.qualified: spec}, job_fn, params_of(plan),
                     [Job(spec.qualified, r) for r in plan], handle)
    return plan, events


def rows_in(session, keyspace, rng) -> int:
    return session.execute(f"SELECT count(*) FROM {keyspace}.kv WHERE token(pk) > %s AND token(pk) <= %s",
                           (rng.start, rng.end)).one().count


@pytest.mark.parametrize("mode", ["once", "always"], ids=["fails-then-copies", "reported-failed"])
def test_a_failed_range_is_retried_as_the_coordinator_asks(kv, zdm_config, tmp_path, engine, mode,
                                                           origin_session, target_session):
    config = config_for(zdm_config, tmp_path)
    plan, events = run_with_retries(config, run_settings(**engine, splits=SPLITS), kv,
                                    copy_unless_failing, lambda plan: (mode, plan[3]))
    bad = plan[3]
    failed = [(e[1].rng, e[1].attempt) for e in events if e[0] == "failed"]
    done = [e[1].rng for e in events if e[0] == "done"]
    assert all("RuntimeError: injected failure of" in e[2] for e in events if e[0] == "failed")
    pieces = bad.split(2)
    if mode == "once":
        assert failed == [(bad, 1)]
        assert sorted(done) == sorted([r for r in plan if r != bad] + pieces)
        assert sum(e[2] for e in events if e[0] == "done") == ROWS
        assert sum(e[2] for e in events if e[0] == "rows") == ROWS
        assert target_session.execute(f"SELECT count(*) FROM {kv}.kv").one().count == ROWS
    else:
        assert sorted(failed) == sorted([(bad, 1)] + [(p, 2) for p in pieces])
        assert sorted(done) == sorted(r for r in plan if r != bad)
        lost = rows_in(origin_session, kv, bad)
        assert lost > 0
        assert sum(e[2] for e in events if e[0] == "done") == ROWS - lost
        assert rows_in(target_session, kv, bad) == 0


def test_a_crashed_python_worker_costs_only_its_own_range(kv, zdm_config, tmp_path, spark_master,
                                                          target_session):
    """local[2] gives up a Spark job at its first failed task: the crashed range is reported
    failed (and retried), the ranges the failure cut short go out again as they were."""
    config = config_for(zdm_config, tmp_path)
    plan, events = run_with_retries(config, run_settings(engine="spark", master=spark_master,
                                                         splits=SPLITS),
                                    kv, copy_unless_crashing, lambda plan: plan[3])
    failed = [e for e in events if e[0] == "failed"]
    assert [(e[1].rng, e[1].attempt) for e in failed] == [(plan[3], 1)]
    assert "crashed" in failed[0][2]
    done = [e[1] for e in events if e[0] == "done"]
    assert sorted(j.rng for j in done) == sorted([r for r in plan if r != plan[3]] + plan[3].split(2))
    assert {j.attempt for j in done if j.rng in plan} == {1}  # the others were not charged an attempt
    assert target_session.execute(f"SELECT count(*) FROM {kv}.kv").one().count == ROWS


def test_executors_that_cannot_import_the_job_stop_the_run_naming_the_module(kv, zdm_config, tmp_path,
                                                                             spark_master, monkeypatch):
    """As when the executors' Python lacks zdm: here a module only the driver has."""
    (tmp_path / "jobs_of_the_driver_only.py").write_text(
        "async def job(ctx, spec, rng, params, on_rows):\n    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import jobs_of_the_driver_only  # pickled by reference: it is importable here

    try:
        with pytest.raises(ZdmError) as refused:
            run_with_retries(config_for(zdm_config, tmp_path),
                             run_settings(engine="spark", master=spark_master, splits=4), kv,
                             jobs_of_the_driver_only.job, lambda plan: None)
    finally:
        del sys.modules["jobs_of_the_driver_only"]
    assert "Spark's executors cannot import jobs_of_the_driver_only" in refused.value.message
    assert "PYSPARK_PYTHON" in refused.value.hint and "--archives" in refused.value.hint


def test_the_readme_spark_submit_line_copies_through_the_same_entry_point(kv, zdm_config, tmp_path):
    """`spark-submit .../zdm/__main__.py migrate --engine spark`, here with --master local[2]."""
    import zdm

    config = config_for(zdm_config, tmp_path)
    cfg_file = tmp_path / "zdm.yaml"
    cfg_file.write_text(yaml.safe_dump({"origin": {"port": config.origin.port},
                                        "target": {"port": config.target.port},
                                        "state_dir": str(config.state_dir)}))
    entry = Path(zdm.__file__).with_name("__main__.py")
    spark_submit = Path(sys.executable).with_name("spark-submit")
    root = str(Path(zdm.__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    env.update(SPARK_LOCAL_IP="127.0.0.1",  # and this Python's bin first, as an activated venv has it
               PATH=os.pathsep.join([str(spark_submit.parent), os.environ.get("PATH", "")]),
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    # the README's line, but on local[2] and with this Python for the executors too
    done = subprocess.run([str(spark_submit), "--master", "local[2]", "--deploy-mode", "client",
                           "--name", "zdm", "--conf", f"spark.pyspark.driver.python={sys.executable}",
                           "--conf", f"spark.pyspark.python={sys.executable}",
                           "--conf", "spark.ui.enabled=false", str(entry),
                           "migrate", "-c", str(cfg_file), "-k", kv, "--engine", "spark",
                           "--splits", "8", "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Migration complete" in done.stdout
    assert FileCheckpointStore(config.state_dir).load(f"{kv}.kv").complete
    assert validate(config, validation(kv)).clean
