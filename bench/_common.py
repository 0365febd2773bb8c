"""Shared set-up for the migrate/validate benchmarks (a keyspace of its own on both sandbox clusters).

A *shape* is one table layout filled on origin with known writetimes (and a TTL on every
fourth row, long enough not to expire during a run), so a copy that keeps them is checkable:

- ``single``: ``(k int PRIMARY KEY, v text)``, one row per partition;
- ``clustered``: ``(pk, ck, v text, n bigint)``, 10 rows per partition;
- ``wide``: ``(pk, ck, v text)``, 10,000 rows per partition.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType

from zdm.config import ClusterConfig, Config

TS = 1_700_000_000_000_000
TTL_S = 30 * 86400  # on every fourth row


@dataclass(frozen=True)
class Shape:
    name: str
    columns: str  # the CREATE TABLE body
    insert: str  # INSERT ... with the row's values, then USING TIMESTAMP ? AND TTL ?
    rows_per_partition: int
    row: Callable[[int], tuple]  # row number -> bound values (without timestamp, TTL)


SHAPES = {s.name: s for s in (
    Shape("single", "k int PRIMARY KEY, v text", "(k, v) VALUES (?, ?)", 1,
          lambda i: (i, f"value-{i}")),
    Shape("clustered", "pk int, ck int, v text, n bigint, PRIMARY KEY (pk, ck)",
          "(pk, ck, v, n) VALUES (?, ?, ?, ?)", 10, lambda i: (i // 10, i % 10, f"value-{i}", i)),
    Shape("wide", "pk int, ck int, v text, PRIMARY KEY (pk, ck)", "(pk, ck, v) VALUES (?, ?, ?)",
          10_000, lambda i: (i // 10_000, i % 10_000, f"value-{i}")),
)}


def args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=row_counts, default=[300_000], metavar="N[,N...]",
                   help="rows in each table (default 300,000); several sizes, such as 1M,3M, run each "
                        "tool at each size on the same table (grown between sizes) and give the "
                        "marginal rows/s between them, which start-up does not count in")
    p.add_argument("--shapes", default="single,clustered,wide",
                   help=f"tables to measure, comma-separated from {', '.join(SHAPES)}")
    p.add_argument("--workers", type=int, default=None, help="zdm worker processes (default: zdm's)")
    p.add_argument("--cdm-jar", help="Cassandra Data Migrator's jar: adds CDM as a baseline")
    p.add_argument("--spark-submit", default="spark-submit", help="spark-submit to run CDM with")
    p.add_argument("--cdm-properties", help="CDM properties file (default: one for the sandbox ports)")
    p.add_argument("--cdm-setting", action="append", default=[], metavar="KEY=VALUE",
                   help="a CDM property over the default file's (e.g. spark.cdm.perfops.numParts=256); repeatable")
    p.add_argument("--dsbulk", help="DSBulk's launcher (bin/dsbulk): adds DSBulk as a baseline")
    p.add_argument("--origin-port", type=int, default=9042)
    p.add_argument("--target-port", type=int, default=9043)
    p.add_argument("--repeat", type=int, default=1, help="run every contender this many times (median shown)")
    p.add_argument("--json-out", help="write the results (machine, command, timings) as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the keyspace afterwards")
    p.add_argument("--no-limit", dest="limit", action="store_false",
                   help="bench/migrate.py: do not measure the machine's limit (bench/copylimit: origin's "
                        "scan rate, target's ingest rate and a copy by gocql) at each size")
    p.add_argument("--cooldown-load", type=float, default=None, metavar="L",
                   help="before each timed run, wait (up to 5 minutes) for the 1-minute load average "
                        "to fall below L: the nodes' flushes and compactions after a load, and the "
                        "run before, otherwise weigh on the next run")
    a = p.parse_args()
    a.sizes = a.rows
    a.rows = a.sizes[-1]
    a.shapes = [s.strip() for s in a.shapes.split(",") if s.strip()]
    unknown = [s for s in a.shapes if s not in SHAPES]
    if unknown:
        p.error(f"unknown shape(s): {', '.join(unknown)}")
    return a


def row_counts(text: str) -> list[int]:
    """"300000", "1M,3M", "500k": the sizes, ascending."""
    sizes = []
    for item in text.split(","):
        item = item.strip().lower().replace("_", "")
        scale = {"k": 1_000, "m": 1_000_000}.get(item[-1:], 1)
        try:
            n = int(float(item[:-1] if scale != 1 else item) * scale)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not a row count (e.g. 300000, 1M, 500k)") from None
        if n <= 0:
            raise argparse.ArgumentTypeError(f"{item!r}: a row count must be positive")
        sizes.append(n)
    if len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError("each size once, please")
    return sorted(sizes)


def settle(a) -> None:
    """Wait for the machine to calm down (--cooldown-load), saying how long it took."""
    if a.cooldown_load is None:
        return
    t0 = time.monotonic()
    while os.getloadavg()[0] >= a.cooldown_load and time.monotonic() - t0 < 300:
        time.sleep(5)
    print(f"  (load {os.getloadavg()[0]:.1f} after waiting {time.monotonic() - t0:.0f} s)", flush=True)


def sessions(a):
    o = Cluster(["127.0.0.1"], port=a.origin_port).connect()
    t = Cluster(["127.0.0.1"], port=a.target_port).connect()
    return o, t


def unique_keyspace() -> str:
    return "bench_" + uuid.uuid4().hex[:8]


def create_keyspace(o, t, ks: str) -> None:
    for s in (o, t):
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")


def load_shape(o, t, ks: str, shape: str, rows: int, start: int = 0) -> None:
    """Create ``ks`` (if needed) and the shape's table on both clusters, and fill origin's with
    rows ``start`` to ``rows`` (``start`` > 0: the table is there, holding the rows before).

    Rows go in as unlogged batches of one partition (or 10 single-row partitions), to load fast."""
    s = SHAPES[shape]
    if start == 0:
        if ks not in o.cluster.metadata.keyspaces:
            create_keyspace(o, t, ks)
        for session in (o, t):
            session.execute(f"CREATE TABLE {ks}.{shape} ({s.columns})")
    ins = o.prepare(f"INSERT INTO {ks}.{shape} {s.insert} USING TIMESTAMP ? AND TTL ?")
    per_batch = max(10, min(s.rows_per_partition, 100))
    t0 = time.monotonic()
    batches = []
    for first in range(start, rows, per_batch):
        b = BatchStatement(BatchType.UNLOGGED)
        for i in range(first, min(rows, first + per_batch)):
            b.add(ins, (*s.row(i), TS + i, TTL_S if i % 4 == 0 else 0))
        batches.append((b, ()))
        if len(batches) == 500:
            execute_concurrent(o, batches, concurrency=32)
            batches = []
    execute_concurrent(o, batches, concurrency=32)
    print(f"loaded rows {start:,} to {rows:,} into origin {ks}.{shape} in {time.monotonic() - t0:.1f} s",
          flush=True)


def key_columns(shape: str) -> str:
    return "k" if shape == "single" else "pk, ck"


def row_number(shape: str, key: tuple) -> int:
    """The row number (see SHAPES) a key was made from."""
    return key[0] if shape == "single" else key[0] * SHAPES[shape].rows_per_partition + key[1]


def check_target(t, ks: str, shape: str, rows: int, loaded_at: float) -> dict:
    """What target holds of a copied shape: its rows, and how many kept origin's writetime and
    TTL (the TTL counted down since the load, within a few seconds, or none where origin had none)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT
    from cassandra.query import SimpleStatement, tuple_factory

    keys = key_columns(shape)
    query = SimpleStatement(f"SELECT {keys}, WRITETIME(v), TTL(v) FROM {ks}.{shape}", fetch_size=5000)
    profile = t.execution_profile_clone_update(EXEC_PROFILE_DEFAULT, row_factory=tuple_factory,
                                               request_timeout=120)
    width = len(keys.split(","))
    seen = writetimes = ttls = 0
    since = time.monotonic() - loaded_at
    for r in t.execute(query, execution_profile=profile):
        seen += 1
        if seen % 5000 == 0:  # a page: the scan itself takes seconds
            since = time.monotonic() - loaded_at
        i = row_number(shape, r[:width])
        wt, ttl = r[width], r[width + 1]
        writetimes += wt == TS + i
        ttls += (ttl is None) if i % 4 else (ttl is not None and TTL_S - since - 5 <= ttl <= TTL_S)
    return {"rows": seen, "expected_rows": rows, "writetimes_kept": writetimes, "ttls_kept": ttls}


