"""Proxy benchmark: one workload several ways, side by side in one run.

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

With --tls-sandbox DIR (a `zdm sandbox up --tls --dir DIR` pair), three more paths run against
that pair in the same run, every connection TLS: `direct-tls`, `zdm-tls` (`proxy.tls` for its
clients, each cluster's `tls` for its own connections) and `zdm-proxy-tls` (its ZDM_PROXY_TLS_*
and ZDM_ORIGIN/TARGET_TLS_* settings, the same certificates). Each TLS path is then also
compared with its plaintext counterpart: the cost of TLS. As gocql coalesces a connection's
writes (waiting up to 200 µs for more) in plaintext only, every path of such a run is measured
with coalescing off (--write-coalesce-us 0).

With --feature KEY=VALUE (repeatable), another zdm instance runs beside the default one with
that setting under `proxy:`, as path `zdm KEY=VALUE`, and is compared with it: the cost of the
feature. Workload write-now inserts with `now()` in the statement, into a table with a timeuuid
column, so that `replace_cql_functions=true` has work to do; after each write-now cell the
rows that path wrote last are read back from both clusters, to show whether origin and target
stored the same timeuuid.

With --compression none,lz4 (or snappy, v3/v4), every path runs again with the load generator
compressing its frames (`zdm+lz4`, `zdm-proxy+lz4`, `direct+lz4`): the cost of compression,
and zdm against zdm-proxy with the same compression, in one run.

Needs the sandbox (origin 127.0.0.1:9042, target 127.0.0.1:9043: `zdm sandbox up`, or the pair
--sandbox DIR names) and Go; the load generator is built on first use into
$XDG_CACHE_HOME/zdm/bench (default ~/.cache). Run it with the Python that has zdm installed:

    python bench/proxy.py [--zdm-proxy PATH] [--seconds 10] [--warmup 3] [--concurrency 4,64,256]
                          [--workloads read,write,mixed] [--protocol 4] [--workers N]
                          [--sandbox DIR] [--tls-sandbox DIR] [--feature KEY=VALUE ...]
                          [--compression none,lz4]
                          [--paths zdm,...] [--rounds N] [--json-out results.json]
    python bench/report.py results.json      # markdown and a chart for docs/
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import platform
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from _proc import process_tree, tree_cpu_seconds, tree_rss_kb

from zdm.sandbox.local import saved_settings
from zdm.sandbox.tls import SandboxTls

HOST = "127.0.0.1"
ORIGIN_PORT, TARGET_PORT = 9042, 9043
REPO = Path(__file__).resolve().parent.parent
LOADGEN_SRC = REPO / "bench" / "loadgen"
# CQL native protocol v4 frame header (spec section 2): version, flags, stream, opcode, length
HEADER = struct.Struct(">BBhBi")
STARTUP, READY = 0x01, 0x02
WORKLOADS = ("read", "write", "mixed", "write-now")
# each TLS path and the plaintext path it is compared with
TLS_PAIRS = (("direct", "direct-tls"), ("zdm", "zdm-tls"), ("zdm-proxy", "zdm-proxy-tls"))


class BenchError(Exception):
    """Something the benchmark cannot measure around; the message says what."""


@dataclass(frozen=True)
class ClientTls:
    """What a client of a TLS-only endpoint needs: the CA to trust, a certificate if it asks one."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    def loadgen_flags(self) -> list[str]:
        flags = ["-tls-ca", str(self.ca_file)]
        if self.cert_file:
            flags += ["-tls-cert", str(self.cert_file), "-tls-key", str(self.key_file)]
        return flags

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class Clusters:
    """The origin and target a path runs against: the plaintext sandbox or a TLS one."""

    origin_port: int
    target_port: int
    tls: SandboxTls | None = None
    client_auth: tuple[str, ...] = ()  # the clusters whose nodes require a client certificate
    #: the node each cluster is reached at (one contact point): a multi-node sandbox's first
    origin_host: str = HOST
    target_host: str = HOST

    def node_tls(self, cluster: str) -> ClientTls | None:
        """How the load generator and the proxies reach `cluster`'s node."""
        if self.tls is None:
            return None
        if cluster in self.client_auth:
            return ClientTls(self.tls.ca_file, self.tls.client_cert_file, self.tls.client_key_file)
        return ClientTls(self.tls.ca_file)

    def port(self, cluster: str) -> int:
        return self.origin_port if cluster == "origin" else self.target_port

    def host(self, cluster: str) -> str:
        return self.origin_host if cluster == "origin" else self.target_host


