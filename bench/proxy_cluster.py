"""The proxy on multi-node clusters: what token-aware forwarding saves, beside zdm-proxy, in one run.

    ZDM_SANDBOX_NODE_CPUS=1 zdm sandbox up --origin-nodes 3 --target-nodes 3 --dir .zdm/bench-cluster
    python bench/proxy_cluster.py --sandbox .zdm/bench-cluster --zdm-proxy PATH \\
        --concurrency 4,16 --cooldown-load 4 --json-out docs/proxy-cluster-results.json

Six nodes on a 2-core machine: ``ZDM_SANDBOX_NODE_CPUS=1`` sizes each node's thread pools for
one core (fewer threads runnable at once, a lower load average), and ``--cooldown-load`` lets
the load fall between cells.

Every path runs the same load generator (gocql, bench/loadgen) on the table ``zdm_bench.kv`` at
RF 1, created on both clusters (so each key has exactly one replica: a request a replica did not
coordinate costs one hop between nodes):

* ``direct``: straight on origin, gocql discovering every node and token-aware, as an
  application without a proxy;
* ``zdm``: zdm given one contact point per cluster (the sandbox's first node), token-aware
  forwarding on (its default);
* ``zdm-ta-off``: the same with ``proxy.token_aware: false``;
* ``zdm-proxy``: datastax zdm-proxy given one contact point per cluster
  (``ZDM_ORIGIN_CONTACT_POINTS``), as its users configure it.

Reported per cell: ops/s, p50 and p99; the proxy's CPU per request (every process of it); each
cluster's CPU per request (its Cassandra processes' utime+stime from /proc, which is where the
extra hop is paid); and the share of origin's requests a replica coordinated, from origin's
nodes' own counters: with RF 1, a request coordinated elsewhere makes two internode messages
(the request to its replica and the answer), counted in ``system_views.internode_outbound``;
gossip's own messages are measured in a quiet window first and taken off.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _proc import tree_cpu_seconds  # noqa: E402 - bench/ is this script's directory
from proxy import (BenchError, Clusters, Endpoint, loadgen_binary, machine, measure,  # noqa: E402
                   print_loads, run_in_tempdir, start_zdm, start_zdm_proxy, write_json)
from zdm.sandbox import node as sandbox_node  # noqa: E402
from zdm.sandbox.local import saved_settings  # noqa: E402

PATHS = ("direct", "zdm", "zdm-ta-off", "zdm-proxy")


class Nodes:
    """A multi-node sandbox's nodes: their addresses, processes and counters."""

    def __init__(self, directory: Path) -> None:
        settings = saved_settings(directory.resolve())
        if settings is None or settings.origin_nodes < 2:
            raise BenchError(f"{directory} holds no multi-node sandbox: start one with `zdm sandbox up "
                             f"--origin-nodes 3 --target-nodes 3 --dir {directory}`")
        if settings.tls or settings.auth:
            raise BenchError(f"the sandbox in {directory} uses TLS or logins; start one without")
        self.specs = settings.clusters()
        for cluster, specs in self.specs.items():
            down = [s.address for s in specs if sandbox_node.read_pid(s) is None]
            if down:
                raise BenchError(f"{cluster} nodes {', '.join(down)} are not running: "
                                 f"`zdm sandbox up --dir {directory}` starts them")
        self._sessions: dict[str, object] = {}
        self._drivers = []

    def addresses(self, cluster: str) -> list[str]:
        return [s.address for s in self.specs[cluster]]

    def port(self, cluster: str) -> int:
        return self.specs[cluster][0].native_port

    def hosts(self, cluster: str) -> str:
        return ",".join(f"{a}:{self.port(cluster)}" for a in self.addresses(cluster))

    def cpu_seconds(self, cluster: str) -> float:
        return sum(tree_cpu_seconds(sandbox_node.read_pid(s)) for s in self.specs[cluster])

    def internode_messages(self, cluster: str) -> int:
        """Messages the cluster's nodes sent each other so far (every node's outbound count)."""
        total = 0
        for address in self.addresses(cluster):
            rows = self._session(cluster, address).execute("SELECT sent_count FROM system_views.internode_outbound")
            total += sum(r[0] for r in rows)
        return total

    def _session(self, cluster: str, address: str):
        session = self._sessions.get(address)
        if session is None:
            from cassandra.cluster import Cluster as Driver
            from cassandra.policies import WhiteListRoundRobinPolicy

            driver = Driver([address], port=self.port(cluster), protocol_version=4,
                            load_balancing_policy=WhiteListRoundRobinPolicy([address]))
            self._drivers.append(driver)
            session = self._sessions[address] = driver.connect()
        return session

    def close(self) -> None:
        for driver in self._drivers:
            driver.shutdown()


