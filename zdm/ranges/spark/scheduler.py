"""Run range jobs on the executors of a Spark cluster, through pyspark: the ``spark`` engine.

Theory of operation: :func:`run_jobs` keeps the contract of :func:`zdm.migrate.pool.run_jobs`
with Spark's driver as the coordinator.  Jobs go to Spark in batches, one Spark job per batch
and one task (partition) per range, so Spark spreads the ranges over its executor cores, one
range per core at a time.  A task runs ``job_fn`` on its Python worker's event loop and adds
one event to an accumulator.  Spark merges a task's accumulator update into the driver when
that task ends (the job is an action, so each finished task counts once), and the driver's
end of this accumulator puts the event on a queue the coordinating thread reads.  So
``handle`` sees each range as it finishes: checkpoints advance range by range, and the
retries ``handle`` returns go out as a new batch while the first one still runs.

Every submission of a range carries a token; the coordinator drops an event whose token is
not outstanding, so ``handle`` hears of each submission once.  A Spark job that fails as a
whole (a Python worker crashed, an executor was lost more often than ``spark.task.maxFailures``)
ends its unfinished tasks with it: the task Spark names as the cause is reported failed
(``handle`` decides about retrying it), the others go out again unchanged.  Speculative
execution is refused: it would run a range twice at once, and counters would count twice.

Each Python worker process (Spark reuses them across tasks) keeps one
:class:`~zdm.migrate.context.WorkerContext` and one event loop for all its tasks, as long as
they are for the same clusters and run settings (a task for others closes them and builds its
own).  Only the coordinator writes checkpoints; results and errors travel pickled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import hashlib
import io
import itertools
import os
import pickle
import queue
import re
import signal
import socket
import sys
import tempfile
import threading
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from zdm.errors import ConfigError, ZdmError
from zdm.migrate.pool import Job, WorkerFailed

INSTALL_HINT = "install it: pip install 'zdm[spark]' (pyspark 4.1, which runs on Java 17 or 21)"
MASTER_FORMS = ("local[N] (this machine, N cores), spark://HOST:PORT (a standalone cluster), "
                "yarn, or k8s://https://HOST:PORT")
#: what a Spark context that zdm starts itself is given: no web UI, no console progress bar
#: (it would write over zdm's own progress display), only errors logged
OWN_CONTEXT = {"spark.app.name": "zdm", "spark.ui.enabled": "false",
               "spark.ui.showConsoleProgress": "false", "spark.log.level": "ERROR"}
LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
"""

_LOCAL = re.compile(r"local(\[(\*|\d+)(,\d+)?\])?")


# -- checks and the Spark context (coordinator side) ------------------------------------------

def require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ZdmError("--engine spark needs pyspark, which is not installed", hint=INSTALL_HINT) from None


def is_local(master: str) -> bool:
    """Whether ``master`` runs Spark inside this process's JVM, on this machine."""
    return _LOCAL.fullmatch(master) is not None


def check_master(master: str) -> None:
    """Refuse what is no Spark master URL, and Spark Connect (it has no RDDs to run ranges as)."""
    if master.startswith("sc://"):
        raise ConfigError(f"{master} is a Spark Connect address; the Spark engine needs a classic "
                          "master (it runs each range as a task of an RDD, which Spark Connect lacks)",
                          path="--master", hint=f"give the cluster's master URL: {MASTER_FORMS}")
    if not (is_local(master) or master == "yarn" or master.startswith("local-cluster[")
            or re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+", master)):
        raise ConfigError(f"{master!r} is not a Spark master URL", path="--master",
                          hint=f"use {MASTER_FORMS}")


def check(run) -> None:
    """The Spark engine's part of :func:`zdm.migrate.engine.check`: starts nothing."""
    require_pyspark()
    if run.master:
        check_master(run.master)
    elif not under_spark_submit():
        raise _no_master()


def _no_master() -> ConfigError:
    return ConfigError("--engine spark needs a Spark master", path="--master",
                       hint=f"add --master URL, e.g. --master local[4] to run Spark on this machine; "
                            f"{MASTER_FORMS}; or run zdm under spark-submit --master URL")


def under_spark_submit() -> bool:
    """Whether spark-submit (or pyspark's shell) runs this process: it names the master."""
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))