PLAINTEXT = Clusters(ORIGIN_PORT, TARGET_PORT)


def sandbox_clusters(directory: Path, tls: bool) -> Clusters:
    """The pair `zdm sandbox up [--tls] --dir DIRECTORY` started, as its sandbox.json records it."""
    settings = saved_settings(directory.resolve())
    if settings is None or settings.tls != tls:
        raise BenchError(f"{directory} holds no {'TLS' if tls else 'plaintext'} sandbox: start one with "
                         f"`zdm sandbox up{' --tls' if tls else ''} --dir {directory} --origin-port P "
                         "--target-port P+1` (and internode ports of its own)")
    if settings.auth:
        raise BenchError(f"the sandbox in {directory} requires logins; the benchmark runs without "
                         "(start one without --auth)")
    return Clusters(settings.origin_port, settings.target_port, SandboxTls(settings.tls_dir) if tls else None,
                    tuple(settings.tls_client_auth))


@dataclass(frozen=True)
class Endpoint:
    name: str
    port: int
    pid: int | None  # the proxy's process, None when going straight to origin
    state_dir: Path | None = None  # zdm's: where its instance publishes its counters
    clusters: Clusters = PLAINTEXT
    tls: ClientTls | None = None  # how clients reach it, None for plaintext
    feature: str | None = None  # a zdm instance with this setting ("key=value") beside the defaults
    compression: str = "none"  # the load generator's frame compression on this path
    #: the load generator's -hosts when not HOST:port (a multi-node cluster reached directly)
    hosts: str | None = None
    #: more load generator flags on this path (e.g. -token-aware)
    loadgen_flags: tuple[str, ...] = ()


def zdm_counters(endpoint: Endpoint) -> dict:
    """The counters the zdm instance last published (about once a second)."""
    if endpoint.state_dir is None:
        return {}
    records = list((endpoint.state_dir / "proxies").glob("*.json"))
    return json.loads(records[0].read_text()).get("counters", {}) if records else {}


# --- the load generator ---------------------------------------------------------------------

