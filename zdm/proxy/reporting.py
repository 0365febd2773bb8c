"""What a proxy instance tells the world about itself: the Prometheus scrape, the health
endpoints, and the live figures its record in the state store carries for `zdm status`.

Theory of operation: every figure comes from the workers' counters, summed at the moment
(:func:`~zdm.proxy.stats.merge`; a scrape asks each worker first, so it is exact), and the
instance's own facts (phase, routing, control connections).  Readiness follows zdm-proxy:
UP (200) while both control connections are up, DOWN (503, with the reason) otherwise.
"""

from __future__ import annotations

import asyncio
import json
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from zdm.state.divergences import DivergenceLog
from zdm.proxy.metrics import Collector, Snapshot
from zdm.proxy.stats import BUCKETS, COUNTERS, ProxyStats


class Reporting:
    def __init__(self, server) -> None:
        self.server = server
        self.collector = Collector(server.config.proxy.metrics_prefix)
        self._registry = CollectorRegistry()
        self._registry.register(self.collector)
        self._last: tuple[float, ProxyStats] | None = None

    def live(self, stats: ProxyStats) -> dict | None:
        """Figures over the last publishing interval, for `zdm status`."""
        now = time.monotonic()
        last, self._last = self._last, (now, stats)
        if last is None:
            return None
        seconds, before = now - last[0], last[1]
        requests = stats.requests - before.requests
        failed = sum(stats.failed_reads.values()) + sum(stats.failed_writes.values()) - \
            sum(before.failed_reads.values()) - sum(before.failed_writes.values())
        p99 = {}
        for cluster in ("origin", "target"):
            counts = [0] * (len(BUCKETS) + 1)
            for key, node in stats.nodes.items():
                if key.startswith(cluster + "|"):
                    old = before.nodes.get(key)
                    for i, c in enumerate(node.durations.counts):
                        counts[i] += c - (old.durations.counts[i] if old else 0)
            p99[cluster] = _quantile_ms(counts, 0.99)
        return {"requests_per_s": round(requests / seconds, 1) if seconds else 0.0,
                "error_rate": round(failed / requests, 6) if requests else 0.0, "p99_ms": p99,
                "divergences": stats.lwt_divergences + stats.secondary_writes_recorded +
                stats.async_mismatches}

    async def metrics(self) -> tuple[int, str, bytes]:
        server = self.server
        await asyncio.gather(*(w.refresh_stats() for w in server.workers))
        log_ = server.registration.divergences() if server.registration is not None else \
            DivergenceLog(server.config.state_dir)
        pending, resolved = await asyncio.to_thread(lambda: (log_.summary(), log_.resolved_summary()))
        gauges: dict = {"client_connections": 0, "pscache_entries": 0, "connections": {}}
        for w in server.workers:
            g = w.stats_snapshot().get("gauges", {})
            gauges["client_connections"] += g.get("client_connections", 0)
            gauges["pscache_entries"] += g.get("pscache_entries", 0)
            for cluster, nodes in g.get("connections", {}).items():
                mine = gauges["connections"].setdefault(cluster, {})
                for node, n in nodes.items():
                    mine[node] = mine.get(node, 0) + n
        self.collector.snapshot = Snapshot(
            server.stats, gauges=gauges, phase=None if server.phase is None else int(server.phase),
            routing=server.routing, revision=server.routing_revision,
            connected={c.value: up for c, up in server.control.connected.items()},
            workers=len(server.workers), pending=pending, resolved=resolved)
        return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)

    async def liveness(self) -> tuple[int, str, bytes]:
        return 200, "text/plain", b"OK"

    async def readiness(self) -> tuple[int, str, bytes]:
        """zdm-proxy's readiness: UP while both control connections are up, else 503."""
        server = self.server
        connected = server.control.connected
        report = {"Status": "UP" if all(connected.values()) and not server.draining else "DOWN"}
        for cluster, backend_up in connected.items():
            address = server.control.connections.get(cluster)
            report[f"{cluster.value.capitalize()}Status"] = {
                "Addr": f"{address.address[0]}:{address.address[1]}" if address else None,
                "Status": "UP" if backend_up else "DOWN"}
        if server.draining:
            report["Reason"] = "shutting down"
        elif not all(connected.values()):
            down = [c.value for c, up in connected.items() if not up]
            report["Reason"] = f"no connection to {' and '.join(down)}"
        return (200 if report["Status"] == "UP" else 503), "application/json", json.dumps(report).encode()


def counters(stats: ProxyStats) -> dict:
    """The instance's counters as its record keeps them (without the histograms)."""
    snap = stats.snapshot()
    return {k: snap[k] for k in (*COUNTERS, "async_since", "tables")}


def _quantile_ms(counts: list[int], q: float) -> float | None:
    """The bucket bound (ms) below which a fraction ``q`` of the observations fall."""
    total = sum(counts)
    if not total:
        return None
    seen = 0
    for bound, count in zip((*BUCKETS, float("inf")), counts):
        seen += count
        if seen >= q * total:
            return bound * 1000 if bound != float("inf") else None
    return None
