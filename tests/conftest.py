"""Test session fixtures: one real sandbox (origin 9042, target 9043) for the whole run,
and beside it one older origin node (Cassandra 4.1.10 on 9144) for the cross-version tests.

If both ports already answer CQL (a developer's `zdm sandbox up`), that sandbox is
reused and left running; otherwise one is started under .zdm/test-sandbox and stopped
when the run ends.  The older origin works the same way (started under
.zdm/test-origin-4.1 on first use, stopped at the end unless it already answered); its
target is the sandbox's target.  A third pair, TLS only (`tls_sandbox`: 9242/9243, internode
7600/7700, under .zdm/test-tls), serves the TLS tests, with the Astra DB stand-in (`astra`)
in front of its target.  Unit tests never touch them: only tests that ask for
these fixtures (all under tests/integration/, marked `integration`) pay for Cassandra.

The Spark engine's tests share one Spark context on local[2] (`spark_master`), started on
first use and stopped at the end; `engine` runs a test once on each engine.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from zdm.config import ClusterConfig, Config
from zdm.sandbox.local import SandboxSettings

ORIGIN_PORT = int(os.environ.get("ZDM_TEST_ORIGIN_PORT", "9042"))
TARGET_PORT = int(os.environ.get("ZDM_TEST_TARGET_PORT", "9043"))
OLD_ORIGIN_VERSION = os.environ.get("ZDM_TEST_OLD_ORIGIN_VERSION", "4.1.10")
OLD_ORIGIN_PORT = int(os.environ.get("ZDM_TEST_OLD_ORIGIN_PORT", "9144"))
OLD_ORIGIN_STORAGE_PORT = int(os.environ.get("ZDM_TEST_OLD_ORIGIN_STORAGE_PORT", "7300"))
ROOT = Path(__file__).resolve().parent.parent

# no per-example deadline: a property's examples are checked for what they return, never for
# how fast a shared machine ran them (a deadline is a timing assertion)
hypothesis_settings.register_profile("zdm", deadline=None)
hypothesis_settings.load_profile("zdm")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(d in str(item.fspath).replace(os.sep, "/") for d in ("tests/integration/", "tests/e2e/")):
            item.add_marker(pytest.mark.integration)


def _release(port: int) -> str | None:
    """The release_version of the node answering CQL on ``port`` (None: none answers)."""
    from zdm.sandbox import node

    if not node.port_open(port):
        return None
    spec = node.NodeSpec("probe", port, 0, Path("."))
    try:
        return node.cql_login(spec, timeout=5)
    except Exception:
        return None


def _answers(port: int) -> bool:
    return _release(port) is not None


@dataclass(frozen=True)
class SandboxHandle:
    settings: "SandboxSettings"
    #: False when a sandbox that already answered was reused (and will be left running)
    started_here: bool

    @property
    def origin_port(self) -> int:
        return self.settings.origin_port

    @property
    def target_port(self) -> int:
        return self.settings.target_port


@pytest.fixture(scope="session")
def sandbox():
    """The running sandbox; starts one if none answers on the test ports."""
    from zdm.sandbox import local

    settings = local.SandboxSettings(
        directory=Path(os.environ.get("ZDM_TEST_SANDBOX_DIR", ROOT / ".zdm" / "test-sandbox")),
        origin_port=ORIGIN_PORT, target_port=TARGET_PORT,
        origin_storage_port=int(os.environ.get("ZDM_TEST_ORIGIN_STORAGE_PORT", "7000")),
        target_storage_port=int(os.environ.get("ZDM_TEST_TARGET_STORAGE_PORT", "7100")))
    if _answers(ORIGIN_PORT) and _answers(TARGET_PORT):
        yield SandboxHandle(settings, started_here=False)
        return
    local.up(settings)
    try:
        yield SandboxHandle(settings, started_here=True)
    finally:
        if not os.environ.get("ZDM_KEEP_SANDBOX"):
            local.down(settings)


@dataclass(frozen=True)
class NodeHandle:
    spec: "object"  # zdm.sandbox.node.NodeSpec
    started_here: bool

    @property
    def port(self) -> int:
        return self.spec.native_port


@pytest.fixture(scope="session")
def old_origin(sandbox):
    """A Cassandra 4.1.10 origin (one node, port 9144) beside the 5.0 pair, for the whole run."""
    from zdm.sandbox import local, node

    directory = Path(os.environ.get("ZDM_TEST_OLD_ORIGIN_DIR",
                                    ROOT / ".zdm" / f"test-origin-{OLD_ORIGIN_VERSION[:3]}"))
    spec, started = local.single_node("origin-old", OLD_ORIGIN_VERSION, OLD_ORIGIN_PORT, directory,
                                      storage_port=OLD_ORIGIN_STORAGE_PORT)
    try:
        yield NodeHandle(spec, started_here=started)
    finally:
        if started and not os.environ.get("ZDM_KEEP_SANDBOX"):
            node.stop(spec)


@pytest.fixture(scope="session")
def old_config(old_origin, sandbox, tmp_path_factory) -> Config:
    """Origin: the 4.1 node; target: the sandbox's 5.0 target."""
    return Config(origin=ClusterConfig(port=old_origin.port),
                  target=ClusterConfig(port=sandbox.target_port),
                  state_dir=tmp_path_factory.mktemp("old-state"))