def loadgen_binary() -> Path:
    """bench/loadgen built into the cache directory, one binary per version of its sources (so
    checkouts of different versions never run each other's build): scripts/go-binary, which
    builds the driver matrix's Go program too."""
    try:
        built = subprocess.run(["bash", str(REPO / "scripts" / "go-binary"), str(LOADGEN_SRC), "bench/loadgen"],
                               check=True, stdout=subprocess.PIPE, text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise BenchError(f"could not build bench/loadgen with Go ({e}); is Go installed?") from e
    return Path(built.stdout.strip())


def tls_flags(tls: ClientTls | None) -> list[str]:
    return tls.loadgen_flags() if tls else []


def setup_table(binary: Path, port: int, rows: int, protocol: int, tls: ClientTls | None = None) -> None:
    result = subprocess.run([str(binary), "-hosts", f"{HOST}:{port}", "-mode", "setup", "-rows", str(rows),
                             "-proto", str(protocol), *tls_flags(tls)], capture_output=True, text=True, check=False)
    if result.returncode:
        raise BenchError(f"setting up the table on port {port} failed: {result.stderr.strip()}")


def same_timeuuid_share(binary: Path, endpoint: Endpoint, protocol: int) -> float | None:
    """Of the kv_now rows `endpoint` wrote last (origin's copy carries its label), the share
    whose timeuuid target stored too: 1 when the proxy replaced now() with one value."""
    dumps = {}
    for cluster in ("origin", "target"):
        c = endpoint.clusters
        result = subprocess.run([str(binary), "-hosts", f"{HOST}:{c.port(cluster)}", "-mode", "dump-now",
                                 "-proto", str(protocol), *tls_flags(c.node_tls(cluster))],
                                capture_output=True, text=True, check=False)
        if result.returncode:
            raise BenchError(f"reading kv_now on {cluster} failed: {result.stderr.strip()}")
        dumps[cluster] = json.loads(result.stdout)["rows"]
    mine = [k for k, (_, label) in dumps["origin"].items() if label == endpoint.name]
    same = sum(1 for k in mine if dumps["target"].get(k) == dumps["origin"][k])
    return same / len(mine) if mine else None


def measure(binary: Path, endpoint: Endpoint, workload: str, conc: int, a: argparse.Namespace,
            probes: dict | None = None) -> dict:
    """One cell: the load generator's result plus the proxy's CPU per request in its window;
    each of ``probes`` (name -> a function returning a number, e.g. the clusters' CPU
    seconds) is read as the window opens and as it closes: its change is ``deltas[name]``."""
    probes = probes or {}
    opened: dict[str, float] = {}
    cmd = [str(binary), "-hosts", endpoint.hosts or f"{HOST}:{endpoint.port}", "-mode", workload, "-conc", str(conc),
           "-conns", str(a.conns), "-seconds", str(a.seconds), "-warmup", str(a.warmup),
           "-rows", str(a.rows), "-proto", str(a.protocol), "-label", endpoint.name, *tls_flags(endpoint.tls),
           "-compression", endpoint.compression, *endpoint.loadgen_flags]
    if a.write_coalesce_us is not None:
        cmd += ["-write-coalesce-us", str(a.write_coalesce_us)]
    counters_before = zdm_counters(endpoint)
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    window_start: list[float] = []
    messages: list[str] = []

    def watch_stderr() -> None:
        for line in proc.stderr:
            if line.strip() == "measuring":
                window_start.append(tree_cpu_seconds(endpoint.pid))
                opened.update({name: probe() for name, probe in probes.items()})
            else:
                messages.append(line)

    watcher = threading.Thread(target=watch_stderr, daemon=True)
    watcher.start()
    line = proc.stdout.readline()
    window_end = tree_cpu_seconds(endpoint.pid)
    deltas = {name: probe() - opened[name] for name, probe in probes.items() if name in opened}
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
    if deltas:
        result["deltas"] = deltas
    if endpoint.state_dir is not None:  # how often a worker had not seen a PREPARE
        time.sleep(1.5)
        after = zdm_counters(endpoint)
        executes = after.get("executes", 0) - counters_before.get("executes", 0)
        unknown = after.get("unknown_prepared", 0) - counters_before.get("unknown_prepared", 0)
        result["unprepared_share"] = unknown / executes if executes else None
    if workload == "write-now" and endpoint.pid is not None:  # a proxy: it wrote both clusters
        result["same_timeuuid_share"] = same_timeuuid_share(binary, endpoint, a.protocol)
    if endpoint.feature is not None:
        result["feature"] = endpoint.feature
    result["load"] = [load_before, os.getloadavg()[0]]  # the machine's 1-minute load, around the cell
    return {"workload": result.pop("mode"), "path": result.pop("label"), **result}


def median_cell(rounds: list[dict]) -> dict:
    """One cell from several rounds of it: each figure the median of its rounds, errors summed;
    the rounds themselves kept under "rounds"."""
    if len(rounds) == 1:
        return rounds[0]
    cell = dict(rounds[0])
    for key, value in rounds[0].items():
        if key == "errors":
            cell[key] = sum(r[key] for r in rounds)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("conc", "conns", "proto"):
            values = [r[key] for r in rounds if r.get(key) is not None]
            cell[key] = statistics.median(values) if values else None
    cell["first_error"] = next((r["first_error"] for r in rounds if r["first_error"]), None)
    cell["rounds"] = rounds
    return cell


# --- a process tree in /proc ----------------------------------------------------------------

# --- memory per connection ------------------------------------------------------------------

def open_ready_connection(port: int, tls: ssl.SSLContext | None = None) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=30)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=HOST)
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
    context = endpoint.tls.context() if endpoint.tls else None
    held, after = [], []
    for _ in range(rounds):
        socks = []
        try:
            for _ in range(count):
                socks.append(open_ready_connection(endpoint.port, context))
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
            state_dir: Path | None = None, clusters: Clusters = PLAINTEXT, feature: str | None = None):
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
        tls = ClientTls(clusters.tls.ca_file) if clusters.tls else None  # the proxies' certificate
        yield Endpoint(name, port, proc.pid, state_dir, clusters, tls, feature)
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


def proxy_settings(items: list[str]) -> dict:
    """"key=value" items (YAML values) as the mapping they make under ``proxy:``."""
    return {k.strip(): yaml.safe_load(v) for k, _, v in (item.partition("=") for item in items)}