def probe_master(master: str, timeout_s: float = 5.0) -> None:
    """Refuse a standalone or Kubernetes master that does not accept connections (Spark itself
    would retry registering for a minute, then give up without telling the caller)."""
    if master.startswith("spark://"):
        endpoints = []
        for hostport in master[len("spark://"):].split(","):
            host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "7077")
            endpoints.append((host.strip("[]"), port))
    elif master.startswith("k8s://"):
        url = urlsplit(master[len("k8s://"):] if "://" in master[len("k8s://"):]
                       else "https://" + master[len("k8s://"):])
        endpoints = [(url.hostname or "", str(url.port or (443 if url.scheme == "https" else 80)))]
    else:
        return
    errors = []
    for host, port in endpoints:
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
            return
        except (OSError, ValueError) as exc:
            errors.append(f"{host}:{port}: {getattr(exc, 'strerror', None) or exc}")
    raise ZdmError(f"cannot reach the Spark master {master} ({'; '.join(errors)})",
                   hint="check the URL (a standalone master listens on 7077 by default), that the "
                        "master runs, and that this machine can reach it; --master local[N] runs "
                        "Spark on this machine instead")


def spark_context(master: str | None = None):
    """The active SparkContext when its master is ``master`` (or ``master`` is None), else a new one.

    A context zdm starts itself has no web UI and logs only errors; for a local master its
    Python workers run this Python (unless PYSPARK_PYTHON says otherwise) on 127.0.0.1.
    Under spark-submit the master is spark-submit's, and ``master`` must agree with it."""
    require_pyspark()
    from pyspark import SparkConf, SparkContext

    active = SparkContext._active_spark_context
    if active is not None and (master is None or active.master == master):
        return active
    if master is not None:
        check_master(master)
        probe_master(master)
    if active is not None:
        raise ZdmError(f"this process runs a Spark context already, with master {active.master}, "
                       f"and Spark allows one context per process (asked for {master})",
                       hint=f"use --master {active.master}, or stop that context first")
    under_submit = under_spark_submit()
    conf = SparkConf()
    if not under_submit:
        if master is None:
            raise _no_master()
        conf.setMaster(master)
        conf.setAll(OWN_CONTEXT.items())
        conf.set("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_log_config()}")
        if is_local(master):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if master is not None and is_local(master):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        sc = SparkContext(conf=conf)
    except Exception as exc:  # noqa: BLE001 - Java, py4j and pyspark errors alike
        raise ZdmError(f"Spark could not start{f' with master {master}' if master else ''}: "
                       f"{failure_reason(str(exc))}",
                       hint=f"pyspark runs on Java 17 or 21 (java on PATH, or JAVA_HOME); check the "
                            f"master URL: {MASTER_FORMS}") from None
    if master is not None and sc.master != master:
        raise ConfigError(f"spark-submit gave this run the master {sc.master}, zdm's --master says "
                          f"{master}", path="--master",
                          hint="name the master once: give it to spark-submit and leave out zdm's --master")
    return sc


_scratch: list[Path] = []


def _scratch_dir() -> Path:
    """A directory of this process's own for the files it gives Spark, removed at exit."""
    if not _scratch:
        import atexit
        import shutil

        _scratch.append(Path(tempfile.mkdtemp(prefix="zdm-spark-")))
        atexit.register(shutil.rmtree, _scratch[0], ignore_errors=True)
    return _scratch[0]


def _log_config() -> str:
    path = _scratch_dir() / "log4j2.properties"
    path.write_text(LOG4J2)
    return path.as_uri()


def prepare(run):
    """Start (or join) the Spark context, ship zdm to a cluster's executors, and fix the range
    count: ``run.splits``, else 8 ranges per core Spark reports (at least 32)."""
    sc = spark_context(run.master)
    if sc.getConf().get("spark.speculation", "false").strip().lower() == "true":
        raise ZdmError("this Spark context has speculative execution on (spark.speculation), which "
                       "runs a slow range a second time alongside the first: counters would be "
                       "copied twice", hint="run zdm without spark.speculation=true")
    if not is_local(sc.master):
        ship_zdm(sc)
    slots = max(1, sc.defaultParallelism)
    return dataclasses.replace(run, master=sc.master, splits=run.splits or max(32, 8 * slots))


