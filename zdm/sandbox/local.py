"""The local sandbox: two Cassandra clusters, origin and target, on loopback.

Each may run its own release (``origin_version``, ``target_version``: any from 3.11 to
5.0), each on the Java that release needs (:func:`zdm.sandbox.jars.find_java`).  Each is
one node by default (127.0.0.1, origin on 9042, target on 9043), or several nodes in one
or more datacenters, each node on its own loopback address (:mod:`zdm.sandbox.layout`).

``up`` is idempotent: a node that is already up is left alone, one that is not is
started, and ``up`` returns only when a CQL login succeeds on each node.  The two clusters
start in parallel; within a multi-node cluster the seed starts first and each other node
after the previous one answers, because a node allocates its tokens from the ring it sees
(two nodes starting blind would both take the empty ring's tokens), and 2 cores gain
nothing from more.  The settings a sandbox was created with live in ``sandbox.json`` beside
the nodes, so ``status`` and ``down`` need no arguments and ``up`` refuses to silently
change them (turning auth on over an existing data directory, for instance).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from zdm.errors import SandboxError
from zdm.releases import fmt, parse_version
from zdm.sandbox import layout, node
from zdm.sandbox.jars import (CASSANDRA_VERSION, ensure_jars, find_java, jars_cached,
                              java_majors)
from zdm.config import TEMPLATE
from zdm.sandbox.tls import SandboxTls

DEFAULT_DIR = Path(".zdm/sandbox")
#: Cassandra reads PEM keystores from 4.1 on (3.11 and 4.0 only JKS)
TLS_MIN_RELEASE = (4, 1)


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    directory: Path = DEFAULT_DIR
    origin_port: int = 9042
    target_port: int = 9043
    origin_storage_port: int = 7000
    target_storage_port: int = 7100
    heap_mb: int = 512
    auth: bool = False
    origin_version: str = CASSANDRA_VERSION
    target_version: str = CASSANDRA_VERSION
    #: "local" (java + Maven jars) or "docker" (the official image, through testcontainers)
    engine: str = "local"
    #: clients must use TLS (certificates under ``<directory>/tls``, see zdm.sandbox.tls)
    tls: bool = False
    #: with TLS, the nodes ("origin", "target") that also require a client certificate
    tls_client_auth: tuple[str, ...] = ()
    #: nodes and datacenters per cluster (1 and 1: the single-node sandbox on 127.0.0.1)
    origin_nodes: int = 1
    target_nodes: int = 1
    origin_dcs: int = 1
    target_dcs: int = 1
    #: the first address of a multi-node cluster's block (None: layout.FIRST_ADDRESS)
    origin_address: str | None = None
    target_address: str | None = None

    @property
    def tls_dir(self) -> Path:
        return self.directory / "tls"

    def layouts(self) -> list[layout.ClusterLayout]:
        return [layout.ClusterLayout("origin", self.origin_nodes, self.origin_dcs, self.origin_address),
                layout.ClusterLayout("target", self.target_nodes, self.target_dcs, self.target_address)]

    def clusters(self) -> dict[str, list[node.NodeSpec]]:
        """Each cluster's nodes, the seed first (the order they start in)."""
        tls = self.tls_dir if self.tls else None
        ports = {"origin": (self.origin_port, self.origin_storage_port, self.origin_version),
                 "target": (self.target_port, self.target_storage_port, self.target_version)}
        result = {}
        for lay in self.layouts():
            native, storage, version = ports[lay.cluster]
            result[lay.cluster] = [
                node.NodeSpec(p.name, native, storage, self.directory / p.name, self.heap_mb,
                              self.auth, version, tls, self.tls and lay.cluster in self.tls_client_auth,
                              address=p.address, cluster=lay.cluster, seed=p.seed, dc=p.dc,
                              rack=p.rack, allocation_rf=p.allocation_rf)
                for p in lay.places()]
        return result

    def nodes(self) -> list[node.NodeSpec]:
        return [spec for specs in self.clusters().values() for spec in specs]

    def node_at(self, address: str) -> node.NodeSpec:
        """The node listening on ``address`` (``127.0.0.12``, or ``127.0.0.1:9043`` for a
        single-node cluster, which shares its address with the other cluster)."""
        specs = self.nodes()
        host, _, port = address.partition(":")
        found = [s for s in specs if s.address == host and (not port or str(s.native_port) == port)]
        if len(found) == 1:
            return found[0]
        known = ", ".join(s.endpoint if s.address == "127.0.0.1" else s.address for s in specs)
        if len(found) > 1:
            raise SandboxError(f"{address} names {len(found)} nodes of the sandbox in {self.directory}",
                               hint=f"add the CQL port: one of {known}")
        raise SandboxError(f"{address} is no node of the sandbox in {self.directory}",
                           hint=f"its nodes are {known} (`zdm sandbox status` lists them)")

    def validate(self) -> None:
        for lay in self.layouts():
            lay.validate()
        layout.check_apart(self.layouts())
        multi = [lay.cluster for lay in self.layouts() if lay.multinode]
        if multi and self.engine != "local":
            raise SandboxError("multi-node clusters run only on the local engine", hint="drop --docker")
        if multi and self.tls:
            raise SandboxError("a TLS sandbox is single-node only (its certificates name 127.0.0.1)",
                               hint="drop --tls, or --origin-nodes/--target-nodes")
        for version in (self.origin_version, self.target_version):
            java_majors(version)  # refuses a release the sandbox cannot run
        if self.tls:
            old = [f"{n} {v}" for n, v in (("origin", self.origin_version),
                                            ("target", self.target_version))
                   if (parse_version(v) or (0,)) < TLS_MIN_RELEASE]
            if old:
                raise SandboxError(f"a TLS sandbox needs Cassandra {fmt(TLS_MIN_RELEASE)} or newer "
                                   f"(PEM keystores), not {', '.join(old)}",
                                   hint="drop --tls, or run 4.1 or 5.0 nodes")
            if self.engine != "local":
                raise SandboxError("--tls runs only on the local engine", hint="drop --docker")
        unknown = set(self.tls_client_auth) - {"origin", "target"}
        if unknown:
            raise SandboxError(f"tls_client_auth names unknown nodes: {', '.join(sorted(unknown))}")
        ports = [self.origin_port, self.target_port, self.origin_storage_port, self.target_storage_port]
        for port in ports:
            if not 1024 <= port <= 65535:
                raise SandboxError(f"port {port} is out of range (1024-65535)")
        # nodes on one address (the single-node clusters, both on 127.0.0.1) need their own ports
        taken: dict[tuple[str, int], str] = {}
        for spec in self.nodes():
            for port in dict.fromkeys((spec.native_port, spec.storage_port)):
                if (spec.address, port) in taken or spec.native_port == spec.storage_port:
                    raise SandboxError(f"the sandbox's ports must all differ, got {ports}")
                taken[(spec.address, port)] = spec.name
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
    #: the release_version the node reports over CQL (None when it does not answer)
    version: str | None = None
    #: the release it was configured to run, and the Java it was started on
    release: str | None = None
    java: str | None = None
    java_version: int | None = None
    #: its cluster ("origin", "target"), address and datacenter (None: SimpleSnitch)
    cluster: str | None = None
    address: str = "127.0.0.1"
    dc: str | None = None

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
        raw["directory"] = directory  # where it is now, whatever path it was made with
        if "version" in raw:  # written before each node had its own release
            release = raw.pop("version")
            raw.setdefault("origin_version", release)
            raw.setdefault("target_version", release)
        raw["tls_client_auth"] = tuple(raw.get("tls_client_auth", ()))
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
    """Refuse to start over a sandbox made with other settings: any change while a node
    runs, and a change of auth, engine or release over existing data (a node cannot
    start on the data of another release without an upgrade)."""
    previous = saved_settings(settings.directory)
    if previous is not None and previous != settings:
        running = [s.name for s in status(previous) if s.pid is not None]
        releases = (previous.origin_version, previous.target_version) != \
            (settings.origin_version, settings.target_version)
        # a node added or moved over existing data would hold none of the data it owns
        shape = previous.layouts() != settings.layouts()
        if running or releases or shape or previous.auth != settings.auth or \
                previous.engine != settings.engine:
            raise SandboxError(
                f"a sandbox with other settings exists in {settings.directory} "
                f"({_describe(previous)}; asked for {_describe(settings)})",
                hint=f"run `zdm sandbox down --purge{_dir_option(settings.directory)}` first, "
                     "or repeat the original options")


