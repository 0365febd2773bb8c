"""Benchmark: `zdm validate` side by side with Cassandra Data Migrator's DiffData job, in one run,
on the same tables: one per shape (single-row partitions, 10 rows per partition, wide
partitions; see bench/_common.py), copied to target by `zdm migrate` first (not timed).

    python bench/validate.py [--rows 300000 | --rows 1M,3M] [--shapes single,clustered,wide] [--workers N]
        [--cdm-jar PATH --spark-submit PATH] [--repeat N] [--json-out FILE]
    python bench/report.py MIGRATE-FILE FILE --md OUT.md --png OUT.png   # docs/benchmarks.md

Both compare every row of origin with target's, values, writetimes and TTLs; the wall time
spans the whole command (Python, JVM and Spark start-up included). A contender counts as ok
when it exits 0 and finds no difference (zdm: a clean report; CDM: every row valid). DSBulk
has no comparison of two clusters. Needs the sandbox (origin 127.0.0.1:9042, target
127.0.0.1:9043) and the Python with zdm.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import (args, settle, create_keyspace, load_shape, sessions, teardown,
                     unique_keyspace)
from _contenders import cdm_properties, publish, run_cdm, run_zdm, zdm_config


def main() -> None:
    a = args(__doc__)
    o, t = sessions(a)
    release = o.execute("SELECT release_version FROM system.local").one()[0]
    ks = unique_keyspace()
    create_keyspace(o, t, ks)
    runs: list[dict] = []
    cdm_text = None
    try:
        with tempfile.TemporaryDirectory(prefix="zdm-bench-validate-") as tmp:
            workdir = Path(tmp)
            cfg = zdm_config(workdir, a.origin_port, a.target_port)
            props = (Path(a.cdm_properties) if a.cdm_properties else
                     cdm_properties(workdir, a.origin_port, a.target_port, a.cdm_setting)) if a.cdm_jar else None
            cdm_text = props.read_text() if props else None
            for shape in a.shapes:
                loaded = 0
                for rows in a.sizes:  # the same table, grown to each size in turn
                    load_shape(o, t, ks, shape, rows, start=loaded)
                    loaded = rows
                    copy = run_zdm("migrate", cfg, ks, shape, workdir, a.workers)
                    if not copy.ok:
                        raise SystemExit(f"the copy before validating {shape} failed:\n{copy.log}")
                    for _ in range(a.repeat):
                        tools = [("zdm validate", lambda: run_zdm("validate", cfg, ks, shape, workdir, a.workers))]
                        if a.cdm_jar:
                            tools.append(("CDM DiffData", lambda: run_cdm("DiffData", a.spark_submit, a.cdm_jar,
                                                                          props, ks, shape, workdir)))
                        for name, compare in tools:
                            settle(a)
                            run = compare()
                            c = run.counters
                            agree = (c.get("clean") is True and c.get("rows") == rows) if name.startswith("zdm") \
                                else c.get("valid") == rows
                            ok = run.ok and agree
                            runs.append({"shape": shape, "tool": name, "command": run.command,
                                         "seconds": run.seconds, "rows": rows, "ok": ok,
                                         "returncode": run.returncode, "load": run.load, "counters": c,
                                         "peak_rss_mb": run.peak_rss_mb, "cpu_s": run.cpu_s, **({} if ok else {"log": run.log})})
                            print(f"{shape:<10} {rows:>11,} {name:<34} {run.seconds:7.1f} s  "
                                  f"{rows / run.seconds:9,.0f} rows/s  CPU {run.cpu_s / rows * 1e6:5.1f} µs/row  peak RSS {run.peak_rss_mb:,.0f} MB  "
                                  f"load {run.load[0]:.1f}-{run.load[1]:.1f}  {'ok' if ok else 'FAILED'}  {c}",
                                  flush=True)
                            if not ok:
                                print(run.log[-2000:])
    finally:
        teardown(o, t, ks, a.keep)
    publish("validate", a, release, runs, ks, cdm_text)


if __name__ == "__main__":
    main()
