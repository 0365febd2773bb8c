"""What one cluster tells the preflight: :func:`probe_cluster`, the preflight's only I/O.

Theory of operation: one driver session per cluster reads ``system.local`` (release,
partitioner, DSE version), the protocol version the driver negotiated, the schema of every
keyspace (:func:`~zdm.preflight.schema.snapshot_from_metadata`) and, unless asked not to,
its topology and a clock sample of every node. The result is a frozen :class:`ClusterProbe`;
everything after it (:mod:`zdm.preflight.checks`) is a pure function of two probes, so tests
build probes by hand instead of clusters.

The topology is the proxy's own :class:`~zdm.proxy.cluster_topology.ClusterTopology`, made
by the same :func:`~zdm.proxy.cluster_topology.from_system_tables` from the same rows
(``system.local`` and its peers read on one node, and every keyspace's replication), so the
preflight sees the nodes and DCs the proxy will see.  A node is down when the driver could
not connect to it from this host (the probe waits until the driver has tried every node).
To know that of every node, and to read the topology at all when ``local_dc`` names a DC
the cluster lacks (the driver would then reach no node), the session of a topology probe
ignores ``local_dc`` and goes round every node; the probe keeps ``local_dc`` and the
contact points for the checks to judge.

A node's clock sample compares its ``now()`` with the midpoint of the round trip on this
host and keeps the sample with the shortest round trip, whose half is the uncertainty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from cassandra import InvalidRequest
from cassandra.policies import HostDistance
from cassandra.query import SimpleStatement

from zdm.clusters.connect import describe, session
from zdm.config import ClusterConfig
from zdm.preflight.schema import SchemaSnapshot, snapshot_from_metadata
from zdm.proxy.cluster_topology import ClusterTopology, from_system_tables, legacy_replication


@dataclass(frozen=True)
class ClockSample:
    node: str
    skew_s: float         # node's clock minus this host's
    uncertainty_s: float  # half the round trip of the sample


@dataclass(frozen=True)
class ClusterProbe:
    """What one cluster told us; ``schema`` covers every keyspace it has."""

    name: str
    address: str
    release_version: str
    partitioner: str
    protocol_version: int
    schema: SchemaSnapshot
    dse_version: str | None = None
    clock: tuple[ClockSample, ...] = ()
    #: nodes, DCs and every keyspace's replication; None when not read (``topology=False``)
    topology: ClusterTopology | None = None
    #: ``<name>.local_dc`` and the contact points as configured (what the proxy chooses its
    #: local DC from); no contact points with a secure connect bundle
    local_dc_setting: str | None = None
    contact_points: tuple[str, ...] = ()

    @property
    def product(self) -> str:
        if self.dse_version:
            return f"DSE {self.dse_version} (Cassandra {self.release_version})"
        return f"Cassandra {self.release_version}"


def probe_cluster(cfg: ClusterConfig, name: str, *, clock: bool = True, topology: bool = True,
                  samples: int = 3) -> ClusterProbe:
    """Connect (raising :class:`~zdm.clusters.connect.ConnectError`) and read what preflight
    needs; ``topology=False`` reads the schema and release only, through the DC the
    configuration names (what the phase machine's schema fingerprint needs)."""
    with session(replace(cfg, local_dc=None) if topology else cfg, name=name) as sess:
        metadata = sess.cluster.metadata
        reached, untried = _await_pools(sess, cfg.connect_timeout_s) if topology else (set(), set())
        # system.local and the peers of one node, so that together they name every node once
        host = next(iter(sorted(reached, key=lambda h: str(h.endpoint))), None)
        local = sess.execute("SELECT * FROM system.local", host=host).one()
        schema = snapshot_from_metadata(metadata, list(metadata.keyspaces))
        nodes = _topology(sess, host, local, cfg.port, reached | untried) if topology else None
        clocks = _clock_samples(sess, samples) if clock else ()
        return ClusterProbe(
            name=name, address=describe(cfg),
            release_version=str(local.release_version), partitioner=str(local.partitioner),
            protocol_version=int(sess.cluster.protocol_version), schema=schema,
            dse_version=getattr(local, "dse_version", None), clock=tuple(clocks),
            topology=nodes, local_dc_setting=cfg.local_dc,
            contact_points=() if cfg.secure_connect_bundle else tuple(cfg.contact_points))


def _await_pools(sess: Any, timeout_s: float) -> tuple[set[Any], set[Any]]:
    """The driver's hosts it holds a connection pool to, once it has tried every host (or
    ``timeout_s`` later), and those it never tries (another DC than a secure connect bundle's):
    a session is returned as soon as it can serve a request, while the pools to the other
    nodes are still being opened, and their hosts count as up until then."""
    deadline = time.monotonic() + timeout_s + 1.0
    untried = {h for h in sess.cluster.metadata.all_hosts()
               if sess.cluster.profile_manager.distance(h) == HostDistance.IGNORED}
    while True:
        pooled = set(sess.get_pool_state())
        pending = [h for h in sess.cluster.metadata.all_hosts()
                   if h not in pooled and h not in untried and h.is_up is not False]
        if not pending or time.monotonic() > deadline:
            return pooled, untried
        time.sleep(0.05)


def _topology(sess: Any, host: Any, local: Any, port: int, reached: set[Any]) -> ClusterTopology:
    """The cluster's topology from the rows the proxy reads; a node the driver knows but
    did not reach (``reached``: connected to, or never tried) from here is down."""
    try:
        peers = sess.execute("SELECT * FROM system.peers_v2", host=host)
    except InvalidRequest:  # before Cassandra 4.0
        peers = sess.execute("SELECT * FROM system.peers", host=host)
    try:
        keyspaces = {r.keyspace_name: r.replication or {} for r in sess.execute(
            "SELECT keyspace_name, replication FROM system_schema.keyspaces", host=host)}
    except InvalidRequest:  # Cassandra 2.x
        keyspaces = {r.keyspace_name: legacy_replication(r.strategy_class, r.strategy_options)
                     for r in sess.execute("SELECT keyspace_name, strategy_class, strategy_options "
                                           "FROM system.schema_keyspaces", host=host)}
    found = from_system_tables(local._asdict(), [r._asdict() for r in peers], keyspaces,
                               default_port=port)
    down = {str(h.host_id) for h in sess.cluster.metadata.all_hosts() if h not in reached}
    for node in found.nodes:
        if node.host_id in down:
            found = found.with_status(node.address, node.port, False)
    return found


def _clock_samples(sess: Any, samples: int) -> list[ClockSample]:
    """Each node's clock against this host's: the node's ``now()`` against the midpoint
    of the round trip, keeping the sample with the shortest round trip."""
    query = SimpleStatement("SELECT toUnixTimestamp(now()) FROM system.local")
    out = []
    for host in sorted(sess.cluster.metadata.all_hosts(), key=lambda h: str(h.endpoint)):
        if host.is_up is False:
            continue
        best: ClockSample | None = None
        for _ in range(samples):
            try:
                before = time.time()
                row = sess.execute(query, host=host).one()
                after = time.time()
            except Exception:  # noqa: BLE001 - a node that cannot answer is just not sampled
                break
            sample = ClockSample(str(host.endpoint), row[0] / 1000.0 - (before + after) / 2,
                                 (after - before) / 2)
            if best is None or sample.uncertainty_s < best.uncertainty_s:
                best = sample
        if best is not None:
            out.append(best)
    return out