def up(settings: SandboxSettings, *, timeout: float = 240.0, java: str | None = None,
       on_step=lambda msg: None) -> list[NodeStatus]:
    """Start every node (idempotent).  ``java`` (``--java``) is preferred for every node
    whose release it runs; each other node finds the Java its release needs.  ``timeout``
    bounds the wait for each node."""
    settings.validate()
    check_compatible(settings)
    clusters = settings.clusters()
    specs = settings.nodes()
    javas = {spec.name: _java_for(spec, java) for spec in specs if node.read_pid(spec) is None}
    libs = {}
    for version in dict.fromkeys(s.version for s in specs):
        if not jars_cached(version):
            on_step(f"Fetching Cassandra {version} jars from Maven Central (once)...")
        libs[version] = ensure_jars(version)
    save_settings(settings)
    if settings.tls:
        SandboxTls(settings.tls_dir).ensure(tuple(s.name for s in specs))

    def bring_up_cluster(members: list[node.NodeSpec]) -> None:
        for spec in members:  # the seed first; each node once the one before answers
            if node.read_pid(spec) is not None:
                node.wait_ready(spec, None, timeout=timeout)
            else:
                _start_one(spec, javas[spec.name], libs[spec.version], timeout)
        if len(members) > 1:
            wait_converged(members, timeout=timeout)

    on_step("Starting " + " and ".join(_describe_cluster(m) for m in clusters.values()) + "...")
    with ThreadPoolExecutor(max_workers=len(clusters)) as pool:
        futures = [pool.submit(bring_up_cluster, members) for members in clusters.values()]
        errors = [f.exception() for f in futures]
    failed = [e for e in errors if e is not None]
    if failed:
        if len(failed) == 1:
            raise failed[0]
        raise SandboxError("\n\n".join(str(e) for e in failed),
                           hint="see each node's log under " + str(settings.directory))
    return status(settings, probe=True)


