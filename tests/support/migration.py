"""A migration on disk for tests that need no cluster: a zdm.yaml (with passwords, so a test
can prove none leaks), a file state store, clusters that answer fixed schemas (the preflight's
probe replaced, as tests/unit/test_cli_phases.py does), and proxies simulated by writing
their records into the state directory exactly as `zdm proxy start` does."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from zdm.clock import iso, utcnow
from zdm.clusters.connect import ConnectError
from zdm.config import Config, load_config
from zdm.phases import MigrationState, Phase
from zdm.phases.state import RoutingStatus
from zdm.preflight import ClockSample, ClusterProbe, record_preflight, run_preflight
from zdm.preflight.schema import KeyspaceSchema, SchemaSnapshot, TableSchema
from zdm.state import FileStateStore

ORIGIN_PASSWORD = "origin-pw-Xq81-never-shown"
TARGET_PASSWORD = "target-pw-Zr27-never-shown"
TABLE = TableSchema("app", "t", {"k": "int", "v": "text"}, ("k",))


def probe(name: str, *tables: TableSchema) -> ClusterProbe:
    schema = SchemaSnapshot({"app": KeyspaceSchema("app", {t.name: t for t in tables})})
    return ClusterProbe(name, "127.0.0.1:9042", "5.0.8", "Murmur3Partitioner", 5, schema,
                        clock=(ClockSample("127.0.0.1:9042", 0.002, 0.001),))


@dataclass
class Clusters:
    """What the fake clusters answer; tests change ``target`` or make one unreachable."""

    origin: ClusterProbe = field(default_factory=lambda: probe("origin", TABLE))
    target: ClusterProbe = field(default_factory=lambda: probe("target", TABLE))
    down: set[str] = field(default_factory=set)
    probes: int = 0

    def probe(self, cfg, name, **kw) -> ClusterProbe:
        self.probes += 1
        if name in self.down:
            raise ConnectError(f"{name} (127.0.0.1:{cfg.port}): not reachable: refused",
                               hint=f"check {name}.contact_points")
        return getattr(self, name)


@dataclass
class Migration:
    config: Config
    store: FileStateStore
    clusters: Clusters

    def at_phase(self, phase: Phase, evidence: dict | None = None) -> None:
        """Start at ``phase`` with its routing applied (revision 1)."""
        self.store.write(MigrationState(phase=phase, revision=1, routing_status=RoutingStatus(1, True),
                                        evidence=evidence or {}), expected_revision=0)

    def preflight(self) -> None:
        """Run the real preflight against the fake clusters, and record it."""
        report = run_preflight(self.config)
        assert report.passed, [c for c in report.checks if c.status.name == "FAIL"]
        record_preflight(self.store, report, "tester")

    def proxy(self, name: str, *, connected=(True, True), ack: int | None = None,
              heartbeat: bool = True, **fields) -> None:
        """A running proxy's record, as the proxy writes it once a second."""
        if name not in self.store.proxy_records():
            self.store.register_proxy(name, "127.0.0.1:14002")
        values = dict(pid=os.getpid(), origin_connected=connected[0],
                      target_connected=connected[1], **fields)
        if heartbeat:
            values["heartbeat_at"] = iso(utcnow())
        self.store.update_proxy(name, **values)
        if ack is not None:
            self.store.ack_routing(name, ack)

    def state_bytes(self) -> bytes | None:
        return self.store.path.read_bytes() if self.store.path.exists() else None

    def journal_bytes(self) -> bytes | None:
        path = self.store.journal_path
        return path.read_bytes() if path.exists() else None


def make_migration(tmp_path: Path, monkeypatch) -> Migration:
    from zdm.preflight import run as preflight_run

    path = tmp_path / "zdm.yaml"
    path.write_text("state_dir: st\n"
                    f"origin: {{username: app, password: {ORIGIN_PASSWORD}}}\n"
                    f"target: {{username: app, password: {TARGET_PASSWORD}}}\n")
    clusters = Clusters()
    monkeypatch.setattr(preflight_run, "probe_cluster", clusters.probe)
    config = load_config(path)
    return Migration(config, FileStateStore(config.state_dir), clusters)