def summary(runs: list[dict]) -> list[dict]:
    """One line per (shape, size, tool): the median wall time of its runs, rows/s, its peak
    RSS, and how many times faster zdm was (its rows/s over the tool's, on the same rows)."""
    import statistics

    lines: list[dict] = []
    for shape in dict.fromkeys(r["shape"] for r in runs):
        for rows in dict.fromkeys(r["rows"] for r in runs if r["shape"] == shape):
            mine_all = [r for r in runs if r["shape"] == shape and r["rows"] == rows]
            for tool in dict.fromkeys(r["tool"] for r in mine_all):
                mine = [r for r in mine_all if r["tool"] == tool]
                seconds = statistics.median(r["seconds"] for r in mine)
                lines.append({"shape": shape, "tool": tool, "rows": rows, "seconds": seconds,
                              "rows_per_s": rows / seconds, "runs": len(mine),
                              "peak_rss_mb": max(r.get("peak_rss_mb", 0.0) for r in mine),
                              "cpu_us_per_row": statistics.median(r.get("cpu_s", 0.0) for r in mine) / rows * 1e6,
                              "ok": all(r["ok"] for r in mine), "check": mine[-1].get("check"),
                              "load": [x for r in mine for x in r.get("load", ())]})
            zdm = next(ln for ln in lines if ln["shape"] == shape and ln["rows"] == rows
                       and ln["tool"].startswith("zdm"))
            for ln in lines:
                if ln["shape"] == shape and ln["rows"] == rows:
                    ln["zdm_speedup"] = zdm["rows_per_s"] / ln["rows_per_s"]
    return lines