def _start_one(spec: node.NodeSpec, java: str, lib: Path, timeout: float) -> None:
    offset = node.log_size(spec)
    proc = node.start(spec, java, lib)
    try:
        node.wait_ready(spec, proc, timeout=timeout, log_offset=offset)
    except BaseException:
        node.stop(spec, grace=5)
        raise


def _describe_cluster(members: list[node.NodeSpec]) -> str:
    first = members[0]
    if len(members) == 1:
        return f"{first.name} (Cassandra {first.version})"
    dcs = len({m.dc for m in members})
    return (f"{first.cluster} (Cassandra {first.version}, {len(members)} nodes "
            f"{first.address}-{members[-1].address.rsplit('.', 1)[1]}"
            f"{f' in {dcs} DCs' if dcs > 1 else ''})")


def wait_converged(members: list[node.NodeSpec], *, timeout: float = 60.0) -> None:
    """Block until every node knows every other one of its cluster as it runs now: listed in
    ``system.peers`` with its tokens and datacenter, and (4.1+) heard from in gossip in its
    current incarnation with its CQL port ready.  Then a driver or a proxy that reads any one
    node sees the whole cluster up, including a node just started again."""
    import time

    deadline = time.monotonic() + timeout
    want = {m.address: m.dc for m in members}
    while True:
        views, missing = {}, {}
        for m in members:
            try:
                views[m.address] = node.ring_view(m)
            except Exception as exc:  # noqa: BLE001 - retry until the deadline
                missing[m.name] = str(exc)
        for m in members:
            view = views.get(m.address)
            if view is None:
                continue
            expected = {a: dc for a, dc in want.items() if a != m.address}
            if view.peers != expected:
                missing[m.name] = f"peers {view.peers}, expected {expected}"
            elif view.gossip is not None:
                stale = [a for a in expected if a in views and
                         view.gossip.get(a) != (views[a].generation, True)]
                if stale:
                    missing[m.name] = f"has not heard from {', '.join(stale)} since it started"
        if not missing:
            return
        if time.monotonic() > deadline:
            raise SandboxError(f"the {members[0].cluster} nodes do not all see each other after "
                               f"{timeout:.0f}s: " + "; ".join(f"{n}: {why}" for n, why in missing.items()),
                               hint="see the nodes' logs (cassandra.log) under "
                                    f"{members[0].directory.parent}")
        time.sleep(0.5)


