"""What one cluster tells the preflight: :func:`probe_cluster`, the preflight's only I/O.

Theory of operation: one driver session per cluster reads ``system.local`` (release,
partitioner, DSE version), the protocol version the driver negotiated, the schema of every
keyspace (:func:`~zdm.preflight.schema.snapshot_from_metadata`) and, unless asked not to,
a clock sample of every node. The result is a frozen :class:`ClusterProbe`; everything
after it (:mod:`zdm.preflight.checks`) is a pure function of two probes, so tests build
probes by hand instead of clusters.

A node's clock sample compares its ``now()`` with the midpoint of the round trip on this
host and keeps the sample with the shortest round trip, whose half is the uncertainty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cassandra.query import SimpleStatement

from zdm.clusters.connect import describe, session
from zdm.config import ClusterConfig
from zdm.preflight.schema import SchemaSnapshot, snapshot_from_metadata


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

    @property
    def product(self) -> str:
        if self.dse_version:
            return f"DSE {self.dse_version} (Cassandra {self.release_version})"
        return f"Cassandra {self.release_version}"


def probe_cluster(cfg: ClusterConfig, name: str, *, clock: bool = True,
                  samples: int = 3) -> ClusterProbe:
    """Connect (raising :class:`~zdm.clusters.connect.ConnectError`) and read what preflight needs."""
    with session(cfg, name=name) as sess:
        local = sess.execute("SELECT * FROM system.local").one()
        metadata = sess.cluster.metadata
        schema = snapshot_from_metadata(metadata, list(metadata.keyspaces))
        clocks = _clock_samples(sess, samples) if clock else ()
        return ClusterProbe(
            name=name, address=describe(cfg),
            release_version=str(local.release_version), partitioner=str(local.partitioner),
            protocol_version=int(sess.cluster.protocol_version), schema=schema,
            dse_version=getattr(local, "dse_version", None), clock=tuple(clocks))


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