def start_zdm(port: int, workers: int | None, workdir: Path, settings: list[str] = (),
              metrics_port: int = 14091, clusters: Clusters = PLAINTEXT, name: str = "zdm",
              feature: str | None = None):
    """`zdm proxy start` with ``settings`` ("key=value", YAML values) under ``proxy:``, in a
    directory of its own under ``workdir``; with TLS clusters, TLS on both legs with the
    sandbox's certificates, the settings `zdm init --sandbox` writes."""
    workdir = workdir / name.replace(" ", "_").replace("=", "-")
    workdir.mkdir()
    proxy = {"listen_port": port, "metrics_port": metrics_port, **({"workers": workers} if workers else {})}
    if clusters.tls:
        proxy["tls"] = {"cert_file": str(clusters.tls.proxy_cert_file),
                        "key_file": str(clusters.tls.proxy_key_file), "ca_file": str(clusters.tls.ca_file)}
    proxy.update(proxy_settings([*settings, *([feature] if feature else [])]))
    config = {"proxy": proxy, "state_dir": str(workdir / "state")}
    for cluster in ("origin", "target"):
        tls = clusters.node_tls(cluster)
        config[cluster] = {"contact_points": [clusters.host(cluster)], "port": clusters.port(cluster)}
        if tls:
            config[cluster]["tls"] = {k: str(v) for k, v in vars(tls).items() if v is not None}
    (workdir / "zdm.yaml").write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
    cmd = [sys.executable, "-m", "zdm.cli.main", "proxy", "start", "--config", str(workdir / "zdm.yaml"),
           "--log-level", "warning"]
    return running(name, cmd, port, workdir / "zdm.log", state_dir=workdir / "state", clusters=clusters,
                   feature=feature)


def start_zdm_proxy(binary: str, port: int, metrics_port: int, workdir: Path,
                    clusters: Clusters = PLAINTEXT, name: str = "zdm-proxy"):
    env = {**os.environ,
           "ZDM_ORIGIN_CONTACT_POINTS": clusters.origin_host, "ZDM_ORIGIN_PORT": str(clusters.origin_port),
           "ZDM_TARGET_CONTACT_POINTS": clusters.target_host, "ZDM_TARGET_PORT": str(clusters.target_port),
           "ZDM_ORIGIN_USERNAME": "", "ZDM_ORIGIN_PASSWORD": "",
           "ZDM_TARGET_USERNAME": "", "ZDM_TARGET_PASSWORD": "",
           "ZDM_PROXY_LISTEN_ADDRESS": HOST, "ZDM_PROXY_LISTEN_PORT": str(port),
           "ZDM_METRICS_PORT": str(metrics_port), "ZDM_LOG_LEVEL": "WARN"}
    if clusters.tls:  # its proxy_tls_* and origin_/target_tls_* settings (proxy/pkg/config/config.go)
        env.update({"ZDM_PROXY_TLS_CA_PATH": str(clusters.tls.ca_file),
                    "ZDM_PROXY_TLS_CERT_PATH": str(clusters.tls.proxy_cert_file),
                    "ZDM_PROXY_TLS_KEY_PATH": str(clusters.tls.proxy_key_file)})
        for cluster in ("origin", "target"):
            tls = clusters.node_tls(cluster)
            prefix = f"ZDM_{cluster.upper()}_TLS_"
            env[prefix + "SERVER_CA_PATH"] = str(tls.ca_file)
            if tls.cert_file:
                env[prefix + "CLIENT_CERT_PATH"] = str(tls.cert_file)
                env[prefix + "CLIENT_KEY_PATH"] = str(tls.key_file)
    return running(name, [binary], port, workdir / f"{name}.log", env=env, clusters=clusters)


# --- the machine and the report -------------------------------------------------------------

def machine(zdm_proxy: str | None) -> dict:
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    go = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
    info = {"cores": os.cpu_count(), "cpu_model": cpu_model, "ram_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "uvloop": importlib.util.find_spec("uvloop") is not None, "go": go,
            "openssl": ssl.OPENSSL_VERSION}
    if zdm_proxy:
        info["zdm_proxy"] = subprocess.run([zdm_proxy, "--version"], capture_output=True,
                                           text=True).stdout.strip()
    return info


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def row_format(workloads: list[str], paths: list[str]) -> str:
    """The cell line, its first columns as wide as the longest workload (6 at least) and path
    name (10 at least)."""
    load, path = max([6, *map(len, workloads)]), max([10, *map(len, paths)])
    return f"{{:<{load}}} {{:>5}} {{:<{path}}} {{:>9}} {{:>7}} {{:>7}} {{:>6}} {{:>12}} {{:>13}}"


def cell_fields(c: dict) -> list:
    return [c["workload"], c["conc"], c["path"], f"{c['ops_s']:.0f}", f"{c['p50_ms']:.2f}", f"{c['p99_ms']:.2f}",
            c["errors"], fmt(c["proxy_cpu_us_per_req"], ".1f"), f"{c['cpu_cores']:.2f}"]


def print_cell(c: dict, row: str) -> None:
    print(row.format(*cell_fields(c)), flush=True)


