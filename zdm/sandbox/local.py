"""The local sandbox: two single-node Cassandra clusters, origin and target, on loopback.

``up`` is idempotent: a node that is already up is left alone, one that is not is
started; both start in parallel and ``up`` returns only when a CQL login succeeds on
each.  The settings a sandbox was created with live in ``sandbox.json`` beside the
nodes, so ``status`` and ``down`` need no arguments and ``up`` refuses to silently
change them (turning auth on over an existing data directory, for instance).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from zdm.errors import SandboxError
from zdm.sandbox import node
from zdm.sandbox.jars import CASSANDRA_VERSION, ensure_jars, find_java, jars_cached

DEFAULT_DIR = Path(".zdm/sandbox")


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    directory: Path = DEFAULT_DIR
    origin_port: int = 9042
    target_port: int = 9043
    origin_storage_port: int = 7000
    target_storage_port: int = 7100
    heap_mb: int = 512
    auth: bool = False
    version: str = CASSANDRA_VERSION
    #: "local" (java + Maven jars) or "docker" (the official image, through testcontainers)
    engine: str = "local"

    def nodes(self) -> list[node.NodeSpec]:
        return [
            node.NodeSpec("origin", self.origin_port, self.origin_storage_port,
                          self.directory / "origin", self.heap_mb, self.auth),
            node.NodeSpec("target", self.target_port, self.target_storage_port,
                          self.directory / "target", self.heap_mb, self.auth),
        ]

    def validate(self) -> None:
        ports = [self.origin_port, self.target_port, self.origin_storage_port, self.target_storage_port]
        for port in ports:
            if not 1024 <= port <= 65535:
                raise SandboxError(f"port {port} is out of range (1024-65535)")
        if len(set(ports)) != len(ports):
            raise SandboxError(f"the sandbox's ports must all differ, got {ports}")
        if self.heap_mb < 256:
            raise SandboxError(f"a heap of {self.heap_mb} MiB is too small for Cassandra",
                               hint="use --heap-mb 256 or more (512 is the default)")


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    port: int
    pid: int | None
    listening: bool
    rss_bytes: int | None
    version: str | None = None

    @property
    def up(self) -> bool:
        return self.pid is not None and self.listening


def _settings_file(directory: Path) -> Path:
    return directory / "sandbox.json"


def saved_settings(directory: Path = DEFAULT_DIR) -> SandboxSettings | None:
    path = _settings_file(directory)
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        raw["directory"] = Path(raw["directory"])
        return SandboxSettings(**raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise SandboxError(f"{path} is damaged ({exc})",
                           hint="run `zdm sandbox down --purge` to start afresh") from None


def save_settings(settings: SandboxSettings) -> None:
    settings.directory.mkdir(parents=True, exist_ok=True)
    record = asdict(settings)
    record["directory"] = str(settings.directory)
    _settings_file(settings.directory).write_text(json.dumps(record, indent=2) + "\n")


def check_compatible(settings: SandboxSettings) -> None:
    """Refuse to start over a sandbox made with other settings (ports, auth, engine)."""
    previous = saved_settings(settings.directory)
    if previous is not None and previous != settings:
        running = [s.name for s in status(previous) if s.pid is not None]
        if running or previous.auth != settings.auth or previous.engine != settings.engine:
            raise SandboxError(
                f"a sandbox with other settings exists in {settings.directory} "
                f"({_describe(previous)}; asked for {_describe(settings)})",
                hint="run `zdm sandbox down --purge` first, or repeat the original options")


def up(settings: SandboxSettings, *, timeout: float = 240.0, on_step=lambda msg: None) -> list[NodeStatus]:
    settings.validate()
    check_compatible(settings)
    java = find_java()
    if not jars_cached(settings.version):
        on_step(f"Fetching Cassandra {settings.version} jars from Maven Central (once)...")
    lib = ensure_jars(settings.version)
    save_settings(settings)

    def bring_up(spec: node.NodeSpec) -> None:
        if node.read_pid(spec) is not None:
            node.wait_ready(spec, None, timeout=timeout)
            return
        offset = node.log_size(spec)
        proc = node.start(spec, java, lib)
        try:
            node.wait_ready(spec, proc, timeout=timeout, log_offset=offset)
        except BaseException:
            node.stop(spec, grace=5)
            raise

    on_step("Starting origin and target...")
    specs = settings.nodes()
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        futures = [pool.submit(bring_up, spec) for spec in specs]
        errors = [f.exception() for f in futures]
    failed = [e for e in errors if e is not None]
    if failed:
        if len(failed) == 1:
            raise failed[0]
        raise SandboxError("\n\n".join(str(e) for e in failed),
                           hint="see each node's log under " + str(settings.directory))
    return status(settings, probe=True)


def down(settings: SandboxSettings, *, grace: float = 30.0, purge: bool = False) -> list[str]:
    specs = settings.nodes()
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        stopped = list(pool.map(lambda s: node.stop(s, grace=grace), specs))
    if purge:
        import shutil

        shutil.rmtree(settings.directory, ignore_errors=True)
    return [spec.name for spec, was in zip(specs, stopped) if was]


def status(settings: SandboxSettings, *, probe: bool = False) -> list[NodeStatus]:
    result = []
    for spec in settings.nodes():
        pid = node.read_pid(spec)
        listening = pid is not None and node.port_open(spec.native_port)
        version = None
        if probe and listening:
            try:
                version = node.cql_login(spec)
            except Exception:  # noqa: BLE001 - status reports, never fails
                version = None
        result.append(NodeStatus(spec.name, spec.native_port, pid, listening,
                                 node.rss_bytes(pid) if pid else None, version))
    return result


def _describe(s: SandboxSettings) -> str:
    return (f"ports {s.origin_port}/{s.target_port}, auth {'on' if s.auth else 'off'}, "
            f"heap {s.heap_mb} MiB, Cassandra {s.version}")


