"""Shared set-up for the migrate/validate benchmarks (a keyspace of its own on both sandbox clusters)."""

from __future__ import annotations

import argparse
import time
import uuid

from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

from zdm.config import ClusterConfig, Config

TS = 1_700_000_000_000_000


def args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default 1,000,000)")
    p.add_argument("--baseline-rows", type=int, default=20_000,
                   help="rows the naive baseline processes (its rate is measured on these)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--origin-port", type=int, default=9042)
    p.add_argument("--target-port", type=int, default=9043)
    p.add_argument("--keep", action="store_true", help="keep the keyspace afterwards")
    return p.parse_args()


def sessions(a):
    o = Cluster(["127.0.0.1"], port=a.origin_port).connect()
    t = Cluster(["127.0.0.1"], port=a.target_port).connect()
    return o, t


def setup(o, t, rows: int) -> str:
    """A fresh keyspace with table ``data`` (10 rows per partition) filled on origin."""
    ks = "bench_" + uuid.uuid4().hex[:8]
    for s in (o, t):
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
        for name in ("data", "naive"):
            s.execute(f"CREATE TABLE {ks}.{name} (pk int, ck int, v text, n bigint, PRIMARY KEY (pk, ck))")
    ins = o.prepare(f"INSERT INTO {ks}.data (pk, ck, v, n) VALUES (?, ?, ?, ?) USING TIMESTAMP ?")
    t0 = time.monotonic()
    chunk = 20_000
    for start in range(0, rows, chunk):
        execute_concurrent_with_args(
            o, ins, [(i // 10, i % 10, f"value-{i}", i, TS + i) for i in range(start, min(rows, start + chunk))],
            concurrency=200)
    print(f"loaded {rows:,} rows into origin in {time.monotonic() - t0:.1f} s")
    return ks


def config(a) -> Config:
    import tempfile
    from pathlib import Path

    return Config(origin=ClusterConfig(port=a.origin_port), target=ClusterConfig(port=a.target_port),
                  state_dir=Path(tempfile.mkdtemp(prefix="zdm-bench-")))


def side_by_side(title: str, zdm_rows: int, zdm_s: float, base_rows: int, base_s: float, base_name: str) -> None:
    z, b = zdm_rows / zdm_s, base_rows / base_s
    print(f"\n{title}")
    print(f"  {'':<28}{'rows':>12}{'seconds':>10}{'rows/s':>12}")
    print(f"  {'zdm':<28}{zdm_rows:>12,}{zdm_s:>10.1f}{z:>12,.0f}")
    print(f"  {base_name:<28}{base_rows:>12,}{base_s:>10.1f}{b:>12,.0f}")
    print(f"  ratio zdm / baseline: {z / b:.1f}x")


def teardown(o, t, ks: str, keep: bool) -> None:
    """Drop the bench keyspace (unless --keep) and close both sessions."""
    if not keep:
        for s in (o, t):
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}")
    for s in (o, t):
        s.cluster.shutdown()
