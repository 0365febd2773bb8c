"""Find the fastest Cassandra Data Migrator configuration that still completes, the baseline the
copy and validate benchmarks compare zdm with: a CDM that loses work (error records, failed
parts) is not a baseline, however fast.

    python bench/cdm_search.py --cdm-jar cassandra-data-migrator-6.0.1.jar --job Migrate \\
        --rows 1M --try 'spark.cdm.perfops.numParts=16' \\
        --try 'spark.cdm.perfops.numParts=1000,spark.cdm.perfops.ratelimit.origin=10000,spark.cdm.perfops.ratelimit.target=10000'

Each --try is one configuration, settings separated by commas over the default properties (the
sandbox's ports, 16 parts, no run tracking); they run in the order given, on one table of the
`single` shape filled once (Migrate: target truncated before each; DiffData: target holds a full
copy, made first by `zdm migrate`). A run completes when CDM exits 0, its final counters show
no error records and no failed parts, and (Migrate) target holds every row. Prints one line per
configuration, its wall time and rows/s (Spark start-up included) and what it lost, and with
--json-out writes them for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from _common import (check_target, create_keyspace, load_shape, row_counts, sessions, settle, teardown,
                     unique_keyspace)
from _contenders import cdm_lost_work, cdm_properties, run_cdm, run_zdm, zdm_config


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cdm-jar", required=True)
    p.add_argument("--spark-submit", default="spark-submit")
    p.add_argument("--job", choices=("Migrate", "DiffData"), default="Migrate")
    p.add_argument("--rows", type=row_counts, default=[1_000_000], metavar="N")
    p.add_argument("--try", dest="tries", action="append", required=True, metavar="K=V[,K=V...]",
                   help="one configuration; repeatable")
    p.add_argument("--origin-port", type=int, default=9042)
    p.add_argument("--target-port", type=int, default=9043)
    p.add_argument("--keyspace", help="use this keyspace's table `single` as it is (no load, no drop)")
    p.add_argument("--cooldown-load", type=float, default=None, metavar="L",
                   help="before each run, wait for the 1-minute load average to fall below L")
    p.add_argument("--logs", help="keep each run's CDM log in this directory (try-N.log)")
    p.add_argument("--json-out")
    a = p.parse_args()
    a.rows = a.rows[-1]
    return a


def main() -> None:
    a = parse()
    o, t = sessions(a)
    ks = a.keyspace or unique_keyspace()
    if not a.keyspace:
        create_keyspace(o, t, ks)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="zdm-bench-cdm-") as tmp:
            workdir = Path(tmp)
            loaded_at = time.monotonic()
            if not a.keyspace:
                load_shape(o, t, ks, "single", a.rows)
            if a.job == "DiffData":
                t.execute(f"TRUNCATE {ks}.single", timeout=120)
                copy = run_zdm("migrate", zdm_config(workdir, a.origin_port, a.target_port), ks, "single",
                               workdir, None)
                if not copy.ok:
                    raise SystemExit(f"the copy DiffData compares failed:\n{copy.log}")
            for i, tried in enumerate(a.tries):
                settings = [s for s in tried.split(",") if s.strip()]
                props = cdm_properties(workdir, a.origin_port, a.target_port, settings)
                if a.job == "Migrate":
                    t.execute(f"TRUNCATE {ks}.single", timeout=120)
                settle(a)
                run = run_cdm(a.job, a.spark_submit, a.cdm_jar, props, ks, "single", workdir)
                if a.logs:
                    Path(a.logs).mkdir(parents=True, exist_ok=True)
                    shutil.copy(workdir / f"cdm-{a.job}-single.log", Path(a.logs) / f"try-{i + 1}.log")
                lost = cdm_lost_work(run.counters) if run.returncode in (0, -1) else f"exit {run.returncode}"
                if a.job == "Migrate" and not lost:
                    check = check_target(t, ks, "single", a.rows, loaded_at)
                    if check["rows"] != a.rows:
                        lost = f"target holds {check['rows']:,} of {a.rows:,} rows"
                if a.job == "DiffData" and not lost and run.counters.get("valid") != a.rows:
                    lost = f"{run.counters.get('valid', 0):,} of {a.rows:,} rows found valid"
                results.append({"settings": settings, "seconds": run.seconds, "rows": a.rows,
                                "rows_per_s": a.rows / run.seconds, "completed": not lost, "lost": lost,
                                "counters": run.counters, "load": run.load, "peak_rss_mb": run.peak_rss_mb})
                print(f"{i + 1:>2}. {run.seconds:7.1f} s {a.rows / run.seconds:9,.0f} rows/s  "
                      f"load {run.load[0]:.1f}-{run.load[1]:.1f}  "
                      f"{'completed' if not lost else 'LOST WORK: ' + lost}  {' '.join(settings)}", flush=True)
    finally:
        teardown(o, t, ks, keep=bool(a.keyspace))
    done = [r for r in results if r["completed"]]
    if done:
        best = min(done, key=lambda r: r["seconds"])
        print(f"\nfastest that completed: {best['seconds']:.1f} s, {' '.join(best['settings'])}")
    else:
        print("\nno configuration completed")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"job": a.job, "rows": a.rows, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
