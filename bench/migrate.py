"""Benchmark: `zdm migrate` side by side with Cassandra Data Migrator's Migrate job and DSBulk's
unload | load, in one run, on the same tables: one per shape (single-row partitions, 10 rows per
partition, wide partitions; see bench/_common.py).

    python bench/migrate.py [--rows 300000 | --rows 1M,3M] [--shapes single,clustered,wide] [--workers N]
        [--cdm-jar PATH --spark-submit PATH] [--dsbulk PATH] [--repeat N] [--json-out FILE]
    python bench/report.py FILE [VALIDATE-FILE] --md OUT.md --png OUT.png   # docs/benchmarks.md

Origin's table of each shape is filled once, every row with its own writetime and every fourth
with a TTL. Then each contender copies it to target, target's table truncated before each; the
wall time spans the whole command (Python, JVM and Spark start-up included). After each copy
target is scanned: its rows, and how many kept origin's writetime and TTL. DSBulk runs twice:
plain (cells get the load's time and no TTL) and with `-timestamp true -ttl true`, which keeps
them. Needs the sandbox (origin 127.0.0.1:9042, target 127.0.0.1:9043) and the Python with zdm.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import (args, settle, check_target, create_keyspace, load_shape, sessions,
                     teardown, unique_keyspace)
from _contenders import (LIMIT_MODES, cdm_properties, copylimit_binary, publish, run_cdm, run_dsbulk,
                         run_limit, run_zdm, zdm_config)


def contenders(a, ks: str, workdir: Path):
    """(name, run the copy of one table) in the order they run."""
    cfg = zdm_config(workdir, a.origin_port, a.target_port)
    out = [("zdm migrate", lambda table: run_zdm("migrate", cfg, ks, table, workdir, a.workers))]
    if a.cdm_jar:
        props = Path(a.cdm_properties) if a.cdm_properties else cdm_properties(workdir, a.origin_port,
                                                                               a.target_port, a.cdm_setting)
        out.append(("CDM Migrate", lambda table: run_cdm("Migrate", a.spark_submit, a.cdm_jar, props, ks,
                                                         table, workdir)))
    if a.dsbulk:
        for preserve in (False, True):
            out.append(("DSBulk" + (", writetimes and TTLs kept" if preserve else ""),
                        lambda table, p=preserve: run_dsbulk(a.dsbulk, ks, table, workdir, a.origin_port,
                                                             a.target_port, preserve=p)))
    return out


def main() -> None:
    a = args(__doc__)
    o, t = sessions(a)
    release = o.execute("SELECT release_version FROM system.local").one()[0]
    ks = unique_keyspace()
    create_keyspace(o, t, ks)
    runs: list[dict] = []
    limits: list[dict] = []
    limit = copylimit_binary() if a.limit else None
    cdm_text = None
    try:
        with tempfile.TemporaryDirectory(prefix="zdm-bench-migrate-") as tmp:
            workdir = Path(tmp)
            tools = contenders(a, ks, workdir)
            if a.cdm_jar:
                cdm_text = Path(a.cdm_properties or workdir / "cdm.properties").read_text()
            for shape in a.shapes:
                loaded_at, loaded = time.monotonic(), 0
                for rows in a.sizes:  # the same table, grown to each size in turn
                    load_shape(o, t, ks, shape, rows, start=loaded)
                    loaded = rows
                    for _ in range(a.repeat):
                        for name, copy in tools:
                            t.execute(f"TRUNCATE {ks}.{shape}", timeout=120)
                            settle(a)
                            run = copy(shape)
                            check = check_target(t, ks, shape, rows, loaded_at)
                            ok = run.ok and check["rows"] == rows
                            runs.append({"shape": shape, "tool": name, "command": run.command,
                                         "seconds": run.seconds, "rows": rows, "ok": ok,
                                         "returncode": run.returncode, "load": run.load,
                                         "counters": run.counters, "peak_rss_mb": run.peak_rss_mb,
                                         "cpu_s": run.cpu_s,
                                         "check": check, **({} if ok else {"log": run.log})})
                            print(f"{shape:<10} {rows:>11,} {name:<34} {run.seconds:7.1f} s  "
                                  f"{rows / run.seconds:9,.0f} rows/s  CPU {run.cpu_s / rows * 1e6:5.1f} µs/row  peak RSS {run.peak_rss_mb:,.0f} MB  "
                                  f"load {run.load[0]:.1f}-{run.load[1]:.1f}  {'ok' if ok else 'FAILED'}  "
                                  f"target: {check}", flush=True)
                            if not ok:
                                print(run.log[-2000:])
                    for mode in LIMIT_MODES if limit else ():
                        if mode != "scan":
                            t.execute(f"TRUNCATE {ks}.{shape}", timeout=120)
                        settle(a)
                        m = {"shape": shape, **run_limit(limit, mode, ks, shape, a.origin_port, a.target_port)}
                        if mode != "scan" and m["ok"]:
                            m["check"] = check_target(t, ks, shape, rows, loaded_at)
                            m["ok"] = m["check"]["rows"] == rows
                        limits.append(m)
                        rate = f"{m['rows_per_s']:9,.0f} rows/s" if m["ok"] else "FAILED"
                        print(f"{shape:<10} {rows:>11,} {m['tool']:<34} {rate}  load {m['load'][0]:.1f}-"
                              f"{m['load'][1]:.1f}  {m.get('error', '')}", flush=True)
    finally:
        teardown(o, t, ks, a.keep)
    publish("migrate", a, release, runs, ks, cdm_text, limits)


if __name__ == "__main__":
    main()
