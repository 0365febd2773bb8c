"""Run range jobs on the executors of a Spark cluster, through pyspark: the ``spark`` engine's driver.

Theory of operation: :func:`run_jobs` keeps the contract of :func:`zdm.ranges.pool.run_jobs`
with Spark's driver as the coordinator.  Jobs go to Spark in batches, one Spark job per batch
and one task (partition) per range, so Spark spreads the ranges over its executor cores, one
range per core at a time.  A task (:mod:`zdm.ranges.spark.executor`) runs ``job_fn`` and adds
one event to an accumulator.  Spark merges a task's accumulator update into the driver when
that task ends (the job is an action, so each finished task counts once), and the driver's
end of this accumulator puts the event on a queue the coordinating thread reads.  So
``handle`` sees each range as it finishes: checkpoints advance range by range, and the
retries ``handle`` returns go out as a new batch while the first one still runs.

Every submission of a range carries a token; the coordinator drops an event whose token is
not outstanding, so ``handle`` hears of each submission once.  A Spark job that fails as a
whole (a Python worker crashed, an executor was lost more often than ``spark.task.maxFailures``)
ends its unfinished tasks with it: the task Spark names as the cause is reported failed
(``handle`` decides about retrying it), the others go out again unchanged.
"""

from __future__ import annotations

import functools
import itertools
import queue
import re
import signal
import threading
import uuid
from typing import Any, Callable, Iterable

from zdm.errors import ZdmError
from zdm.ranges.pool import Job, WorkerFailed
from zdm.ranges.spark.context import failure_reason, spark_context
from zdm.ranges.spark.executor import Shared, range_task


class _Sink:
    """The driver's value of the events accumulator: it forwards each event to a queue."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.closed = False


def _accumulator_param():
    from pyspark.accumulators import AccumulatorParam  # lazy: pyspark is an optional dependency

    class Events(AccumulatorParam):
        """On an executor a list of events; on the driver, the :class:`_Sink` they go to."""

        def zero(self, value):
            return []

        def addInPlace(self, value1, value2):
            if isinstance(value1, _Sink):
                if not value1.closed:
                    for event in value2:
                        value1.queue.put(("range", *event))
                return value1
            value1.extend(value2)
            return value1

    return Events()


def run_jobs(config, run, specs: dict, job_fn: Callable, params: Any, jobs: Iterable[Job],
             handle: Callable[[tuple], list[Job]], *, tick: Callable[[], None] | None = None) -> None:
    jobs = list(jobs)
    if not jobs:
        return
    sc = spark_context(run.master)
    shared = Shared(uuid.uuid4().hex, config, run, specs, job_fn, params)
    sink = _Sink()
    events = sc.accumulator(sink, _accumulator_param())
    group = f"zdm-{shared.id}"
    outstanding: dict[int, Job] = {}
    tokens = itertools.count()
    threads: list[threading.Thread] = []

    def submit(batch: list[Job]) -> None:
        items = []
        for job in batch:
            token = next(tokens)
            outstanding[token] = job
            items.append((token, job))
        # the rate limit is shared evenly by the ranges Spark runs at once, one per core
        share = run.rate_limit / max(1, sc.defaultParallelism) if run.rate_limit else None
        thread = threading.Thread(target=_spark_job, daemon=True, name=f"zdm-spark-{items[0][0]}",
                                  args=(sc, group, shared, events, share, items, sink.queue))
        threads.append(thread)
        thread.start()

    def answer(event: tuple) -> None:
        more = handle(event)
        if more:
            submit(more)

    # pyspark's own SIGINT handler calls into the JVM from the signal handler, which breaks when
    # Ctrl-C lands inside another JVM call; a plain KeyboardInterrupt lets the caller record the
    # interruption, and this run's jobs are cancelled below
    restore = None
    if threading.current_thread() is threading.main_thread():
        restore = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        submit(jobs)
        while outstanding:
            try:
                event = sink.queue.get(timeout=0.5)
            except queue.Empty:
                if tick:
                    tick()
                continue
            if event[0] == "batch":
                _batch_failed(sc, event[1], event[2], outstanding, answer, submit)
                continue
            _, token, kind, value, extra = event
            job = outstanding.pop(token, None)
            if job is None:
                continue  # a late report of a submission already dealt with
            if kind == "fatal":
                raise ZdmError(value, hint=extra)
            if extra:
                answer(("rows", job.table, extra))
            answer((kind, job, value))
    finally:
        sink.closed = True
        if any(t.is_alive() for t in threads):
            # from a thread of its own: an interrupted JVM call may have spoiled this thread's
            # connection to the JVM
            canceller = threading.Thread(target=_cancel, args=(sc, group), daemon=True)
            canceller.start()
            canceller.join(timeout=30)
        for t in threads:
            t.join(timeout=30)
        if restore is not None:
            signal.signal(signal.SIGINT, restore)


def _cancel(sc, group: str) -> None:
    try:
        sc.cancelJobGroup(group)
    except Exception:  # noqa: BLE001 - the context may be gone already
        pass


def _spark_job(sc, group, shared, events, rate_share, items, results) -> None:
    """One batch as one Spark job (on a thread of its own: the job blocks until it ends)."""
    try:
        tables = sorted({job.table for _, job in items})
        sc.setJobGroup(group, f"zdm: {len(items)} range(s) of {', '.join(tables)}",
                       interruptOnCancel=True)
        task = functools.partial(range_task, shared, events, rate_share)
        sc.parallelize(items, len(items)).foreach(task)
    except Exception as exc:  # noqa: BLE001 - the coordinator decides what it means
        results.put(("batch", items, str(exc)))


def _batch_failed(sc, items, error: str, outstanding: dict, answer, submit) -> None:
    unfinished = [(i, token) for i, (token, _) in enumerate(items) if token in outstanding]
    if not unfinished:
        return
    stopped = getattr(sc, "_jsc", None) is None or sc._jsc.sc().isStopped()
    if stopped:
        raise WorkerFailed("the Spark context stopped with ranges still outstanding",
                           hint="run again with --resume; use --debug for details")
    missing = re.search(r"No module named '([\w.]+)'", error)
    if missing:
        raise ZdmError(f"Spark's executors cannot import {missing.group(1)}: their Python lacks zdm "
                       "or its dependencies",
                       hint="give the executors a Python with zdm installed (PYSPARK_PYTHON, or "
                            "spark.pyspark.python; e.g. a packed virtualenv shipped with "
                            "spark-submit --archives); on a cluster zdm ships its own code, the "
                            "dependencies must be there")
    culprit = re.search(r"Task (\d+) in stage \S+ failed", error)
    culprit_index = int(culprit.group(1)) if culprit else None
    reason = f"Spark {'task' if culprit else 'job'} failed: {failure_reason(error)}"
    again: list[Job] = []
    for index, token in unfinished:
        job = outstanding.pop(token)
        if culprit_index is None or index == culprit_index:
            answer(("failed", job, reason))
        else:
            again.append(job)  # never ran, or was cut short by the other task's failure
    if again:
        submit(again)