def pairs(cells: list[dict], path: str, other: str) -> list[tuple[dict, dict, float, float | None]]:
    """(path's cell, other's cell, ops/s ratio path / other, CPU per request ratio) for each
    workload and concurrency where both ran."""
    by_key = {(c["workload"], c["conc"], c["path"]): c for c in cells}
    out = []
    for (workload, conc, name), mine in by_key.items():
        theirs = by_key.get((workload, conc, other))
        if name == path and theirs is not None:
            a, b = mine["proxy_cpu_us_per_req"], theirs["proxy_cpu_us_per_req"]
            out.append((mine, theirs, mine["ops_s"] / theirs["ops_s"], a / b if a and b else None))
    return out


def ratios(cells: list[dict], path: str = "zdm", other: str = "zdm-proxy") -> list[tuple[dict, float, float | None]]:
    """(zdm's cell, zdm / zdm-proxy ops/s, zdm / zdm-proxy CPU per request) where both ran."""
    return [(mine, ops, cpu) for mine, _, ops, cpu in pairs(cells, path, other)]


def tls_costs(cells: list[dict]) -> list[tuple[str, dict, dict, float, float | None]]:
    """(plaintext path, its cell, the TLS path's cell, ops/s TLS / plaintext, CPU per request
    TLS / plaintext) for each path measured both ways."""
    return [(plain, p, t, ops, cpu) for plain, tls in TLS_PAIRS for t, p, ops, cpu in pairs(cells, tls, plain)]


def feature_costs(cells: list[dict]) -> list[tuple[dict, dict, float, float | None]]:
    """(the feature's cell, zdm's with the defaults, ops/s ratio, CPU per request difference in µs)."""
    out = []
    for feature in dict.fromkeys(c["path"] for c in cells if c.get("feature")):
        for mine, base, ops, _ in pairs(cells, feature, "zdm"):
            a, b = mine["proxy_cpu_us_per_req"], base["proxy_cpu_us_per_req"]
            out.append((mine, base, ops, a - b if a is not None and b is not None else None))
    return out


#: (proxy path, its direct path, the path it is compared with) for the added latency
ADDED_LATENCY = (("zdm", "direct", "zdm-proxy"), ("zdm-tls", "direct-tls", "zdm-proxy-tls"))


def added_latency(cells: list[dict]) -> list[tuple[dict, dict, dict, float, float, float, float]]:
    """(zdm's cell, zdm-proxy's, direct's, zdm's added p50 and p99 over direct in ms,
    zdm-proxy's added p50 and p99) for each workload and concurrency where the three ran: what
    a request pays for going through a proxy, plaintext and TLS."""
    by_key = {(c["workload"], c["conc"], c["path"]): c for c in cells}
    out = []
    for path, direct, other in ADDED_LATENCY:
        for (workload, conc, name), mine in by_key.items():
            base, theirs = by_key.get((workload, conc, direct)), by_key.get((workload, conc, other))
            if name == path and base is not None and theirs is not None:
                out.append((mine, theirs, base, mine["p50_ms"] - base["p50_ms"], mine["p99_ms"] - base["p99_ms"],
                            theirs["p50_ms"] - base["p50_ms"], theirs["p99_ms"] - base["p99_ms"]))
    return out


def print_added_latency(cells: list[dict]) -> None:
    rows = added_latency(cells)
    if rows:
        print("\nadded over direct, ms       p50: zdm  zdm-proxy    p99: zdm  zdm-proxy   ops/s zdm / zdm-proxy")
    for mine, theirs, _, z50, z99, p50, p99 in rows:
        print(f"  {mine['path']:<9} {mine['workload']:<9} {mine['conc']:>5} {z50:>9.2f} {p50:>10.2f} "
              f"{z99:>11.2f} {p99:>10.2f}   {mine['ops_s'] / theirs['ops_s']:>6.2f}")


def share_pct(value: float | None) -> str:
    return fmt(None if value is None else value * 100, ".3f") + "%"


def print_ratios(cells: list[dict], path: str = "zdm", other: str = "zdm-proxy") -> None:
    rows = ratios(cells, path, other)
    if rows:
        title = f"{path} / {other}"
        print(f"\n{title:<{max(18, len(title) + 1)}} ops/s   CPU/request   EXECUTEs answered UNPREPARED by zdm")
    width = max([6, *(len(c["workload"]) for c in cells)])
    for zdm, ops, cpu in rows:
        print(f"  {zdm['workload']:<{width}} {zdm['conc']:>5} {ops:>9.2f} {fmt(cpu, '.2f'):>13}   "
              f"{share_pct(zdm.get('unprepared_share'))}")


