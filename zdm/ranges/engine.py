"""Which engine runs the range jobs of ``zdm migrate`` and ``zdm validate``: the one place
that picks it.

``local`` (the default) runs them on worker processes of this machine
(:mod:`zdm.ranges.pool`); ``spark`` runs them on the executors of a Spark cluster, through
pyspark (:mod:`zdm.ranges.spark`, ``pip install 'zdm[spark]'``).  Both run the same job
function (``job_fn(ctx, spec, range, params, on_rows)``) and report the same events to the
coordinator's ``handle`` as each range finishes (``("rows", table, n)``, ``("done", job,
result)``, ``("failed", job, error)``: the engines' wire format, which only
:func:`zdm.ranges.coordinator.run_ranges` reads), so checkpoints, retries and resuming do not
depend on the engine: a run resumed on the other engine skips the ranges the first finished.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from zdm.errors import ConfigError
from zdm.ranges import pool, spark
from zdm.ranges.context import RunSettings
from zdm.ranges.pool import Job

ENGINES = ("local", "spark")
ENGINE_HINT = ("use --engine local (worker processes on this machine, the default) or --engine spark "
               "(a Spark cluster's executors, at --master URL)")


def check(run: RunSettings) -> None:
    """Refuse an engine zdm does not have, a Spark master given to the local engine, and the
    Spark engine without pyspark or without a master; starts nothing."""
    if run.engine not in ENGINES:
        raise ConfigError(f"unknown engine {run.engine!r} (zdm has: {', '.join(ENGINES)})",
                          path="--engine", hint=ENGINE_HINT)
    if run.engine == "local":
        if run.master:
            raise ConfigError(f"a Spark master ({run.master}) is only for --engine spark",
                              path="--master",
                              hint="add --engine spark to run the ranges on that Spark master, or "
                                   "drop --master to run them in worker processes on this machine")
        return
    spark.check(run)


def prepare(run: RunSettings) -> RunSettings:
    """``run`` ready for :func:`run_jobs`: checked and, for Spark, with its context started (or
    joined) and the ring's range count set from the cores Spark reports (unless ``splits``)."""
    check(run)
    if run.engine == "spark":
        return spark.prepare(run)
    return run


def run_jobs(config, run: RunSettings, specs: dict, job_fn: Callable, params: Any,
             jobs: Iterable[Job], handle: Callable[[tuple], list[Job]], *,
             tick: Callable[[], None] | None = None) -> None:
    """:func:`zdm.ranges.pool.run_jobs` on the engine ``run`` names."""
    if run.engine == "spark":
        spark.run_jobs(config, run, specs, job_fn, params, jobs, handle, tick=tick)
        return
    pool.run_jobs(config, run, specs, job_fn, params, jobs, handle, tick=tick)