def stop_node(settings: SandboxSettings, address: str, *, graceful: bool = False,
              grace: float = 30.0) -> node.NodeSpec:
    """Stop one node: SIGKILL, as a crash would (``graceful``: SIGTERM, then SIGKILL after
    ``grace`` seconds).  Refuses an address that is no node of the sandbox, and a node that
    does not run."""
    spec = settings.node_at(address)
    stopped = node.stop(spec, grace=grace) if graceful else node.kill(spec)
    if not stopped:
        raise SandboxError(f"{spec.name} ({spec.endpoint}) is not running",
                           hint="`zdm sandbox status` shows which nodes run")
    return spec


def start_node(settings: SandboxSettings, address: str, *, timeout: float = 240.0,
               java: str | None = None) -> node.NodeSpec:
    """Start one stopped node again on its data directory (it rejoins its cluster with the
    tokens and data it had); returns once a CQL login succeeds and the running nodes of its
    cluster know it again (:func:`wait_converged`).  A node that runs is left alone."""
    spec = settings.node_at(address)
    if node.read_pid(spec) is not None:
        node.wait_ready(spec, None, timeout=timeout)
    else:
        if not jars_cached(spec.version):
            raise SandboxError(f"Cassandra {spec.version}'s jars are not cached",
                               hint="run `zdm sandbox up` first")
        _start_one(spec, _java_for(spec, java), ensure_jars(spec.version), timeout)
    members = settings.clusters()[spec.cluster]
    running = [m for m in members if node.read_pid(m) is not None]
    if len(members) > 1 and len(running) == len(members):  # with a node still down, it never would
        wait_converged(members, timeout=timeout)
    return spec


def _java_for(spec: node.NodeSpec, prefer: str | None) -> str:
    """The Java for one node: ``prefer`` if it runs the node's release, else the one the
    node last ran on (so a ``--java`` given once keeps working), else whatever fits."""
    if prefer is None:
        last = node.started_with(spec)
        if last.get("release") == spec.version and last.get("java"):
            try:
                return find_java(spec.version, prefer=last["java"])
            except SandboxError:
                pass
    return find_java(spec.version, prefer=prefer)


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
        listening = pid is not None and node.port_open(spec.native_port, spec.address)
        version = None
        if probe and listening:
            try:
                version = node.cql_login(spec)
            except Exception:  # noqa: BLE001 - status reports, never fails
                version = None
        record = node.started_with(spec)
        result.append(NodeStatus(spec.name, spec.native_port, pid, listening,
                                 node.rss_bytes(pid) if pid else None, version,
                                 release=spec.version, java=record.get("java"),
                                 java_version=record.get("java_version"),
                                 cluster=spec.cluster, address=spec.address, dc=spec.dc))
    return result


#: the default sandbox's storage ports, then those other sandboxes and single nodes take
#: (7200 and 7300 are left to the test suite's extra nodes)
DEFAULT_STORAGE_PORTS = (7000, 7100)
STORAGE_PORTS = DEFAULT_STORAGE_PORTS + tuple(range(7400, 8000, 100))