def print_tls_costs(cells: list[dict]) -> None:
    rows = tls_costs(cells)
    if rows:
        print("\nTLS / plaintext          ops/s   CPU/request   CPU µs/request, plaintext -> TLS")
    for plain, p, t, ops, cpu in rows:
        print(f"  {plain:<10} {t['workload']:<9} {t['conc']:>5} {ops:>6.2f} {fmt(cpu, '.2f'):>13}   "
              f"{fmt(p['proxy_cpu_us_per_req'], '.1f')} -> {fmt(t['proxy_cpu_us_per_req'], '.1f')}")


def print_feature_costs(cells: list[dict]) -> None:
    rows = feature_costs(cells)
    if rows:
        print("\nfeature / defaults                        ops/s   CPU µs/request (defaults)   "
              "same timeuuid on both clusters")
    for mine, base, ops, delta in rows:
        same = "" if mine["workload"] != "write-now" else \
            f"{share_pct(mine.get('same_timeuuid_share'))} (defaults: {share_pct(base.get('same_timeuuid_share'))})"
        print(f"  {mine['feature']:<30} {mine['workload']:<9} {mine['conc']:>5} {ops:>6.2f} "
              f"{fmt(delta, '+.1f'):>8} ({fmt(base['proxy_cpu_us_per_req'], '.1f')})   {same}")


def print_memory(memory: list[dict]) -> None:
    m0 = memory[0]
    print(f"\nmemory per client connection ({m0['rounds']} rounds of {m0['connections']} connections "
          "after STARTUP, opened and closed)")
    width = max([10, *(len(m["path"]) for m in memory)])
    print(f"  {'path':<{width}} {'idle MB':>8} {'kB/conn':>8} {'after close MB, first -> last round':>36}")
    for m in memory:
        first, last = m["after_close_rss_kb"][0], m["after_close_rss_kb"][-1]
        print(f"  {m['path']:<{width}} {m['base_rss_kb'] / 1024:>8.1f} {m['kb_per_conn']:>8.1f} "
              f"{first / 1024:>20.1f} -> {last / 1024:.1f} ({m['after_close_growth']:+.1%})")


# --- main -----------------------------------------------------------------------------------

def _compressions(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - {"none", "lz4", "snappy"})
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown compression {', '.join(unknown) or '(none given)'}; "
                                         "choose from none, lz4, snappy")
    return names