@pytest.fixture(scope="session")
def old_origin_session(old_config):
    from zdm.clusters.connect import session

    with session(old_config.origin, name="origin") as s:
        yield s


@pytest.fixture(scope="session")
def zdm_config(sandbox, tmp_path_factory) -> Config:
    state = tmp_path_factory.mktemp("state")
    return Config(origin=ClusterConfig(port=sandbox.origin_port),
                  target=ClusterConfig(port=sandbox.target_port), state_dir=state)


@pytest.fixture(scope="session")
def origin_session(zdm_config):
    from zdm.clusters.connect import session

    with session(zdm_config.origin, name="origin") as s:
        yield s


@pytest.fixture(scope="session")
def target_session(zdm_config):
    from zdm.clusters.connect import session

    with session(zdm_config.target, name="target") as s:
        yield s


def _pair_keyspace(*sessions):
    name = "t_" + uuid.uuid4().hex[:12]
    for s in sessions:
        s.execute(f"CREATE KEYSPACE {name} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    yield name
    for s in sessions:
        s.execute(f"DROP KEYSPACE IF EXISTS {name}")


SPARK_MASTER = "local[2]"


@pytest.fixture(scope="session")
def spark_master():
    """The master of the run's one Spark context (local[2]), started here on first use."""
    from zdm.ranges.spark import spark_context

    sc = spark_context(SPARK_MASTER)
    try:
        yield SPARK_MASTER
    finally:
        sc.stop()


@pytest.fixture(params=["local", "spark"])
def engine(request) -> dict:
    """Run settings for each engine in turn (``run=engine``): the same test, the same checks."""
    if request.param == "local":
        return {"engine": "local"}
    return {"engine": "spark", "master": request.getfixturevalue("spark_master")}


@pytest.fixture()
def keyspace(origin_session, target_session):
    """A fresh keyspace of the same name on both clusters, dropped afterwards."""
    yield from _pair_keyspace(origin_session, target_session)


@pytest.fixture()
def old_keyspace(old_origin_session, target_session):
    """A fresh keyspace of the same name on the 4.1 origin and on target, dropped afterwards."""
    yield from _pair_keyspace(old_origin_session, target_session)


# -- TLS nodes and the Astra DB stand-in ------------------------------------------------------

TLS_ORIGIN_PORT = int(os.environ.get("ZDM_TEST_TLS_ORIGIN_PORT", "9242"))
TLS_TARGET_PORT = int(os.environ.get("ZDM_TEST_TLS_TARGET_PORT", "9243"))
TLS_STORAGE_PORTS = tuple(int(p) for p in os.environ.get("ZDM_TEST_TLS_STORAGE_PORTS", "7600,7700").split(","))
#: the TLS pair requires logins; origin also requires a client certificate, target does not
TLS_CREDENTIALS = ("cassandra", "cassandra")


@pytest.fixture(scope="session")
def tls_sandbox():
    """A second sandbox, TLS only (`zdm sandbox up --tls --auth`, origin also requiring a client
    certificate), on 9242/9243 under .zdm/test-tls: reused when it already answers, otherwise
    started for the run and stopped at its end (unless ZDM_KEEP_SANDBOX)."""
    from zdm.sandbox import local

    settings = local.SandboxSettings(
        directory=Path(os.environ.get("ZDM_TEST_TLS_DIR", ROOT / ".zdm" / "test-tls")),
        origin_port=TLS_ORIGIN_PORT, target_port=TLS_TARGET_PORT,
        origin_storage_port=TLS_STORAGE_PORTS[0], target_storage_port=TLS_STORAGE_PORTS[1],
        auth=True, tls=True, tls_client_auth=("origin",))
    if local.saved_settings(settings.directory) == settings and \
            all(n.version for n in local.status(settings, probe=True)):
        yield SandboxHandle(settings, started_here=False)
        return
    local.up(settings)
    try:
        yield SandboxHandle(settings, started_here=True)
    finally:
        if not os.environ.get("ZDM_KEEP_SANDBOX"):
            local.down(settings)


@pytest.fixture(scope="session")
def sandbox_tls(tls_sandbox):
    """The TLS sandbox's certificates (zdm.sandbox.tls.SandboxTls)."""
    from zdm.sandbox.tls import SandboxTls

    return SandboxTls(tls_sandbox.settings.tls_dir)


@pytest.fixture(scope="session")
def tls_config(tls_sandbox, sandbox_tls, tmp_path_factory) -> Config:
    """Origin and target of the TLS sandbox as zdm.yaml would name them: origin with zdm's
    client certificate, target with the CA alone."""
    from zdm.config import TlsConfig

    user, password = TLS_CREDENTIALS
    return Config(
        origin=ClusterConfig(port=tls_sandbox.origin_port, username=user, password=password,
                             tls=TlsConfig(ca_file=sandbox_tls.ca_file, cert_file=sandbox_tls.client_cert_file,
                                           key_file=sandbox_tls.client_key_file)),
        target=ClusterConfig(port=tls_sandbox.target_port, username=user, password=password,
                             tls=TlsConfig(ca_file=sandbox_tls.ca_file)),
        state_dir=tmp_path_factory.mktemp("tls-state"))


@pytest.fixture(scope="session")
def astra(tls_config, sandbox_tls):
    """The Astra DB stand-in (tests/support/astra.py) in front of the TLS sandbox's target:
    ``astra.bundle(path)`` writes a bundle for it; ``astra.host_ids``, ``metadata_port``,
    ``sni_port``, ``connections`` (per host id)."""
    from tests.support.astra import AstraStandIn
    from zdm.clusters.connect import session
    from zdm.sandbox.tls import client_context

    with session(tls_config.target, name="target") as s:
        local_row = s.execute("SELECT host_id, data_center FROM system.local").one()
    stand_in = AstraStandIn({str(local_row.host_id): ("127.0.0.1", tls_config.target.port)},
                            local_dc=local_row.data_center,
                            node_context=client_context(sandbox_tls, client_cert=False))
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="session")
def astra_config(astra, tls_config, tmp_path_factory) -> Config:
    """Origin: the TLS sandbox's origin; target: "Astra DB", through its secure connect bundle."""
    bundle = astra.bundle(tmp_path_factory.mktemp("astra") / "secure-connect-zdm.zip")
    user, password = TLS_CREDENTIALS
    return Config(origin=tls_config.origin,
                  target=ClusterConfig(secure_connect_bundle=bundle, username=user, password=password),
                  state_dir=tmp_path_factory.mktemp("astra-state"))