def storage_ports(directory: Path, origin_port: int, target_port: int) -> tuple[int, int]:
    """Storage ports for a sandbox: those it was created with, else 7000 and 7100, else
    the first free ones of 7400, 7500, ... (so a second sandbox beside the first just works)."""
    previous = saved_settings(directory)
    if previous is not None and (previous.origin_port, previous.target_port) == (origin_port, target_port):
        return previous.origin_storage_port, previous.target_storage_port
    if not any(node.port_open(p) for p in DEFAULT_STORAGE_PORTS):
        return DEFAULT_STORAGE_PORTS
    free = [p for p in STORAGE_PORTS[2:] if not node.port_open(p)]
    if len(free) < 2:
        raise SandboxError("no free storage ports among " + ", ".join(map(str, STORAGE_PORTS)),
                           hint="pass --origin-storage-port and --target-storage-port")
    return free[0], free[1]


def _dir_option(directory: Path) -> str:
    return "" if directory == DEFAULT_DIR else f" --dir {directory}"


def _describe(s: SandboxSettings) -> str:
    releases = (s.origin_version if s.origin_version == s.target_version
                else f"{s.origin_version}/{s.target_version}")
    shape = "".join(f", {lay.nodes} {lay.cluster} nodes in {lay.dcs} DC{'s' if lay.dcs > 1 else ''}"
                    for lay in s.layouts() if lay.multinode)
    return (f"ports {s.origin_port}/{s.target_port}, auth {'on' if s.auth else 'off'}, "
            f"TLS {'on' if s.tls else 'off'}, heap {s.heap_mb} MiB, Cassandra {releases}{shape}")




def single_node(name: str, version: str, port: int, directory: Path, *,
                storage_port: int | None = None, java: str | None = None, heap_mb: int = 512,
                timeout: float = 240.0, on_step=lambda msg: None) -> tuple[node.NodeSpec, bool]:
    """One extra node of ``version`` on ``port`` (beside a sandbox, e.g. an older origin);
    returns it and whether it was started here.  A node that already answers on ``port``
    is used if it runs ``version``, refused otherwise.  ``storage_port`` defaults to the
    first free one of 7400, 7500, ... (7000 and 7100 stay the default sandbox's)."""
    java_majors(version)
    probe = node.NodeSpec(name, port, storage_port or 0, directory, version=version)
    if node.read_pid(probe) is not None:  # this directory's node, still starting
        node.wait_ready(probe, None, timeout=timeout)
    if node.port_open(port):
        try:
            found = node.cql_login(probe)
        except Exception as exc:  # noqa: BLE001 - anything but a node of that release
            raise SandboxError(f"port {port} is in use, and no Cassandra {version} answers "
                               f"there ({exc})", hint="pick another port") from None
        if found != version:
            raise SandboxError(f"port {port} runs Cassandra {found}, not {version}",
                               hint="pick another port, or stop that node")
        return probe, False
    previous = node.started_with(probe)
    if previous and previous.get("release") != version:
        raise SandboxError(f"{directory} holds a Cassandra {previous.get('release')} node, "
                           f"not {version}", hint=f"delete {directory}, or use another directory")
    storage = storage_port or next((p for p in STORAGE_PORTS[2:] if not node.port_open(p)), None)
    if storage is None:
        raise SandboxError("no free storage port among " + ", ".join(map(str, STORAGE_PORTS)))
    spec = node.NodeSpec(name, port, storage, directory, heap_mb, version=version)
    java_path = _java_for(spec, java)
    if not jars_cached(version):
        on_step(f"Fetching Cassandra {version} jars from Maven Central (once)...")
    lib = ensure_jars(version)
    on_step(f"Starting {name} (Cassandra {version}) on 127.0.0.1:{port}...")
    offset = node.log_size(spec)
    proc = node.start(spec, java_path, lib)
    try:
        node.wait_ready(spec, proc, timeout=timeout, log_offset=offset)
    except BaseException:
        node.stop(spec, grace=5)
        raise
    return spec, True