def with_compressions(endpoints: list[Endpoint], compressions: list[str]) -> list[Endpoint]:
    """Each path once per compression: ``zdm``, ``zdm+lz4``... (the same process, another
    load generator setting)."""
    return [e if c == "none" else dataclasses.replace(e, name=f"{e.name}+{c}", compression=c)
            for c in compressions for e in endpoints]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zdm-proxy", metavar="PATH", help="zdm-proxy binary; measured too when given")
    ap.add_argument("--workloads", default="read,write,mixed",
                    help="comma-separated: read, write, mixed, write-now (INSERT with now())")
    ap.add_argument("--concurrency", default="1,4,64,256", help="requests in flight, comma-separated")
    ap.add_argument("--seconds", type=float, default=10, help="measured seconds per cell")
    ap.add_argument("--warmup", type=float, default=3, help="unmeasured seconds of load before each cell")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each cell this many times, every path in turn each round (each round "
                         "beginning with another path), and report "
                         "each figure's median (on a shared machine, so that a burst of other load "
                         "does not decide a ratio)")
    ap.add_argument("--protocol", type=int, default=4, choices=(3, 4, 5))
    ap.add_argument("--compression", default="none", type=_compressions, metavar="NAMES",
                    help="comma-separated frame compressions of the load generator (none, lz4, snappy: "
                         "v3/v4 only); each one other than none adds every path again as PATH+NAME")
    ap.add_argument("--rows", type=int, default=10_000, help="rows in the table on both clusters")
    ap.add_argument("--conns", type=int, default=4, help="load generator connections per endpoint")
    ap.add_argument("--write-coalesce-us", type=int, metavar="US",
                    help="the load generator's write coalescing wait (gocql's default: 200 µs; 0: off). "
                         "gocql never coalesces over TLS, so --tls-sandbox makes it 0 for every path")
    ap.add_argument("--workers", type=int, help="write `workers: N` under `proxy:` in zdm.yaml")
    ap.add_argument("--zdm-setting", action="append", default=[], metavar="KEY=VALUE",
                    help="another zdm proxy setting (e.g. metrics_enabled=false, "
                         "replace_cql_functions=true, secondary_write_failure=record); repeatable")
    ap.add_argument("--feature", action="append", default=[], metavar="KEY=VALUE",
                    help="also measure a zdm instance with this setting under proxy: (path `zdm KEY=VALUE`), "
                         "compared with zdm's defaults; repeatable")
    ap.add_argument("--sandbox", type=Path, metavar="DIR",
                    help="run the plaintext paths against the pair `zdm sandbox up --dir DIR` started "
                         "(default: origin 9042, target 9043), e.g. one nothing else uses")
    ap.add_argument("--tls-sandbox", type=Path, metavar="DIR",
                    help="a `zdm sandbox up --tls --dir DIR` pair: also measure direct-tls, zdm-tls and "
                         "zdm-proxy-tls against it, every connection TLS")
    ap.add_argument("--paths", metavar="NAMES",
                    help="measure only these paths, comma-separated (direct, zdm, zdm-proxy, direct-tls, "
                         "zdm-tls, zdm-proxy-tls); --feature paths are always measured")
    ap.add_argument("--conn-memory", type=int, default=500, metavar="N",
                    help="connections held to measure memory per connection (0: skip)")
    ap.add_argument("--conn-rounds", type=int, default=5, metavar="R",
                    help="rounds of opening and closing them")
    ap.add_argument("--zdm-port", type=int, default=14092)
    ap.add_argument("--zdm-proxy-port", type=int, default=14200)
    ap.add_argument("--zdm-proxy-metrics-port", type=int, default=14201)
    ap.add_argument("--zdm-tls-port", type=int, default=14094, help="zdm-tls's port; its metrics on the next")
    ap.add_argument("--zdm-proxy-tls-port", type=int, default=14210,
                    help="zdm-proxy-tls's port; its metrics on the next")
    ap.add_argument("--feature-port", type=int, default=14300,
                    help="the first --feature instance's port, its metrics on the next, the next instance's after")
    ap.add_argument("--json-out", type=Path, metavar="PATH", help="write the results as JSON")
    a = ap.parse_args()
    a.workloads = a.workloads.split(",")
    a.concurrency = [int(c) for c in a.concurrency.split(",")]
    if not set(a.workloads) <= set(WORKLOADS):
        ap.error(f"unknown workload in {a.workloads}")
    names = ["direct", "zdm", *(["zdm-proxy"] if a.zdm_proxy else [])]
    available = names + [f"{name}-tls" for name in names] if a.tls_sandbox else names
    a.paths = a.paths.split(",") if a.paths else available
    if not set(a.paths) <= set(available):
        ap.error(f"--paths {','.join(a.paths)}: the paths these options give are {', '.join(available)}")
    if a.tls_sandbox and a.write_coalesce_us is None:
        a.write_coalesce_us = 0  # like for like: gocql does not coalesce TLS connections' writes
    for feature in a.feature:
        if "=" not in feature:
            ap.error(f"--feature {feature}: KEY=VALUE, for example metrics_enabled=false")
    return a


def start_endpoints(a: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack,
                    plain: Clusters, tls: Clusters | None) -> list[Endpoint]:
    """Every path asked for, in the order each cell measures them: the plaintext paths, the
    --feature instances, the TLS paths."""
    endpoints = []
    if "direct" in a.paths:
        endpoints.append(Endpoint("direct", plain.origin_port, None, clusters=plain))
    if "zdm" in a.paths or a.feature:
        endpoints.append(stack.enter_context(start_zdm(a.zdm_port, a.workers, workdir, a.zdm_setting,
                                                       clusters=plain)))
    if "zdm-proxy" in a.paths:
        endpoints.append(stack.enter_context(
            start_zdm_proxy(a.zdm_proxy, a.zdm_proxy_port, a.zdm_proxy_metrics_port, workdir, plain)))
    for i, feature in enumerate(a.feature):
        port = a.feature_port + 2 * i
        endpoints.append(stack.enter_context(start_zdm(
            port, a.workers, workdir, a.zdm_setting, port + 1, plain, f"zdm {feature}", feature)))
    if "direct-tls" in a.paths:
        endpoints.append(Endpoint("direct-tls", tls.origin_port, None, clusters=tls, tls=tls.node_tls("origin")))
    if "zdm-tls" in a.paths:
        endpoints.append(stack.enter_context(start_zdm(
            a.zdm_tls_port, a.workers, workdir, a.zdm_setting, a.zdm_tls_port + 1, tls, "zdm-tls")))
    if "zdm-proxy-tls" in a.paths:
        endpoints.append(stack.enter_context(start_zdm_proxy(
            a.zdm_proxy, a.zdm_proxy_tls_port, a.zdm_proxy_tls_port + 1, workdir, tls, "zdm-proxy-tls")))
    return endpoints