# -- a multi-node pair: 3 origin nodes, 3 target nodes --------------------------------------

MULTINODE_ORIGIN_NODES = 3
MULTINODE_TARGET_NODES = 3


@dataclass(frozen=True)
class MultinodeHandle:
    """The multi-node sandbox of the run (`multinode`): each node on its own loopback address,
    all on CQL 9042, with helpers to stop a node and bring it back."""

    settings: SandboxSettings
    started_here: bool

    def nodes(self, cluster: str) -> list:
        """The cluster's nodes (zdm.sandbox.node.NodeSpec), the seed first."""
        return self.settings.clusters()[cluster]

    def addresses(self, cluster: str) -> list[str]:
        return [spec.address for spec in self.nodes(cluster)]

    def cluster_config(self, cluster: str, contact_points: int | None = None) -> ClusterConfig:
        """zdm's configuration for one cluster, naming its first ``contact_points`` nodes
        (all of them by default)."""
        addresses = self.addresses(cluster)[:contact_points]
        return ClusterConfig(contact_points=tuple(addresses),
                             port=self.nodes(cluster)[0].native_port)

    def stop_node(self, address: str, *, graceful: bool = False):
        """SIGKILL the node (``graceful``: SIGTERM); returns its NodeSpec."""
        from zdm.sandbox import local

        return local.stop_node(self.settings, address, graceful=graceful)

    def start_node(self, address: str, *, timeout: float = 240.0):
        """Start it again on its data; returns once it accepts a CQL login and (when no other
        node of its cluster is down) every node of its cluster knows it again."""
        from zdm.sandbox import local

        return local.start_node(self.settings, address, timeout=timeout)

    def restore(self, timeout: float = 240.0) -> None:
        """Start every node that is not running (what a test that stops nodes ends with)."""
        from zdm.sandbox import node

        for spec in self.settings.nodes():
            if node.read_pid(spec) is None:
                self.start_node(spec.address, timeout=timeout)


