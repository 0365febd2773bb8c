"""Proxy benchmark: one workload three ways, side by side in one run.

The paths: `direct` (straight to origin), `zdm` (`zdm proxy start`, run as its own process the
way an operator runs it) and `zdm-proxy` (DataStax's Go proxy, when --zdm-proxy gives its
binary). Both proxies write to origin and target and read from origin. For each workload (read,
write, mixed 80/20) and each concurrency (requests in flight), on every path:

- ops/s, p50/p99 latency and errors, from bench/loadgen (Go, gocql). Its statements are
  prepared, so the proxies see EXECUTE as they do from applications. It reports its own CPU
  use, to show it was not the bottleneck;
- the proxy's CPU per request: utime+stime summed over its whole process tree (/proc/PID/stat),
  over the load generator's measured window, divided by the requests completed in it.

Before any load, each proxy's memory per client connection: the RSS growth of its process tree
while --conn-memory raw connections that completed STARTUP are held, and its RSS after they close.

Needs the sandbox (origin 127.0.0.1:9042, target 127.0.0.1:9043: `zdm sandbox up`) and Go; the
load generator is built on first use into $XDG_CACHE_HOME/zdm/bench (default ~/.cache). Run it
with the Python that has zdm installed:

    python bench/proxy.py [--zdm-proxy PATH] [--seconds 10] [--warmup 3] [--concurrency 4,64,256]
                          [--workloads read,write,mixed] [--protocol 4] [--workers N]
                          [--json-out results.json]
    python bench/report.py results.json      # markdown and a chart for docs/
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
ORIGIN_PORT, TARGET_PORT = 9042, 9043
REPO = Path(__file__).resolve().parent.parent
LOADGEN_SRC = REPO / "bench" / "loadgen"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# CQL native protocol v4 frame header (spec section 2): version, flags, stream, opcode, length
HEADER = struct.Struct(">BBhBi")
STARTUP, READY = 0x01, 0x02


class BenchError(Exception):
    """Something the benchmark cannot measure around; the message says what."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    port: int
    pid: int | None  # the proxy's process, None when going straight to origin
    state_dir: Path | None = None  # zdm's: where its instance publishes its counters


def zdm_counters(endpoint: Endpoint) -> dict:
    """The counters the zdm instance last published (about once a second)."""
    if endpoint.state_dir is None:
        return {}
    records = list((endpoint.state_dir / "proxies").glob("*.json"))
    return json.loads(records[0].read_text()).get("counters", {}) if records else {}


# --- the load generator ---------------------------------------------------------------------