def zdm_yaml(settings: SandboxSettings, config_dir: Path) -> str:
    """`zdm init`'s commented zdm.yaml for this sandbox: its ports, and for a TLS sandbox the CA,
    zdm's client certificate (for nodes that require one) and the proxy's certificate; for an
    auth sandbox the login, its password read from ZDM_ORIGIN_PASSWORD / ZDM_TARGET_PASSWORD.
    Paths are relative to ``config_dir`` (where zdm.yaml goes).  The default sandbox gets the
    plain template."""
    import os

    def rel(path: Path) -> str:
        return os.path.relpath(path.resolve(), config_dir.resolve())

    def swap(text: str, old: str, new: str) -> str:
        if old not in text:  # the template changed: this must change with it
            raise AssertionError(f"zdm.yaml template has no {old!r}")
        return text.replace(old, new, 1)

    text = TEMPLATE
    clusters = settings.clusters()
    multi = any(len(specs) > 1 for specs in clusters.values())
    if (settings.origin_port, settings.target_port, settings.tls, settings.auth, multi) == \
            (9042, 9043, False, False, False):
        return text

    def where(name: str) -> str:
        specs = clusters[name]
        if len(specs) == 1:
            return specs[0].endpoint
        dcs = sorted({s.dc for s in specs})
        return (f"{specs[0].address}-{specs[-1].address.rsplit('.', 1)[1]}:{specs[0].native_port}"
                f" ({len(specs)} nodes, {', '.join(dcs)})")

    text = swap(text, "# The defaults point at the local sandbox (`zdm sandbox up`): origin 127.0.0.1:9042,\n"
                      "# target 127.0.0.1:9043, so the sandbox works with no edits.\n",
                f"# Written by `zdm init` for the sandbox in {rel(settings.directory)}: origin "
                f"{where('origin')},\n# target {where('target')}"
                f"{', TLS' if settings.tls else ''}{', logins' if settings.auth else ''}.\n")
    tls = SandboxTls(settings.tls_dir) if settings.tls else None
    for name, port, default in (("origin", settings.origin_port, 9042), ("target", settings.target_port, 9043)):
        head = f"{name}:"
        at = text.index(f"\n{head}") + 1
        before, block = text[:at], text[at:]
        block = swap(block, f"  port: {default}\n", f"  port: {port}\n" + (_tls_lines(
            tls, rel, client_cert=name in settings.tls_client_auth) if tls else ""))
        if len(clusters[name]) > 1:  # every node, as a driver's contact points
            block = swap(block, "  contact_points: [127.0.0.1]\n",
                         f"  contact_points: [{', '.join(s.address for s in clusters[name])}]\n")
        if settings.auth:
            env = f"ZDM_{name.upper()}_PASSWORD"
            block = swap(block, "  # username: cassandra\n", "  username: cassandra           # the sandbox's login\n")
            block = block.replace(f"  # password_env: {env}", f"  password_env: {env}", 1)
        text = before + block
    if tls:
        text = swap(text, "  # tls: {cert_file: proxy.pem, key_file: proxy.key}   # + ca_file and require_client_auth: true\n",
                    f"  tls:                       # applications connect with TLS (the sandbox's CA)\n"
                    f"    cert_file: {rel(tls.proxy_cert_file)}\n    key_file: {rel(tls.proxy_key_file)}\n"
                    f"    ca_file: {rel(tls.ca_file)}\n")
    return text


def _tls_lines(tls, rel, *, client_cert: bool) -> str:
    lines = "  tls:                       # the sandbox's CA (zdm sandbox up --tls)\n" \
            f"    ca_file: {rel(tls.ca_file)}\n"
    if client_cert:
        lines += (f"    cert_file: {rel(tls.client_cert_file)}   # the node requires a client certificate\n"
                  f"    key_file: {rel(tls.client_key_file)}\n")
    return lines
