"""Proxy forwarding benchmark: the same workload straight to origin and through the proxy.

For writes and the mixed workload a third path, "dual", has the client write to both
clusters itself: the proxy must land every write on both, so that is its fair baseline.

Runs against the sandbox (origin 9042, target 9043; `zdm sandbox up`), starts
`zdm proxy start` as its own process (as in production), and for each workload
(reads, writes, mixed 80/20) drives a fixed number of concurrent requests with the
DataStax driver, first directly against origin and then through the proxy,
printing throughput, p50/p99 latency and the proxy/direct ratios side by side.

    python bench/proxy.py [--seconds 10] [--concurrency 64] [--rows 10000] [--protocol 4]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import RoundRobinPolicy

KS = "zdm_bench_proxy"


def connect(port: int, protocol: int):
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=30)
    cluster = Cluster(["127.0.0.1"], port=port, protocol_version=protocol,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    return cluster, cluster.connect()


def setup(port: int, rows: int, protocol: int) -> None:
    cluster, s = connect(port, protocol)
    s.execute(f"CREATE KEYSPACE IF NOT EXISTS {KS} WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute(f"CREATE TABLE IF NOT EXISTS {KS}.kv (k int PRIMARY KEY, v text)")
    insert = s.prepare(f"INSERT INTO {KS}.kv (k, v) VALUES (?, ?)")
    from cassandra.concurrent import execute_concurrent_with_args

    execute_concurrent_with_args(s, insert, [(k, f"value-{k:08d}" * 4) for k in range(rows)],
                                 concurrency=100)
    cluster.shutdown()


def run(port: int, workload: str, seconds: float, concurrency: int, rows: int, protocol: int,
        dual_port: int | None = None) -> dict:
    """``dual_port``: the client itself writes to a second cluster too (the fair baseline
    for writes through the proxy, which must also land on both clusters)."""
    cluster, s = connect(port, protocol)
    select = s.prepare(f"SELECT v FROM {KS}.kv WHERE k = ?")
    insert = s.prepare(f"INSERT INTO {KS}.kv (k, v) VALUES (?, ?)")
    if dual_port is not None:
        cluster2, s2 = connect(dual_port, protocol)
        insert2 = s2.prepare(f"INSERT INTO {KS}.kv (k, v) VALUES (?, ?)")
    read_share = {"reads": 1.0, "writes": 0.0, "mixed": 0.8}[workload]
    rng = random.Random(7)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    done = threading.Event()
    deadline = [0.0]
    in_flight = [0]

    def issue():
        k = rng.randrange(rows)
        if rng.random() < read_share:
            future = s.execute_async(select, (k,))
        else:
            value = (k, f"value-{k:08d}" * 4)
            if dual_port is not None:
                started = time.perf_counter()
                pending = [2, True]

                def one_done(ok):
                    with lock:
                        pending[0] -= 1
                        pending[1] = pending[1] and ok
                        last = pending[0] == 0
                    if last:
                        finish(started, ok=pending[1])

                for sess, stmt in ((s, insert), (s2, insert2)):
                    sess.execute_async(stmt, value).add_callbacks(
                        lambda _r: one_done(True), lambda _e: one_done(False))
                return
            future = s.execute_async(insert, value)
        started = time.perf_counter()
        future.add_callbacks(on_done, on_error, callback_args=(started,), errback_args=(started,))

    def on_done(_result, started):
        finish(started, ok=True)

    def on_error(_exc, started):
        finish(started, ok=False)

    def finish(started, ok):
        now = time.perf_counter()
        with lock:
            if ok:
                latencies.append(now - started)
            else:
                errors[0] += 1
            if now < deadline[0]:
                issue_again = True
            else:
                in_flight[0] -= 1
                issue_again = False
                if in_flight[0] == 0:
                    done.set()
        if issue_again:
            issue()

    # warm up
    for k in range(200):
        s.execute(select, (k,))
    start = time.perf_counter()
    deadline[0] = start + seconds
    in_flight[0] = concurrency
    for _ in range(concurrency):
        issue()
    done.wait(seconds + 60)
    elapsed = time.perf_counter() - start
    cluster.shutdown()
    if dual_port is not None:
        cluster2.shutdown()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [float("nan")] * 99
    return {"ops": len(latencies) / elapsed, "p50": q[49] * 1000, "p99": q[98] * 1000, "errors": errors[0]}


def start_proxy(port: int, workdir: Path) -> subprocess.Popen:
    config = workdir / "zdm.yaml"
    config.write_text(f"proxy: {{listen_port: {port}}}\nstate_dir: {workdir}/state\n")
    proc = subprocess.Popen([sys.executable, "-m", "zdm.cli.main", "proxy", "start", "--config", str(config),
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    import socket
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"proxy failed to start:\n{proc.stdout.read().decode()}")
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("proxy did not start listening")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--protocol", type=int, default=4, choices=(4, 5))
    ap.add_argument("--proxy-port", type=int, default=14092)
    ap.add_argument("--workloads", default="reads,writes,mixed")
    ap.add_argument("--warmup", type=float, default=5, help="seconds of unmeasured load on each path "
                    "before the first workload (JIT, caches, connections)")
    args = ap.parse_args()

    setup(9042, args.rows, args.protocol)
    setup(9043, args.rows, args.protocol)
    with tempfile.TemporaryDirectory() as tmp:
        proxy = start_proxy(args.proxy_port, Path(tmp))
        try:
            import uvloop  # noqa: F401
            loop_kind = "uvloop"
        except ImportError:
            loop_kind = "asyncio"
        print(f"proxy benchmark: {args.seconds:g}s per run, {args.concurrency} concurrent requests, "
              f"protocol v{args.protocol}, {args.rows} rows, proxy event loop: {loop_kind}, "
              f"{os.cpu_count()} cores")
        print(f"{'workload':<8} {'path':<7} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
        summary = []
        try:
            if args.warmup > 0:
                for port in (9042, args.proxy_port):
                    run(port, "mixed", args.warmup, args.concurrency, args.rows, args.protocol)
            for workload in args.workloads.split(","):
                direct = run(9042, workload, args.seconds, args.concurrency, args.rows, args.protocol)
                via = run(args.proxy_port, workload, args.seconds, args.concurrency, args.rows, args.protocol)
                paths = [("direct", direct), ("proxy", via)]
                if workload != "reads":
                    dual = run(9042, workload, args.seconds, args.concurrency, args.rows, args.protocol,
                               dual_port=9043)
                    paths.insert(1, ("dual", dual))
                    summary.append((f"{workload} vs dual", via["ops"] / dual["ops"], via["p50"] / dual["p50"],
                                    via["p99"] / dual["p99"]))
                for name, r in paths:
                    print(f"{workload:<8} {name:<7} {r['ops']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
                          f"{r['errors']:>6}")
                summary.insert(len(summary) - (workload != "reads"),
                               (workload, via["ops"] / direct["ops"], via["p50"] / direct["p50"],
                                via["p99"] / direct["p99"]))
        finally:
            proxy.terminate()
            proxy.wait(30)
    print("\nproxy / baseline     throughput   p50 latency   p99 latency")
    print("(direct: the application on origin alone; dual: the application writing to both clusters itself)")
    for workload, t, p50, p99 in summary:
        print(f"  {workload:<18} {t:>10.2f}   {p50:>11.2f}   {p99:>11.2f}")


if __name__ == "__main__":
    main()
