"""Run range jobs in parallel: worker processes, each with asyncio concurrency inside.

Theory of operation: the coordinator (the calling process,
:func:`zdm.ranges.coordinator.run_ranges`) owns all bookkeeping; it
puts :class:`Job` s on a task queue and reads events from a result queue:
``("rows", table, n)`` while a range progresses, then ``("done", job, result)`` or
``("failed", job, error)``.  Its ``handle`` callback may answer an event with new jobs
(retries), and the run ends when no job is outstanding.  Each worker process holds
one :class:`~zdm.ranges.context.WorkerContext` and runs ``concurrency`` consumers on
one event loop; a job is ``job_fn(ctx, spec, range, params, on_rows)``, a plain async
function, so another engine runs the same function (:mod:`zdm.ranges.spark`, on Spark's
executors; :mod:`zdm.ranges.engine` picks one).  Workers exit on a None task,
and also when their coordinator has died (e.g. killed mid-run).

With ``workers=0`` the consumers run on a thread of the calling process instead.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from zdm.errors import ZdmError
from zdm.ranges.context import WorkerContext
from zdm.ranges.ring import TokenRange


@dataclass(frozen=True)
class Job:
    table: str
    rng: TokenRange
    attempt: int = 1


class WorkerFailed(ZdmError):
    """A worker process could not start or died."""


def run_jobs(config, run, specs: dict, job_fn: Callable, params: Any, jobs: Iterable[Job],
             handle: Callable[[tuple], list[Job]], *, tick: Callable[[], None] | None = None) -> None:
    jobs = list(jobs)
    if not jobs:
        return
    workers = run.workers
    if workers <= 0:
        tasks: Any = queue.Queue()
        results: Any = queue.Queue()
        thread = threading.Thread(target=_worker_main, daemon=True,
                                  args=(config, run, specs, job_fn, params, tasks, results,
                                        run.rate_limit, None))
        handles: list = [thread]
    else:
        mp = multiprocessing.get_context("spawn")
        tasks, results = mp.Queue(), mp.Queue()
        share = run.rate_limit / workers if run.rate_limit else None
        handles = [mp.Process(target=_worker_main, daemon=True, name=f"zdm-worker-{i}",
                              args=(config, run, specs, job_fn, params, tasks, results, share,
                                    os.getpid()))
                   for i in range(workers)]
    for h in handles:
        h.start()
    consumers = max(1, workers) * run.concurrency
    try:
        outstanding = 0
        for job in jobs:
            tasks.put(job)
            outstanding += 1
        while outstanding:
            try:
                event = results.get(timeout=0.5)
            except queue.Empty:
                if tick:
                    tick()
                if not any(h.is_alive() for h in handles):
                    raise WorkerFailed("every worker stopped with ranges still outstanding",
                                       hint="run again with --resume; use --debug for details")
                continue
            kind = event[0]
            if kind == "fatal":
                raise ZdmError(event[1], hint=event[2])
            if kind in ("done", "failed"):
                outstanding -= 1
            for job in handle(event):
                tasks.put(job)
                outstanding += 1
    finally:
        for _ in range(consumers):
            tasks.put(None)
        for h in handles:
            h.join(timeout=10)
            if isinstance(h, multiprocessing.process.BaseProcess) and h.is_alive():
                h.terminate()
                h.join(timeout=5)


def _worker_main(config, run, specs, job_fn, params, tasks, results, rate_share, parent_pid) -> None:
    if parent_pid is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when to stop
    asyncio.run(_worker_loop(config, run, specs, job_fn, params, tasks, results, rate_share,
                             parent_pid))


async def _worker_loop(config, run, specs, job_fn, params, tasks, results, rate_share,
                       parent_pid) -> None:
    try:
        ctx = WorkerContext(config, run, rate_share=rate_share)
    except ZdmError as exc:
        results.put(("fatal", exc.message, exc.hint))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the coordinator
        results.put(("fatal", f"worker could not start: {type(exc).__name__}: {exc}", None))
        return
    getter = ThreadPoolExecutor(max_workers=run.concurrency)
    try:
        await asyncio.gather(*(_consume(ctx, specs, job_fn, params, tasks, results, getter,
                                        parent_pid) for _ in range(run.concurrency)))
    finally:
        getter.shutdown(wait=False, cancel_futures=True)
        ctx.close()


def _next_task(tasks, parent_pid):
    while True:
        try:
            return tasks.get(timeout=0.5)
        except queue.Empty:
            if parent_pid is not None and os.getppid() != parent_pid:
                return None  # orphaned: the coordinator is gone


async def _consume(ctx, specs, job_fn, params, tasks, results, getter, parent_pid) -> None:
    loop = asyncio.get_running_loop()
    while True:
        job = await loop.run_in_executor(getter, _next_task, tasks, parent_pid)
        if job is None:
            return

        def on_rows(n: int, table: str = job.table) -> None:
            if parent_pid is not None and os.getppid() != parent_pid:
                raise SystemExit("coordinator gone")
            results.put(("rows", table, n))

        try:
            result = await job_fn(ctx, specs[job.table], job.rng, params, on_rows)
        except Exception as exc:  # noqa: BLE001 - every range failure goes to the coordinator
            results.put(("failed", job, f"{type(exc).__name__}: {exc}"))
        else:
            results.put(("done", job, result))