def setup(binary: Path, nodes: Nodes, rows: int, protocol: int) -> None:
    """The table on both clusters, at RF 1 (bench/loadgen's setup)."""
    for cluster in ("origin", "target"):
        result = subprocess.run([str(binary), "-hosts", nodes.hosts(cluster), "-mode", "setup", "-rows", str(rows),
                                 "-proto", str(protocol), "-token-aware"], capture_output=True, text=True, check=False)
        if result.returncode:
            raise BenchError(f"setting up the table on {cluster} failed: {result.stderr.strip()}")


def gossip_rate(nodes: Nodes, seconds: float = 5.0) -> float:
    """Internode messages per second on origin with no client load (gossip, schema pulls)."""
    before, t0 = nodes.internode_messages("origin"), time.monotonic()
    time.sleep(seconds)
    return (nodes.internode_messages("origin") - before) / (time.monotonic() - t0)


def start_paths(a: argparse.Namespace, nodes: Nodes, workdir: Path, stack: contextlib.ExitStack) -> list[Endpoint]:
    clusters = Clusters(nodes.port("origin"), nodes.port("target"),
                        origin_host=nodes.addresses("origin")[0], target_host=nodes.addresses("target")[0])
    found = []
    for path in a.paths:
        if path == "direct":
            found.append(Endpoint("direct", nodes.port("origin"), None, clusters=clusters,
                                  hosts=nodes.hosts("origin"), loadgen_flags=("-token-aware",)))
        elif path == "zdm":
            found.append(stack.enter_context(start_zdm(a.zdm_port, a.workers, workdir, clusters=clusters)))
        elif path == "zdm-ta-off":
            found.append(stack.enter_context(start_zdm(a.zdm_port + 2, a.workers, workdir, ["token_aware=false"],
                                                       a.zdm_port + 3, clusters, "zdm-ta-off")))
        elif path == "zdm-proxy":
            found.append(stack.enter_context(start_zdm_proxy(a.zdm_proxy, a.zdm_proxy_port, a.zdm_proxy_port + 1,
                                                             workdir, clusters)))
    return found


def run(a: argparse.Namespace, workdir: Path) -> dict:
    binary = loadgen_binary()
    nodes = Nodes(a.sandbox)
    try:
        setup(binary, nodes, a.rows, a.protocol)
        gossip = gossip_rate(nodes)
        probes = {"origin_cpu_s": lambda: nodes.cpu_seconds("origin"),
                  "target_cpu_s": lambda: nodes.cpu_seconds("target"),
                  "origin_messages": lambda: nodes.internode_messages("origin"),
                  "t": time.monotonic}
        cells = []
        with contextlib.ExitStack() as stack:
            endpoints = start_paths(a, nodes, workdir, stack)
            print(ROW.format("load", "workload", "conc", "path", "ops/s", "p50 ms", "p99 ms", "errors",
                             "proxy µs/req", "origin µs/req", "target µs/req", "replica share"))
            for workload in a.workloads:
                for conc in a.concurrency:
                    for endpoint in endpoints:
                        cool_down(a.cooldown_load, a.cooldown_s)
                        cell = measure(binary, endpoint, workload, conc, a, probes)
                        cells.append(per_request(cell, gossip))
                        print_cell(cells[-1])
    finally:
        nodes.close()
    settings = {k: v for k, v in vars(a).items() if k not in ("json_out", "zdm_proxy")}
    return {"machine": machine(a.zdm_proxy), "settings": settings, "gossip_messages_per_s": gossip,
            "nodes": {c: nodes.addresses(c) for c in ("origin", "target")}, "cells": cells}


