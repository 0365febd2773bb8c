"""Test session fixtures: one real sandbox (origin 9042, target 9043) for the whole run.

If both ports already answer CQL (a developer's `zdm sandbox up`), that sandbox is
reused and left running; otherwise one is started under .zdm/test-sandbox and stopped
when the run ends.  Unit tests never touch it: only tests that ask for these fixtures
(all under tests/integration/, marked `integration`) pay for Cassandra.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from zdm.config import ClusterConfig, Config
from zdm.sandbox.local import SandboxSettings

ORIGIN_PORT = int(os.environ.get("ZDM_TEST_ORIGIN_PORT", "9042"))
TARGET_PORT = int(os.environ.get("ZDM_TEST_TARGET_PORT", "9043"))
ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/integration/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


def _answers(port: int) -> bool:
    from zdm.sandbox import node

    if not node.port_open(port):
        return False
    spec = node.NodeSpec("probe", port, 0, Path("."))
    try:
        node.cql_login(spec, timeout=5)
        return True
    except Exception:
        return False


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


@pytest.fixture(scope="session")
def zdm_config(sandbox, tmp_path_factory) -> Config:
    state = tmp_path_factory.mktemp("state")
    return Config(origin=ClusterConfig(port=sandbox.origin_port),
                  target=ClusterConfig(port=sandbox.target_port), state_dir=state)


@pytest.fixture(scope="session")
def origin_session(zdm_config):
    from zdm.connect import session

    with session(zdm_config.origin, name="origin") as s:
        yield s


@pytest.fixture(scope="session")
def target_session(zdm_config):
    from zdm.connect import session

    with session(zdm_config.target, name="target") as s:
        yield s


@pytest.fixture()
def keyspace(origin_session, target_session):
    """A fresh keyspace of the same name on both clusters, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    for s in (origin_session, target_session):
        s.execute(f"CREATE KEYSPACE {name} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    yield name
    for s in (origin_session, target_session):
        s.execute(f"DROP KEYSPACE IF EXISTS {name}")