def _multinode_fixture(settings):
    """Reuse ``settings``' sandbox when every node answers, else start it for the run and stop
    it at its end (unless ZDM_KEEP_SANDBOX); a reused one is left with every node running."""
    from zdm.sandbox import local

    if local.saved_settings(settings.directory) == settings and \
            all(n.version for n in local.status(settings, probe=True)):
        handle = MultinodeHandle(settings, started_here=False)
        yield handle
        handle.restore()  # leave it as it was found
        return
    local.up(settings)
    handle = MultinodeHandle(settings, started_here=True)
    try:
        yield handle
    finally:
        if not os.environ.get("ZDM_KEEP_SANDBOX"):
            local.down(settings)


@pytest.fixture(scope="session")
def multinode():
    """A 3-node origin (127.0.0.11-13) and a 3-node target (127.0.0.21-23), one DC each (an
    RF 3 keyspace on either takes QUORUM requests with any one node down), all on CQL 9042 and
    internode 7000 on their own addresses, under .zdm/test-multinode: reused when it already
    answers, otherwise started once for the run (about 130 s on 2 cores) and stopped at its end
    (unless ZDM_KEEP_SANDBOX).  A test that stops a node starts it again
    (``multinode.start_node`` or ``multinode.restore()``)."""
    from zdm.sandbox import layout, local

    settings = local.SandboxSettings(
        directory=Path(os.environ.get("ZDM_TEST_MULTINODE_DIR", ROOT / ".zdm" / "test-multinode")),
        origin_port=layout.MULTINODE_NATIVE_PORT, target_port=layout.MULTINODE_NATIVE_PORT,
        origin_storage_port=layout.MULTINODE_STORAGE_PORT,
        target_storage_port=layout.MULTINODE_STORAGE_PORT,
        origin_nodes=MULTINODE_ORIGIN_NODES, target_nodes=MULTINODE_TARGET_NODES,
        heap_mb=int(os.environ.get("ZDM_TEST_MULTINODE_HEAP_MB", "512")),
        origin_address=os.environ.get("ZDM_TEST_MULTINODE_ORIGIN_ADDRESS"),
        target_address=os.environ.get("ZDM_TEST_MULTINODE_TARGET_ADDRESS"))
    yield from _multinode_fixture(settings)


@pytest.fixture(scope="module")
def multidc():
    """Two datacenters: a 4-node origin, dc1 127.0.0.31-32 and dc2 127.0.0.33-34, and a
    2-node target with dc1 only (127.0.0.41-42), 256 MiB heaps, under .zdm/test-multidc;
    started for the module that asks for it and stopped after it (about 110 s to start on
    2 cores), so that its six nodes do not hold memory and CPU for the rest of the run."""
    from zdm.sandbox import layout, local

    settings = local.SandboxSettings(
        directory=Path(os.environ.get("ZDM_TEST_MULTIDC_DIR", ROOT / ".zdm" / "test-multidc")),
        origin_port=layout.MULTINODE_NATIVE_PORT, target_port=layout.MULTINODE_NATIVE_PORT,
        origin_storage_port=layout.MULTINODE_STORAGE_PORT,
        target_storage_port=layout.MULTINODE_STORAGE_PORT,
        origin_nodes=4, origin_dcs=2, target_nodes=2, heap_mb=256,
        origin_address=os.environ.get("ZDM_TEST_MULTIDC_ORIGIN_ADDRESS", "127.0.0.31"),
        target_address=os.environ.get("ZDM_TEST_MULTIDC_TARGET_ADDRESS", "127.0.0.41"))
    yield from _multinode_fixture(settings)