def cool_down(load: float | None, most_s: float) -> None:
    """Wait (up to ``most_s``) until the 1-minute load average is at most ``load``: a cell
    then starts from a quiet machine, not from the load the one before it left (the load
    average lags by about a minute, and the nodes flush and compact after writes)."""
    if load is None:
        return
    deadline = time.monotonic() + most_s
    while os.getloadavg()[0] > load and time.monotonic() < deadline:
        time.sleep(2)


def per_request(cell: dict, gossip: float) -> dict:
    """The cell with its deltas turned into figures per request."""
    deltas = cell.pop("deltas", {})
    requests = cell["ops"] + cell["errors"]
    if not requests or not deltas:
        return cell
    for cluster in ("origin", "target"):
        cell[f"{cluster}_cpu_us_per_req"] = deltas[f"{cluster}_cpu_s"] / requests * 1e6
    hops = max(0.0, deltas["origin_messages"] - gossip * deltas["t"]) / 2
    cell["replica_share"] = max(0.0, 1 - hops / requests)
    return cell


ROW = "{:>5} {:>8} {:>5} {:>11} {:>9} {:>7} {:>7} {:>7} {:>13} {:>14} {:>14} {:>14}"


def print_cell(c: dict) -> None:
    def f(key, spec):
        value = c.get(key)
        return "-" if value is None else format(value, spec)
    print(ROW.format(f"{max(c.get('load', [0])):.1f}", c["workload"], c["conc"], c["path"], f("ops_s", ",.0f"),
                     f("p50_ms", ".2f"), f("p99_ms", ".2f"), c["errors"], f("proxy_cpu_us_per_req", ".1f"),
                     f("origin_cpu_us_per_req", ".1f"), f("target_cpu_us_per_req", ".1f"),
                     f("replica_share", ".1%")), flush=True)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sandbox", type=Path, required=True, metavar="DIR",
                    help="a multi-node sandbox (`zdm sandbox up --origin-nodes 3 --target-nodes 3 --dir DIR`)")
    ap.add_argument("--zdm-proxy", metavar="PATH", help="zdm-proxy binary; needed for the zdm-proxy path")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    ap.add_argument("--workloads", default="read,write,mixed")
    ap.add_argument("--concurrency", default="4,64", help="requests in flight, comma-separated")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--protocol", type=int, default=4, choices=(4, 5))
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--conns", type=int, default=2, help="load generator connections per host")
    ap.add_argument("--write-coalesce-us", type=int, default=None)
    ap.add_argument("--workers", type=int, help="zdm's worker processes (default: one per core)")
    ap.add_argument("--zdm-port", type=int, default=14400)
    ap.add_argument("--zdm-proxy-port", type=int, default=14410)
    ap.add_argument("--cooldown-load", type=float, metavar="LOAD",
                    help="before each cell, wait until the 1-minute load average is at most LOAD")
    ap.add_argument("--cooldown-s", type=float, default=120, help="the longest such wait")
    ap.add_argument("--json-out", type=Path)
    a = ap.parse_args()
    a.paths = [p.strip() for p in a.paths.split(",") if p.strip()]
    unknown = [p for p in a.paths if p not in PATHS]
    if unknown:
        ap.error(f"unknown path(s) {', '.join(unknown)}; choose among {', '.join(PATHS)}")
    if "zdm-proxy" in a.paths and not a.zdm_proxy:
        ap.error("the zdm-proxy path needs --zdm-proxy PATH (see ../shared/anchors/README.md), "
                 "or leave it out with --paths")
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    a.concurrency = [int(c) for c in a.concurrency.split(",") if c.strip()]
    return a


def main() -> None:
    a = parse_args()
    results = run_in_tempdir("bench/proxy_cluster.py", run, a)
    print_loads(results["cells"])
    m = results["machine"]
    print(f"{m['cores']} cores ({m['cpu_model']}); origin {len(results['nodes']['origin'])} nodes, target "
          f"{len(results['nodes']['target'])}; protocol v{a.protocol}; {a.seconds:g} s per cell after "
          f"{a.warmup:g} s warm-up; gossip {results['gossip_messages_per_s']:.1f} messages/s")
    write_json(results, a.json_out)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
