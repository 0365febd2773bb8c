"""The commands the copy and validate benchmarks time, each the way its user runs it: `zdm` through
its CLI, Cassandra Data Migrator through spark-submit (Spark start-up included), DSBulk as
``unload | load`` through a pipe. Each run's wall time spans the whole command."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    tool: str
    command: str  # as a user would type it (paths shortened to the tool's name)
    seconds: float
    returncode: int
    load: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average before and after
    counters: dict = field(default_factory=dict)  # what the tool itself reported
    peak_rss_mb: float = 0.0  # the largest RSS its whole process tree reached
    cpu_s: float = 0.0  # user + system CPU of its whole process tree
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _shown(argv: list[str]) -> str:
    """The command as documented: executables and files by their base name."""
    shown = [Path(a).name if a.startswith(os.sep) else a for a in argv]
    return shlex.join(shown)


def timed(tool: str, argv: list[str] | str, log: Path, *, shown: str, env: dict | None = None,
          timeout: float = 1800) -> Run:
    from _proc import PeakRss

    load0 = os.getloadavg()[0]
    cpu0 = _children_cpu()
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                shell=isinstance(argv, str), executable="/bin/bash" if isinstance(argv, str) else None)
        rss = PeakRss(proc)
        try:
            proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            peak = rss.stop()
    seconds = time.monotonic() - t0
    return Run(tool, shown, seconds, proc.returncode, (load0, os.getloadavg()[0]),
               log=log.read_text(errors="replace")[-4000:], peak_rss_mb=peak / 1024,
               cpu_s=_children_cpu() - cpu0)


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended, theirs included: around one
    command, its whole tree's (zdm's worker processes, Spark's JVM, both sides of a pipe)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# --- zdm ------------------------------------------------------------------------------------

def zdm_config(workdir: Path, origin_port: int, target_port: int) -> Path:
    path = workdir / "zdm.yaml"
    path.write_text(f"origin: {{contact_points: [127.0.0.1], port: {origin_port}}}\n"
                    f"target: {{contact_points: [127.0.0.1], port: {target_port}}}\n"
                    f"state_dir: {workdir / 'state'}\n")
    return path


def run_zdm(command: str, cfg: Path, ks: str, table: str, workdir: Path, workers: int | None) -> Run:
    """`zdm migrate` or `zdm validate` of one table; its JSON report gives the counters."""
    import json

    report = workdir / f"zdm-{command}-{table}.json"
    argv = [sys.executable, "-m", "zdm.cli.main", command, "--config", str(cfg), "--keyspace", ks,
            "--table", f"{ks}.{table}", "--no-progress", "--json", str(report)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    shown = shlex.join(["zdm", command, "--config", "zdm.yaml", "--keyspace", ks, "--table",
                        f"{ks}.{table}", "--no-progress"] + (["--workers", str(workers)] if workers is not None else []))
    run = timed("zdm", argv, workdir / f"zdm-{command}-{table}.log", shown=shown)
    if report.exists():
        data = json.loads(report.read_text())
        if command == "migrate":
            run.counters = {"rows": data.get("rows_copied"), "complete": data.get("complete")}
        else:
            t = data["tables"][0] if data.get("tables") else {}
            run.counters = {"rows": t.get("rows_origin"), "differences": data.get("differences"),
                            "clean": data.get("clean")}
    return run


# --- Cassandra Data Migrator ---------------------------------------------------------------

# "Final Read Record Count: 1000000", "Final Partitions Failed: 0"
CDM_COUNTER = re.compile(r"JobCounter: Final ([A-Za-z ]+?)(?: Record Count)?: (\d+)")


def cdm_lost_work(counters: dict) -> str | None:
    """Why a CDM run is no baseline (error records, failed parts, or no counters at all: it
    did not finish), or None."""
    if not counters:
        return "no final counters in its log"
    lost = {k: counters.get(k, 0) for k in ("error", "partitions_failed")}
    return ", ".join(f"{k} {v:,}" for k, v in lost.items() if v) or None


def cdm_properties(workdir: Path, origin_port: int, target_port: int, settings: list[str] = ()) -> Path:
    """The properties CDM is run with: the sandbox's ports, 16 parts (both cores busy on a
    small table), no run tracking, then ``settings`` ("key=value") over those."""
    props = {"spark.cdm.connect.origin.host": "127.0.0.1", "spark.cdm.connect.origin.port": str(origin_port),
             "spark.cdm.connect.target.host": "127.0.0.1", "spark.cdm.connect.target.port": str(target_port),
             "spark.cdm.perfops.numParts": "16", "spark.cdm.trackRun": "false"}
    for item in settings:
        key, _, value = item.partition("=")
        props[key.strip()] = value.strip()
    path = workdir / "cdm.properties"
    path.write_text("".join(f"{k} {v}\n" for k, v in props.items()))
    return path


def spark_env(spark_submit: str) -> dict:
    """spark-submit's directory first on PATH (a pip-installed pyspark finds itself so), and
    Spark bound to loopback."""
    bindir = str(Path(spark_submit).resolve().parent)
    return {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
            "SPARK_LOCAL_IP": "127.0.0.1"}


def run_cdm(job: str, spark_submit: str, jar: str, properties: Path, ks: str, table: str,
            workdir: Path) -> Run:
    """``com.datastax.cdm.job.<job>`` (Migrate or DiffData) on ``local[2]``, as the CDM docs run it."""
    argv = [spark_submit, "--properties-file", str(properties),
            "--conf", f"spark.cdm.schema.origin.keyspaceTable={ks}.{table}",
            "--conf", "spark.ui.enabled=false", "--master", "local[2]", "--driver-memory", "2G",
            "--class", f"com.datastax.cdm.job.{job}", jar]
    log = workdir / f"cdm-{job}-{table}.log"
    run = timed(f"CDM {job}", argv, log, shown=_shown(argv), env=spark_env(spark_submit))
    text = log.read_text(errors="replace")
    run.counters = {name.lower().replace(" ", "_"): int(n) for name, n in CDM_COUNTER.findall(text)}
    if run.ok and cdm_lost_work(run.counters):
        run.returncode = -1  # it exits 0 having lost work: that is a failed run
    return run


# --- DSBulk ---------------------------------------------------------------------------------

def run_dsbulk(dsbulk: str, ks: str, table: str, workdir: Path, origin_port: int, target_port: int,
               *, preserve: bool) -> Run:
    """``dsbulk unload | dsbulk load``, streaming CSV through a pipe; ``preserve``: with
    ``-timestamp true -ttl true`` on both sides (each row's writetime and TTL go along)."""
    # java-driver 4.14 cannot parse every type (vector) another keyspace may use: read only ours
    only_ours = ["--datastax-java-driver.advanced.metadata.schema.refreshed-keyspaces", f'["{ks}"]']
    keep = ["-timestamp", "true", "-ttl", "true"] if preserve else []
    logs = workdir / "dsbulk-logs"
    unload = [dsbulk, "unload", "-h", "127.0.0.1", "-port", str(origin_port), "-k", ks, "-t", table,
              "-url", "-", *keep, "-logDir", str(logs), *only_ours]
    load = [dsbulk, "load", "-h", "127.0.0.1", "-port", str(target_port), "-k", ks, "-t", table,
            "-url", "-", "-header", "true", *keep, "-logDir", str(logs), *only_ours]
    pipeline = f"set -o pipefail; {shlex.join(unload)} | {shlex.join(load)}"
    name = "DSBulk, writetimes and TTLs kept" if preserve else "DSBulk"
    tag = "keep" if preserve else "plain"
    log = workdir / f"dsbulk-{tag}-{table}.log"
    run = timed(name, pipeline, log, shown=f"{_shown(unload)} | {_shown(load)}")
    text = log.read_text(errors="replace")
    summaries = re.findall(r"total \| failed[^\n]*\n\s*([\d,]+) \|\s*([\d,]+) \|", text)
    if summaries:  # unload's, then load's
        total, failed = summaries[-1]
        run.counters = {"loaded": int(total.replace(",", "")), "failed": int(failed.replace(",", ""))}
    return run


# --- where it ran ---------------------------------------------------------------------------

def _first_line(argv: list[str], env: dict | None = None) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    return lines[0].strip() if lines else "?"


def machine(a, release: str) -> dict:
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    info = {"cores": os.cpu_count(), "cpu_model": cpu_model, "ram_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "cassandra_driver": importlib.metadata.version("cassandra-driver"), "cassandra": release,
            "java": _first_line(["java", "-version"])}
    if a.cdm_jar:
        info["cdm"] = Path(a.cdm_jar).name
        info["spark"] = _spark_version(a.spark_submit)
    if a.dsbulk:
        info["dsbulk"] = _first_line([a.dsbulk, "--version"])
    return info


def against_limit(rates: list[dict], limits: list[dict]) -> list[dict]:
    """zdm's marginal rows/s (largest sizes) over each limit measured at the largest size."""
    out = []
    for shape in dict.fromkeys(m["shape"] for m in limits):
        zdm = [r for r in rates if r["shape"] == shape and r["tool"].startswith("zdm") and r["rows_per_s"]]
        biggest = max((m["rows"] for m in limits if m["shape"] == shape and m["ok"]), default=None)
        if not zdm or biggest is None:
            continue
        mine = zdm[-1]["rows_per_s"]
        for m in limits:
            if m["shape"] == shape and m["ok"] and m["rows"] == biggest:
                out.append({"shape": shape, "limit": m["tool"], "limit_rows_per_s": m["rows_per_s"],
                            "zdm_rows_per_s": mine, "ratio": mine / m["rows_per_s"]})
    return out


def _spark_version(spark_submit: str) -> str:
    out = subprocess.run([spark_submit, "--version"], capture_output=True, text=True, timeout=120,
                         env=spark_env(spark_submit))
    m = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    return f"Spark {m.group(1)}" if m else "?"


def publish(kind: str, a, release, runs: list[dict], keyspace: str, cdm_text, limits: list[dict] = ()) -> None:
    """Print the run's summary and, with --json-out, write its results for bench/report.py."""
    import json
    from pathlib import Path

    from _common import marginal, print_summary, summary

    lines = summary(runs)
    job = "copy" if kind == "migrate" else "validate"
    sizes = ", ".join(f"{n:,}" for n in a.sizes)
    print_summary(f"{job}, {sizes} rows per table", lines)
    against = against_limit(marginal(lines), limits)
    if limits:
        print("\n  the machine's limit (bench/copylimit, timed phase only), and zdm's marginal rows/s against it")
        for m in limits:
            rate = f"{m['rows_per_s']:>10,.0f}" if m["ok"] else f"{'FAILED':>10}"
            print(f"  {m['shape']:<10}{m['rows']:>11,} {m['tool']:<34}{rate}   load {m['load'][0]:.1f}-{m['load'][1]:.1f}")
        for r in against:
            print(f"  {r['shape']:<10} zdm {r['zdm_rows_per_s']:,.0f} rows/s is {r['ratio']:.2f} of {r['limit']}")
    if a.json_out:
        results = {"kind": kind, "machine": machine(a, release), "rows": a.rows, "sizes": a.sizes,
                   "runs": runs, "summary": lines, "marginal": marginal(lines), "keyspace": keyspace,
                   "cdm_properties": cdm_text, "limits": list(limits), "against_limit": against}
        Path(a.json_out).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results written to {a.json_out}")


# --- the machine's limit ----------------------------------------------------------------------

LIMIT_SRC = Path(__file__).resolve().parent / "copylimit"
LIMIT_MODES = {"scan": "limit: origin scan (gocql)", "ingest": "limit: target ingest (gocql)",
               "copy": "limit: copy (gocql)"}


def copylimit_binary() -> Path:
    """bench/copylimit, built once per version of its sources (scripts/go-binary)."""
    repo = LIMIT_SRC.parent.parent
    built = subprocess.run(["bash", str(repo / "scripts" / "go-binary"), str(LIMIT_SRC), "bench/copylimit"],
                           check=True, stdout=subprocess.PIPE, text=True)
    return Path(built.stdout.strip())


def run_limit(binary: Path, mode: str, ks: str, table: str, origin_port: int, target_port: int,
              *, write_conc: int = 256) -> dict:
    """One bench/copylimit measurement: its rows/s over its timed phase (connecting, and for
    ingest the read of origin into memory, not counted), the load around it."""
    import json

    argv = [str(binary), "-mode", mode, "-origin", f"127.0.0.1:{origin_port}",
            "-target", f"127.0.0.1:{target_port}", "-ks", ks, "-table", table,
            "-write-conc", str(write_conc)]
    load0 = os.getloadavg()[0]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    out = json.loads(lines[-1]) if lines else {}
    return {"tool": LIMIT_MODES[mode], "mode": mode, "command": _shown(argv).replace(str(binary.name), "copylimit"),
            "rows": out.get("rows", 0), "seconds": out.get("seconds"), "rows_per_s": out.get("rows_s"),
            "client_cpu_s": out.get("cpu_s"), "ok": proc.returncode == 0 and not out.get("errors"),
            "load": (load0, os.getloadavg()[0]),
            **({} if proc.returncode == 0 else {"error": (proc.stderr or str(out.get("first_error")))[-1000:]})}
