"""The Spark context the engine runs on, and zdm shipped to its executors.

Theory of operation: zdm joins the active context when its master is the one asked for (under
spark-submit it is spark-submit's), else starts its own, quiet (no web UI, no console progress
bar, only errors logged).  A context whose executors run on other machines gets this zdm as a
zip on their Python path (:func:`ship_zdm`), named by its contents, since Spark refuses two
different files of one name; the executors' Python must have zdm's dependencies.  The
range count follows the cores Spark reports.  Speculative execution is refused: it would run
a range twice at once, and counters would count twice.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import io
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import zdm
from zdm.errors import ConfigError, ZdmError
from zdm.ranges.spark.master import (MASTER_FORMS, check_master, is_local, no_master, probe_master,
                                     require_pyspark, under_spark_submit)

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


def spark_context(master: str | None = None):
    """The active SparkContext when its master is ``master`` (or ``master`` is None), else a new one.

    A context zdm starts itself has no web UI and logs only errors; for a local master its
    Python workers run this Python (unless PYSPARK_PYTHON says otherwise) on 127.0.0.1.
    Under spark-submit the master is spark-submit's, and ``master`` must agree with it."""
    require_pyspark()
    from pyspark import SparkConf, SparkContext  # lazy: pyspark is an optional dependency

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
            raise no_master()
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
