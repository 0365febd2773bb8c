"""``run_ranges``: the one coordinator of range work, for the copy and the validation alike.

Theory of operation: the caller has planned its tables (each a checkpoint of the ring's
ranges, some of them done by an earlier run) and gives the job function to run per range.
:func:`run_ranges` reports each table's plan (:class:`~zdm.ranges.events.Planned`), hands the
ranges not yet done to the engine that ``run`` names (:mod:`zdm.ranges.engine`: local worker
processes or Spark executors), and reads what the engine reports as each range ends:

- a finished range is checkpointed (with the rows and the detail ``record`` makes of the job's
  result) before it is reported (:class:`~zdm.ranges.events.RangeDone`), so a report never
  names a range that a resumed run would do again;
- a failed range is tried again in ``retry_splits`` smaller pieces, each one attempt further,
  until ``max_attempts`` (or a range one token wide); then it is checkpointed as failed,
  with its error, and reported as final (:class:`~zdm.ranges.events.RangeFailed`).  A failed
  range is never done, so the table is not complete and a resumed run tries it again (the
  checkpoint forgets the failure once done ranges cover it).  Both engines (local worker
  processes, Spark) report to the same ``handle``, so both checkpoint failures alike.

A ``KeyboardInterrupt`` (the operator's Ctrl-C, or an event handler raising it) stops the run
with what finished checkpointed; :func:`run_ranges` then returns True.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from zdm.ranges import engine
from zdm.ranges.context import RunSettings
from zdm.ranges.events import Planned, RangeDone, RangeFailed, Rows
from zdm.ranges.pool import Job


def retry_pieces(job: Job, *, max_attempts: int, retry_splits: int) -> list[Job]:
    """The one split-retry rule: the pieces a failed ``job`` is tried again as ([]: it is final)."""
    if job.attempt >= max_attempts or job.rng.width < 2:
        return []
    return [Job(job.table, piece, job.attempt + 1) for piece in job.rng.split(retry_splits)]


def copied_rows(result: int) -> tuple[int, None]:
    """``record`` for a job that returns its row count and has nothing more to checkpoint."""
    return result, None


def run_ranges(config, run: RunSettings, specs: Mapping[str, Any], job_fn: Callable, params: Any,
               store, checkpoints: Mapping[str, Any], *, max_attempts: int, retry_splits: int,
               on_event: Callable[[object], None],
               record: Callable[[Any], tuple[int, dict | None]] = copied_rows) -> bool:
    """Run ``job_fn(ctx, spec, range, params, on_rows)`` on every range that ``checkpoints``
    (table name -> checkpoint from ``store``) has not done; True if it was interrupted.

    ``record(result)`` is what a finished range's checkpoint keeps: (rows, detail)."""
    jobs: list[Job] = []
    for table, cp in checkpoints.items():
        remaining = cp.remaining()
        on_event(Planned(table, len(cp.plan), len(remaining), cp.rows_done))
        jobs.extend(Job(table, r) for r in remaining)

    def handle(event: tuple) -> list[Job]:
        kind = event[0]  # the engines' wire format: see zdm.ranges.engine
        if kind == "rows":
            _, table, rows = event
            on_event(Rows(table, rows))
            return []
        _, job, value = event
        if kind == "done":
            cp = checkpoints[job.table]
            rows, detail = record(value)
            store.mark_done(cp, job.rng, rows, detail)
            on_event(RangeDone(job.table, job.rng.key(), rows, cp.complete, detail))
            return []
        pieces = retry_pieces(job, max_attempts=max_attempts, retry_splits=retry_splits)
        if not pieces:  # given up: the checkpoint keeps why, for the console
            store.mark_failed(checkpoints[job.table], job.rng, value)
        on_event(RangeFailed(job.table, job.rng.key(), value, job.attempt, final=not pieces))
        return pieces

    try:
        engine.run_jobs(config, run, specs, job_fn, params, jobs, handle)
    except KeyboardInterrupt:
        return True
    return False