def loadgen_binary() -> Path:
    """bench/loadgen built into the cache directory, rebuilt when its sources are newer."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zdm" / "bench"
    binary = cache / "loadgen"
    newest = max((LOADGEN_SRC / name).stat().st_mtime for name in ("main.go", "go.mod", "go.sum"))
    if not binary.exists() or binary.stat().st_mtime < newest:
        cache.mkdir(parents=True, exist_ok=True)
        print(f"building bench/loadgen into {binary}", file=sys.stderr)
        try:
            subprocess.run(["go", "build", "-buildvcs=false", "-o", str(binary), "."], cwd=LOADGEN_SRC,
                           check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise BenchError(f"could not build bench/loadgen with Go ({e}); is `go` on PATH?") from e
    return binary


def setup_table(binary: Path, port: int, rows: int, protocol: int) -> None:
    result = subprocess.run([str(binary), "-hosts", f"{HOST}:{port}", "-mode", "setup", "-rows", str(rows),
                             "-proto", str(protocol)], capture_output=True, text=True)
    if result.returncode:
        raise BenchError(f"setting up the table on port {port} failed: {result.stderr.strip()}")


def measure(binary: Path, endpoint: Endpoint, workload: str, conc: int, a: argparse.Namespace) -> dict:
    """One cell: the load generator's result plus the proxy's CPU per request in its window."""
    cmd = [str(binary), "-hosts", f"{HOST}:{endpoint.port}", "-mode", workload, "-conc", str(conc),
           "-conns", str(a.conns), "-seconds", str(a.seconds), "-warmup", str(a.warmup),
           "-rows", str(a.rows), "-proto", str(a.protocol), "-label", endpoint.name]
    counters_before = zdm_counters(endpoint)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    window_start: list[float] = []
    messages: list[str] = []

    def watch_stderr() -> None:
        for line in proc.stderr:
            if line.strip() == "measuring":
                window_start.append(tree_cpu_seconds(endpoint.pid))
            else:
                messages.append(line)

    watcher = threading.Thread(target=watch_stderr, daemon=True)
    watcher.start()
    line = proc.stdout.readline()
    window_end = tree_cpu_seconds(endpoint.pid)
    proc.wait(timeout=60)
    watcher.join(timeout=10)
    if proc.returncode or not line:
        raise BenchError(f"loadgen on {endpoint.name} failed: {''.join(messages).strip()}")
    result = json.loads(line)
    requests = result["ops"] + result["errors"]
    if endpoint.pid is not None and requests and window_start:
        result["proxy_cpu_us_per_req"] = (window_end - window_start[0]) / requests * 1e6
    else:
        result["proxy_cpu_us_per_req"] = None
    if endpoint.state_dir is not None:  # how often a worker had not seen a PREPARE
        time.sleep(1.5)
        after = zdm_counters(endpoint)
        executes = after.get("executes", 0) - counters_before.get("executes", 0)
        unknown = after.get("unknown_prepared", 0) - counters_before.get("unknown_prepared", 0)
        result["unprepared_share"] = unknown / executes if executes else None
    return {"workload": result.pop("mode"), "path": result.pop("label"), **result}


# --- a process tree in /proc ----------------------------------------------------------------

def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [0] state, [1] ppid, [11] utime, ..."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                children.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(root: int | None) -> float:
    """utime+stime of every process in the tree, plus what their reaped children used."""
    if root is None:
        return 0.0
    ticks = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            ticks += sum(int(v) for v in _stat(pid)[11:15])
    return ticks / CLK_TCK


def tree_rss_kb(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
            total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    return total


# --- memory per connection ------------------------------------------------------------------

def open_ready_connection(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=30)
    body = struct.pack(">H", 1) + _string(b"CQL_VERSION") + _string(b"3.0.0")
    sock.sendall(HEADER.pack(4, 0, 0, STARTUP, len(body)) + body)
    return sock


def _string(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def expect_ready(sock: socket.socket) -> None:
    header = b""
    while len(header) < HEADER.size:
        chunk = sock.recv(HEADER.size - len(header))
        if not chunk:
            raise BenchError("the proxy closed a connection during STARTUP")
        header += chunk
    opcode = HEADER.unpack(header)[3]
    if opcode != READY:
        raise BenchError(f"STARTUP answered with opcode 0x{opcode:02x}, not READY")


def connection_memory(endpoint: Endpoint, count: int, rounds: int) -> dict:
    """RSS of the proxy's process tree idle, then for each of `rounds` rounds: while holding
    `count` READY connections, and after closing them.  A proxy that gives the memory of
    closed connections back has the same after-close RSS in the last round as in the first."""
    base = tree_rss_kb(endpoint.pid)
    held, after = [], []
    for _ in range(rounds):
        socks = []
        try:
            for _ in range(count):
                socks.append(open_ready_connection(endpoint.port))
            for sock in socks:
                expect_ready(sock)
            time.sleep(1.5)
            held.append(tree_rss_kb(endpoint.pid))
        finally:
            for sock in socks:
                sock.close()
        time.sleep(2.5)
        after.append(tree_rss_kb(endpoint.pid))
    return {"path": endpoint.name, "connections": count, "rounds": rounds, "base_rss_kb": base,
            "held_rss_kb": held, "after_close_rss_kb": after,
            "kb_per_conn": max(h - base for h in held) / count,
            "after_close_growth": (after[-1] - after[0]) / after[0]}


# --- the proxies ----------------------------------------------------------------------------

@contextlib.contextmanager
def running(name: str, cmd: list[str], port: int, log_path: Path, env: dict | None = None,
            state_dir: Path | None = None):
    """Start a proxy, wait until it listens, yield its Endpoint; SIGTERM and wait at the end."""
    if port_open(port):
        raise BenchError(f"port {port} is already in use: stop whatever listens there first")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{name} did not start listening on {port}:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield Endpoint(name, port, proc.pid, state_dir)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    tree = process_tree(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def port_open(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def start_zdm(port: int, workers: int | None, workdir: Path, settings: list[str] = (),
              metrics_port: int = 14091):
    """`zdm proxy start` with ``settings`` ("key=value", YAML values) under ``proxy:``."""
    extra = "".join(f", {k.strip()}: {v.strip()}" for k, _, v in (item.partition("=") for item in settings))
    proxy = f"listen_port: {port}, metrics_port: {metrics_port}" + \
        (f", workers: {workers}" if workers else "") + extra
    config = workdir / "zdm.yaml"
    config.write_text(f"proxy: {{{proxy}}}\nstate_dir: {workdir / 'state'}\n")
    cmd = [sys.executable, "-m", "zdm.cli.main", "proxy", "start", "--config", str(config),
           "--log-level", "warning"]
    return running("zdm", cmd, port, workdir / "zdm.log", state_dir=workdir / "state")


def start_zdm_proxy(binary: str, port: int, metrics_port: int, workdir: Path):
    env = {**os.environ,
           "ZDM_ORIGIN_CONTACT_POINTS": HOST, "ZDM_ORIGIN_PORT": str(ORIGIN_PORT),
           "ZDM_TARGET_CONTACT_POINTS": HOST, "ZDM_TARGET_PORT": str(TARGET_PORT),
           "ZDM_ORIGIN_USERNAME": "", "ZDM_ORIGIN_PASSWORD": "",
           "ZDM_TARGET_USERNAME": "", "ZDM_TARGET_PASSWORD": "",
           "ZDM_PROXY_LISTEN_ADDRESS": HOST, "ZDM_PROXY_LISTEN_PORT": str(port),
           "ZDM_METRICS_PORT": str(metrics_port), "ZDM_LOG_LEVEL": "WARN"}
    return running("zdm-proxy", [binary], port, workdir / "zdm-proxy.log", env=env)


# --- the machine and the report -------------------------------------------------------------

def machine(zdm_proxy: str | None) -> dict:
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    go = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
    info = {"cores": os.cpu_count(), "cpu_model": cpu_model, "ram_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "uvloop": importlib.util.find_spec("uvloop") is not None, "go": go}
    if zdm_proxy:
        info["zdm_proxy"] = subprocess.run([zdm_proxy, "--version"], capture_output=True,
                                           text=True).stdout.strip()
    return info


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


ROW = "{:<6} {:>5} {:<10} {:>9} {:>7} {:>7} {:>6} {:>12} {:>13}"


def print_cell(c: dict) -> None:
    print(ROW.format(c["workload"], c["conc"], c["path"], f"{c['ops_s']:.0f}", f"{c['p50_ms']:.2f}",
                     f"{c['p99_ms']:.2f}", c["errors"], fmt(c["proxy_cpu_us_per_req"], ".1f"),
                     f"{c['cpu_cores']:.2f}"), flush=True)


def ratios(cells: list[dict]) -> list[tuple[dict, float, float | None]]:
    """(zdm's cell, zdm / zdm-proxy ops/s, zdm / zdm-proxy CPU per request) where both ran."""
    by_key = {(c["workload"], c["conc"], c["path"]): c for c in cells}
    out = []
    for (workload, conc, path), zdm in by_key.items():
        other = by_key.get((workload, conc, "zdm-proxy"))
        if path == "zdm" and other is not None:
            a, b = zdm["proxy_cpu_us_per_req"], other["proxy_cpu_us_per_req"]
            out.append((zdm, zdm["ops_s"] / other["ops_s"], a / b if a and b else None))
    return out


def print_ratios(cells: list[dict]) -> None:
    rows = ratios(cells)
    if rows:
        print("\nzdm / zdm-proxy    ops/s   CPU/request   EXECUTEs answered UNPREPARED by zdm")
    for zdm, ops, cpu in rows:
        share = zdm.get("unprepared_share")
        print(f"  {zdm['workload']:<6} {zdm['conc']:>5} {ops:>9.2f} {fmt(cpu, '.2f'):>13}   "
              f"{fmt(None if share is None else share * 100, '.3f')}%")


def print_memory(memory: list[dict]) -> None:
    m0 = memory[0]
    print(f"\nmemory per client connection ({m0['rounds']} rounds of {m0['connections']} connections "
          "after STARTUP, opened and closed)")
    print(f"  {'path':<10} {'idle MB':>8} {'kB/conn':>8} {'after close MB, first -> last round':>36}")
    for m in memory:
        first, last = m["after_close_rss_kb"][0], m["after_close_rss_kb"][-1]
        print(f"  {m['path']:<10} {m['base_rss_kb'] / 1024:>8.1f} {m['kb_per_conn']:>8.1f} "
              f"{first / 1024:>20.1f} -> {last / 1024:.1f} ({m['after_close_growth']:+.1%})")


# --- main -----------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zdm-proxy", metavar="PATH", help="zdm-proxy binary; measured too when given")
    ap.add_argument("--workloads", default="read,write,mixed", help="comma-separated: read, write, mixed")
    ap.add_argument("--concurrency", default="4,64,256", help="requests in flight, comma-separated")
    ap.add_argument("--seconds", type=float, default=10, help="measured seconds per cell")
    ap.add_argument("--warmup", type=float, default=3, help="unmeasured seconds of load before each cell")
    ap.add_argument("--protocol", type=int, default=4, choices=(3, 4, 5))
    ap.add_argument("--rows", type=int, default=10_000, help="rows in the table on both clusters")
    ap.add_argument("--conns", type=int, default=4, help="load generator connections per endpoint")
    ap.add_argument("--workers", type=int, help="write `workers: N` under `proxy:` in zdm.yaml")
    ap.add_argument("--zdm-setting", action="append", default=[], metavar="KEY=VALUE",
                    help="another zdm proxy setting (e.g. metrics_enabled=false, "
                         "replace_cql_functions=true, secondary_write_failure=record); repeatable")
    ap.add_argument("--conn-memory", type=int, default=500, metavar="N",
                    help="connections held to measure memory per connection (0: skip)")
    ap.add_argument("--conn-rounds", type=int, default=5, metavar="R",
                    help="rounds of opening and closing them")
    ap.add_argument("--zdm-port", type=int, default=14092)
    ap.add_argument("--zdm-proxy-port", type=int, default=14200)
    ap.add_argument("--zdm-proxy-metrics-port", type=int, default=14201)
    ap.add_argument("--json-out", type=Path, metavar="PATH", help="write the results as JSON")
    a = ap.parse_args()
    a.workloads = a.workloads.split(",")
    a.concurrency = [int(c) for c in a.concurrency.split(",")]
    if not set(a.workloads) <= {"read", "write", "mixed"}:
        ap.error(f"unknown workload in {a.workloads}")
    return a


def run(a: argparse.Namespace, workdir: Path) -> dict:
    binary = loadgen_binary()
    for port in (ORIGIN_PORT, TARGET_PORT):
        setup_table(binary, port, a.rows, a.protocol)
    with contextlib.ExitStack() as stack:
        endpoints = [Endpoint("direct", ORIGIN_PORT, None),
                     stack.enter_context(start_zdm(a.zdm_port, a.workers, workdir, a.zdm_setting))]
        if a.zdm_proxy:
            endpoints.append(stack.enter_context(
                start_zdm_proxy(a.zdm_proxy, a.zdm_proxy_port, a.zdm_proxy_metrics_port, workdir)))
        proxies = [e for e in endpoints if e.pid is not None]
        memory = [connection_memory(e, a.conn_memory, a.conn_rounds) for e in proxies] \
            if a.conn_memory else []
        print(ROW.format("load", "conc", "path", "ops/s", "p50 ms", "p99 ms", "errors", "proxy µs/req",
                         "loadgen cores"))
        cells = []
        for workload in a.workloads:
            for conc in a.concurrency:
                for endpoint in endpoints:
                    cells.append(measure(binary, endpoint, workload, conc, a))
                    print_cell(cells[-1])
    settings = {k: v for k, v in vars(a).items() if k not in ("json_out", "zdm_proxy")}
    return {"machine": machine(a.zdm_proxy), "settings": settings, "cells": cells, "memory": memory}


def main() -> None:
    a = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the proxies are stopped
    with tempfile.TemporaryDirectory(prefix="zdm-bench-proxy-") as tmp:
        try:
            results = run(a, Path(tmp))
        except BenchError as e:
            sys.exit(f"bench/proxy.py: {e}")
    if results["memory"]:
        print_memory(results["memory"])
    print_ratios(results["cells"])
    m = results["machine"]
    print(f"\n{m['cores']} cores ({m['cpu_model']}), {m['ram_gib']} GiB, Python {m['python']}, "
          f"uvloop {'yes' if m['uvloop'] else 'no'}; protocol v{a.protocol}, {a.seconds:g} s per cell "
          f"after {a.warmup:g} s warm-up, loadgen {a.conns} connections")
    if a.json_out:
        a.json_out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results written to {a.json_out}")


if __name__ == "__main__":
    main()
