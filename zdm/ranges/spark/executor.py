"""The executors' side of the Spark engine: one range per Spark task.

Theory of operation: a task runs the run's job function on its Python worker's event loop and
returns one event for the driver, ``(token, kind, value, rows)``; a range's failure is that
event, not the task's, so Spark does not run the range again on its own: the coordinator decides.  Each Python worker
process (Spark reuses them across tasks) keeps one :class:`~zdm.ranges.context.WorkerContext`
and one event loop for all its tasks, as long as they are for the same clusters and run
settings (a task for others closes them and builds its own).  Results and errors travel
pickled; only the driver writes checkpoints.

This module is imported on the executors (pickled functions name it), so it imports nothing
of the driver's side.
"""

from __future__ import annotations

import asyncio
import gc
import pickle
import sys
import zipimport
from dataclasses import dataclass
from typing import Any, Callable

from zdm.errors import ZdmError
from zdm.ranges.context import WorkerContext
from zdm.ranges.pool import Job
from zdm.ranges.ratelimit import RateLimiter


@dataclass(frozen=True)
class Shared:
    """What every task of one run needs; pickled into each Spark job."""

    id: str
    config: Any
    settings: Any  # RunSettings
    specs: dict
    job_fn: Callable
    params: Any


#: [(what the context was built from, event loop, WorkerContext)] this Python worker process keeps
_serving: list = []


def range_task(shared: Shared, events, rate_share: float | None, item: tuple) -> None:
    events.add([run_range(shared, rate_share, *item)])


def run_range(shared: Shared, rate_share: float | None, token: int, job: Job) -> tuple:
    """(token, "done", result, rows) or (token, "failed", error, rows), or (token, "fatal",
    message, hint) when this worker cannot build its context."""
    try:
        loop, ctx = _worker_context(shared, rate_share)
    except ZdmError as exc:
        return (token, "fatal", exc.message, exc.hint)
    except Exception as exc:  # noqa: BLE001 - reported to the coordinator
        return (token, "fatal", f"a Spark worker could not start: {type(exc).__name__}: {exc}", None)
    rows = 0

    def on_rows(n: int) -> None:
        nonlocal rows
        rows += n

    try:
        result = loop.run_until_complete(
            shared.job_fn(ctx, shared.specs[job.table], job.rng, shared.params, on_rows))
        pickle.dumps(result)  # it travels back pickled: fail here, as this range's error
    except Exception as exc:  # noqa: BLE001 - every range failure goes to the coordinator
        return (token, "failed", f"{type(exc).__name__}: {exc}", rows)
    return (token, "done", result, rows)


def _worker_context(shared: Shared, rate_share: float | None):
    # a context depends on the clusters and the run settings only: a later run (the validation
    # after a copy, say) with the same ones reuses it
    key = (shared.config.origin, shared.config.target, shared.settings)
    if _serving and _serving[0][0] == key:
        _, loop, ctx = _serving[0]
    else:
        _lazy_zip_directories()
        gc.unfreeze()
        release()
        loop = asyncio.new_event_loop()
        try:
            ctx = WorkerContext(shared.config, shared.settings, rate_share=rate_share)
        except BaseException:
            loop.close()
            raise
        _serving.append((key, loop, ctx))
        # Spark's worker runs a full collection after every task: leave the context's objects
        # (driver sessions, schema metadata) out of it while they serve this run
        gc.freeze()
    if ctx.limiter.rate != (rate_share or None):  # Spark's core count changed since
        ctx.limiter = RateLimiter(rate_share)
    return loop, ctx


def _lazy_zip_directories() -> None:
    """Before each task Spark's Python worker calls ``importlib.invalidate_caches()``, and before
    3.13 Python then re-reads the whole directory of every zip archive on the path, pyspark.zip's
    once for each of its packages imported: ~0.15 s of CPU per task, more than a small range
    takes.  The archives on a worker's path do not change while it lives (Spark refuses to
    replace a file it distributed), so this worker leaves their directories as read."""
    if sys.version_info < (3, 13):
        zipimport.zipimporter.invalidate_caches = lambda self: None


def release() -> None:
    """Close the context and loop this worker keeps (if any)."""
    while _serving:
        _, loop, ctx = _serving.pop()
        try:
            ctx.close()
        finally:
            loop.close()