def marginal(lines: list[dict]) -> list[dict]:
    """Between each two consecutive sizes of a (shape, tool): the extra rows over the extra
    seconds, which start-up (a JVM's, Spark's, the worker processes') does not count in; None
    where either size failed: a run that lost work has no rate."""
    out = []
    for shape in dict.fromkeys(ln["shape"] for ln in lines):
        for tool in dict.fromkeys(ln["tool"] for ln in lines if ln["shape"] == shape):
            sized = sorted((ln for ln in lines if ln["shape"] == shape and ln["tool"] == tool),
                           key=lambda ln: ln["rows"])
            for small, big in zip(sized, sized[1:]):
                ok = small["ok"] and big["ok"] and big["seconds"] > small["seconds"]
                out.append({"shape": shape, "tool": tool, "from_rows": small["rows"], "to_rows": big["rows"],
                            "rows_per_s": (big["rows"] - small["rows"]) / (big["seconds"] - small["seconds"])
                            if ok else None,
                            "peak_rss_mb": (small["peak_rss_mb"], big["peak_rss_mb"]), "ok": ok})
    zdm = {(m["shape"], m["from_rows"]): m for m in out if m["tool"].startswith("zdm")}
    for m in out:
        mine = zdm.get((m["shape"], m["from_rows"]))
        m["zdm_speedup"] = (mine["rows_per_s"] / m["rows_per_s"]
                            if mine and mine["rows_per_s"] and m["rows_per_s"] else None)
    return out


def print_summary(title: str, lines: list[dict]) -> None:
    print(f"\n{title}")
    head = (f"  {'shape':<10}{'rows':>11} {'tool':<34}{'seconds':>9}{'rows/s':>10}{'zdm is':>9}"
            f"{'peak RSS MB':>12}{'CPU µs/row':>11}  ok   load   on target")
    print(head)
    for ln in lines:
        check = ln.get("check") or {}
        target = (f"{check['rows']:,} rows, writetimes {check['writetimes_kept']:,}, "
                  f"TTLs {check['ttls_kept']:,}") if "rows" in check else ""
        load = f"{max(ln['load']):.1f}" if ln.get("load") else "-"
        print(f"  {ln['shape']:<10}{ln['rows']:>11,} {ln['tool']:<34}{ln['seconds']:>9.1f}{ln['rows_per_s']:>10,.0f}"
              f"{ln['zdm_speedup']:>8.2f}x{ln['peak_rss_mb']:>12.0f}{ln.get('cpu_us_per_row', 0):>11.1f}  {'yes' if ln['ok'] else 'NO ':<4} "
              f"{load:>5}  {target}")
    rates = marginal(lines)
    if rates:
        print("\n  marginal rows/s between sizes (start-up not counted); peak RSS MB at each size")
        for m in rates:
            rate = f"{m['rows_per_s']:>10,.0f}" if m["rows_per_s"] else f"{'FAILED':>10}"
            speed = f"{m['zdm_speedup']:>8.2f}x" if m["zdm_speedup"] else f"{'-':>9}"
            print(f"  {m['shape']:<10}{m['from_rows']:>11,} -> {m['to_rows']:<11,} {m['tool']:<34}{rate}{speed}"
                  f"   {m['peak_rss_mb'][0]:.0f} -> {m['peak_rss_mb'][1]:.0f}")


def config(a) -> Config:
    import tempfile
    from pathlib import Path

    return Config(origin=ClusterConfig(port=a.origin_port), target=ClusterConfig(port=a.target_port),
                  state_dir=Path(tempfile.mkdtemp(prefix="zdm-bench-")))


def teardown(o, t, ks: str, keep: bool) -> None:
    """Drop the bench keyspace (unless --keep) and close both sessions."""
    if not keep:
        for s in (o, t):
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}")
    for s in (o, t):
        s.cluster.shutdown()