def run(a: argparse.Namespace, workdir: Path) -> dict:
    binary = loadgen_binary()
    plain = sandbox_clusters(a.sandbox, tls=False) if a.sandbox else PLAINTEXT
    tls = sandbox_clusters(a.tls_sandbox, tls=True) if a.tls_sandbox else None
    plaintext = a.feature or any(not p.endswith("-tls") for p in a.paths)
    for clusters in [*([plain] if plaintext else []), *([tls] if tls and any(
            p.endswith("-tls") for p in a.paths) else [])]:
        for cluster in ("origin", "target"):
            setup_table(binary, clusters.port(cluster), a.rows, a.protocol, clusters.node_tls(cluster))
    with contextlib.ExitStack() as stack:
        started = start_endpoints(a, workdir, stack, plain, tls)
        proxies = [e for e in started if e.pid is not None]
        endpoints = with_compressions(started, a.compression)
        memory = [connection_memory(e, a.conn_memory, a.conn_rounds) for e in proxies] \
            if a.conn_memory else []
        row = row_format(a.workloads, [e.name for e in endpoints])
        print(row.format("load", "conc", "path", "ops/s", "p50 ms", "p99 ms", "errors", "proxy µs/req",
                         "loadgen cores"))
        cells = []
        for workload in a.workloads:
            for conc in a.concurrency:
                rounds: dict[str, list[dict]] = {e.name: [] for e in endpoints}
                for r in range(a.rounds):
                    start = r * len(endpoints) // a.rounds  # each round begins with another path
                    for endpoint in endpoints[start:] + endpoints[:start]:
                        rounds[endpoint.name].append(measure(binary, endpoint, workload, conc, a))
                        if a.rounds > 1:
                            print(f"  round {r + 1}: " + row.format(*cell_fields(rounds[endpoint.name][-1])),
                                  file=sys.stderr, flush=True)
                for endpoint in endpoints:
                    cells.append(median_cell(rounds[endpoint.name]))
                    print_cell(cells[-1], row)
    settings = {k: v for k, v in vars(a).items() if k not in ("json_out", "zdm_proxy")}
    return {"machine": machine(a.zdm_proxy), "settings": settings, "cells": cells, "memory": memory}


def run_in_tempdir(script: str, run, a: argparse.Namespace) -> dict:
    """``run(a, workdir)`` in a temporary folder, the proxies stopped on SIGTERM too; a
    BenchError ends the script with its message."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the proxies are stopped
    with tempfile.TemporaryDirectory(prefix=f"zdm-{Path(script).stem}-") as tmp:
        try:
            return run(a, Path(tmp))
        except BenchError as e:
            sys.exit(f"{script}: {e}")


def main() -> None:
    a = parse_args()
    results = run_in_tempdir("bench/proxy.py", run, a)
    if results["memory"]:
        print_memory(results["memory"])
    print_ratios(results["cells"])
    print_ratios(results["cells"], "zdm-tls", "zdm-proxy-tls")
    for c in a.compression:
        if c != "none":
            print_ratios(results["cells"], f"zdm+{c}", f"zdm-proxy+{c}")
            print_ratios(results["cells"], f"zdm+{c}", "zdm")
    print_tls_costs(results["cells"])
    print_added_latency(results["cells"])
    print_feature_costs(results["cells"])
    print_loads(results["cells"])
    m = results["machine"]
    print(f"\n{m['cores']} cores ({m['cpu_model']}), {m['ram_gib']} GiB, Python {m['python']}, "
          f"uvloop {'yes' if m['uvloop'] else 'no'}; protocol v{a.protocol}, compression {','.join(a.compression)}, {a.seconds:g} s per cell "
          f"after {a.warmup:g} s warm-up, loadgen {a.conns} connections")
    write_json(results, a.json_out)


def print_loads(cells: list[dict]) -> None:
    """The machine's load around the cells; a figure taken at 10 or more does not count."""
    loads = [x for c in cells for x in c.get("load", ())]
    if loads:
        print(f"\nload average (1 min) during the cells: {min(loads):.1f} to {max(loads):.1f}"
              + ("  -- 10 or more: these figures do not count" if max(loads) >= 10 else ""))


def write_json(results: dict, path: Path | None) -> None:
    if path:
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results written to {path}")


if __name__ == "__main__":
    main()