_shipped: dict[int, str] = {}


def zdm_zip(directory: Path) -> Path:
    """This zdm package as a zip in ``directory``, named by its contents (Spark refuses two
    different files of one name)."""
    import zdm

    root = Path(zdm.__file__).resolve().parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                info = zipfile.ZipInfo(str(Path("zdm") / path.relative_to(root)), (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    data = buf.getvalue()
    target = directory / f"zdm-{hashlib.sha256(data).hexdigest()[:12]}.zip"
    target.write_bytes(data)
    return target


def ship_zdm(sc) -> None:
    """Put this zdm on the executors' Python path (their Python needs zdm's dependencies)."""
    if id(sc) in _shipped:
        return
    path = zdm_zip(_scratch_dir())
    sc.addPyFile(str(path))
    _shipped[id(sc)] = path.name


# -- running the jobs (coordinator side) ------------------------------------------------------

@dataclass(frozen=True)
class _Run:
    """What every task of one run needs; pickled into each Spark job."""

    id: str
    config: Any
    settings: Any  # RunSettings
    specs: dict
    job_fn: Callable
    params: Any


class _Sink:
    """The driver's value of the events accumulator: it forwards each event to a queue."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.closed = False


def _accumulator_param():
    from pyspark.accumulators import AccumulatorParam

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
    shared = _Run(uuid.uuid4().hex, config, run, specs, job_fn, params)
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
        task = functools.partial(_range_task, shared, events, rate_share)
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


def failure_reason(text: str) -> str:
    """One line out of a Spark failure's (Java and Python) stack traces."""
    lines = text.splitlines()
    if "Python worker exited unexpectedly (crashed)" in text:
        return "its Python worker exited unexpectedly (crashed)"
    for i, line in enumerate(lines):
        if line.strip().startswith("Traceback (most recent call last)"):
            for after in lines[i + 1:]:
                if after and not after[0].isspace():
                    return after.strip()[:300]
    for line in lines:
        if "most recent failure:" in line:
            tail = line.split("most recent failure:", 1)[1]
            tail = re.sub(r"^\s*Lost task [^:]*:\s*", "", tail)
            return tail.strip()[:300]
    for line in lines:
        if line.strip() and not line.startswith("An error occurred while calling"):
            return re.sub(r"^:\s*", "", line.strip())[:300]
    return text.strip()[:300] or "unknown error"


# -- on the executors ---------------------------------------------------------------------------

#: [(what the context was built from, event loop, WorkerContext)] this Python worker process keeps
_serving: list = []


def _range_task(shared: _Run, events, rate_share: float | None, item: tuple) -> None:
    events.add([run_range(shared, rate_share, *item)])


def run_range(shared: _Run, rate_share: float | None, token: int, job: Job) -> tuple:
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


def _worker_context(shared: _Run, rate_share: float | None):
    # a context depends on the clusters and the run settings only: a later run (the validation
    # after a copy, say) with the same ones reuses it
    key = (shared.config.origin, shared.config.target, shared.settings)
    if _serving and _serving[0][0] == key:
        _, loop, ctx = _serving[0]
    else:
        _lazy_zip_directories()
        gc.unfreeze()
        release()
        from zdm.migrate.context import WorkerContext

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
        from zdm.migrate.ratelimit import RateLimiter

        ctx.limiter = RateLimiter(rate_share)
    return loop, ctx


def _lazy_zip_directories() -> None:
    """Before each task Spark's Python worker calls ``importlib.invalidate_caches()``, and before
    3.13 Python then re-reads the whole directory of every zip archive on the path, pyspark.zip's
    once for each of its packages imported: ~0.15 s of CPU per task, more than a small range
    takes.  The archives on a worker's path do not change while it lives (Spark refuses to
    replace a file it distributed), so this worker leaves their directories as read."""
    if sys.version_info < (3, 13):
        import zipimport

        zipimport.zipimporter.invalidate_caches = lambda self: None


def release() -> None:
    """Close the context and loop this worker keeps (if any)."""
    while _serving:
        _, loop, ctx = _serving.pop()
        try:
            ctx.close()
        finally:
            loop.close()
