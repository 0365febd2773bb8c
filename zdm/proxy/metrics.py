"""The proxy instance's Prometheus metrics: zdm-proxy's names where the two share a figure, zdm's own
for what zdm-proxy lacks.

Theory of operation: the workers count (:mod:`~zdm.proxy.stats`); at each scrape the instance
asks every worker for its counters, sums them (:func:`~zdm.proxy.stats.merge`) and this
collector turns the sum into metric families -- one view of the instance, whatever the number
of worker processes.  Names carry ``proxy.metrics_prefix`` (``zdm`` by default, as zdm-proxy).

Shared with zdm-proxy (``proxy/pkg/metrics``): ``proxy_request_duration_seconds{type}``,
``proxy_inflight_requests_total{type}``, ``proxy_failed_reads_total{cluster}``,
``proxy_failed_writes_total{failed_on}``, ``proxy_failed_connections_total{cluster}``,
``client_connections_total``, ``pscache_entries_total``, ``pscache_miss_total``, and per node
``{origin,target,async}_request_duration_seconds{node}``,
``{origin,target,async}_requests_failed_total{error,node}``,
``{origin,target}_connections_total{node}``.

zdm's own, per ``keyspace``/``table``: async reads, their mismatches, errors and skipped later
pages; LWT divergences (``[applied]`` differed: recorded for repair) and LWTs decided the
same way with different current values (counted only); writes recorded in record mode; recorded rows pending and resolved.
And the migration: ``phase``, ``routing_primary{cluster}``, ``routing_async_reads``,
``routing_revision``, ``cluster_connected{cluster}``, ``workers``.
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from zdm.proxy.stats import BUCKETS, Histogram, ProxyStats

#: every metric name this module exports, without the prefix (the dashboard test reads it)
NAMES = (
    "proxy_request_duration_seconds", "proxy_inflight_requests_total", "proxy_failed_reads_total",
    "proxy_failed_writes_total", "proxy_failed_connections_total", "client_connections_total",
    "pscache_entries_total", "pscache_miss_total",
    "origin_request_duration_seconds", "target_request_duration_seconds", "async_request_duration_seconds",
    "origin_requests_failed_total", "target_requests_failed_total", "async_requests_failed_total",
    "origin_connections_total", "target_connections_total",
    "requests_total", "reprepares_total", "refused_connections_total", "proxy_token_aware_requests_total",
    "async_reads_total", "async_read_mismatches_total", "async_read_errors_total", "async_reads_skipped_total",
    "lwt_divergences_total", "lwt_same_decision_different_values_total",
    "secondary_writes_recorded_total", "divergences_pending", "divergences_resolved_total",
    "phase", "routing_primary", "routing_async_reads", "routing_revision", "cluster_connected", "workers",
)


class Snapshot:
    """What one scrape shows: the summed counters and the instance's own facts."""

    def __init__(self, stats: ProxyStats, *, gauges: dict, phase: int | None, routing, revision: int | None,
                 connected: dict[str, bool], workers: int, pending: dict, resolved: dict) -> None:
        self.stats = stats
        self.gauges = gauges          # summed worker gauges: client connections, pscache, per node
        self.phase = phase
        self.routing = routing
        self.revision = revision
        self.connected = connected
        self.workers = workers
        self.pending = pending        # "ks.table" -> {kind: records pending}
        self.resolved = resolved      # "ks.table" -> {kind: records resolved}


class Collector:
    """A prometheus_client collector over the latest :class:`Snapshot` (set before each scrape)."""

    def __init__(self, prefix: str = "zdm") -> None:
        self.prefix = prefix
        self.snapshot: Snapshot | None = None

    def describe(self):
        return []  # no fixed description: the families depend on the snapshot

    def collect(self) -> Iterable:
        snap = self.snapshot
        if snap is None:
            return
        p, s = self.prefix, snap.stats
        yield _histograms(f"{p}_proxy_request_duration_seconds", "Latency of requests at the proxy's entry point",
                          ["type"], {(k,): h for k, h in s.durations.items()})
        yield _gauge(f"{p}_proxy_inflight_requests_total", "Requests in flight in the proxy", ["type"],
                     {(k,): n for k, n in s.inflight.items()})
        yield _counter(f"{p}_proxy_failed_reads", "Reads that failed, by the cluster that failed them",
                       ["cluster"], {(k,): n for k, n in s.failed_reads.items()})
        yield _counter(f"{p}_proxy_failed_writes", "Writes that failed, by where they failed", ["failed_on"],
                       {(k,): n for k, n in s.failed_writes.items()})
        yield _counter(f"{p}_proxy_failed_connections", "Connections to a cluster that could not be made",
                       ["cluster"], {(k,): n for k, n in s.failed_connections.items()})
        yield _gauge(f"{p}_client_connections_total", "Client connections open", [],
                     {(): snap.gauges.get("client_connections", 0)})
        yield _gauge(f"{p}_pscache_entries_total", "Prepared statements in the proxy's caches", [],
                     {(): snap.gauges.get("pscache_entries", 0)})
        yield _counter(f"{p}_pscache_miss", "EXECUTEs of a statement a worker had not seen (answered UNPREPARED)",
                       [], {(): s.unknown_prepared})
        for cluster in ("origin", "target"):
            nodes = {k.split("|", 1)[1]: v for k, v in s.nodes.items() if k.startswith(cluster + "|")}
            yield _histograms(f"{p}_{cluster}_request_duration_seconds", f"Latency of {cluster}'s answers",
                              ["node"], {(n,): v.durations for n, v in nodes.items()})
            yield _counter(f"{p}_{cluster}_requests_failed", f"Requests that failed on {cluster}",
                           ["error", "node"], {(e, n): c for n, v in nodes.items() for e, c in v.errors.items()})
            yield _gauge(f"{p}_{cluster}_connections_total", f"The proxy's connections to {cluster}", ["node"],
                         {(n,): c for n, c in snap.gauges.get("connections", {}).get(cluster, {}).items()})
        anodes = {k.split("|", 1)[1]: v for k, v in s.async_nodes.items()}
        yield _histograms(f"{p}_async_request_duration_seconds", "Latency of async reads (phase 3)",
                          ["node"], {(n,): v.durations for n, v in anodes.items()})
        yield _counter(f"{p}_async_requests_failed", "Async reads that failed", ["error", "node"],
                       {(e, n): c for n, v in anodes.items() for e, c in v.errors.items()})
        yield _counter(f"{p}_requests", "Requests answered", [], {(): s.requests})
        yield _counter(f"{p}_proxy_token_aware_requests",
                       "Requests with a known partition, per cluster leg: coordinated by a replica, "
                       "or sent to the connection's own node while no link to one was ready",
                       ["outcome"], {("replica",): s.token_aware_replica, ("home",): s.token_aware_fallback})
        yield _counter(f"{p}_reprepares", "Statements prepared again on a cluster that forgot them", [],
                       {(): s.reprepares})
        yield _counter(f"{p}_refused_connections", "Clients refused: proxy.max_client_connections reached", [],
                       {(): s.refused_connections})
        tables = {tuple(t.split(".", 1)) if "." in t else (t, ""): v for t, v in s.tables.items()}
        for name, attr, text in (
                ("async_reads", "async_requests", "Async reads compared (phase 3)"),
                ("async_read_mismatches", "async_mismatches", "Async reads whose answers differed"),
                ("async_read_errors", "async_errors", "Async reads target failed"),
                ("async_reads_skipped", "async_skipped", "Async-mode reads not compared (later pages)"),
                ("lwt_divergences", "lwt_divergences", "Conditional writes the clusters decided differently"),
                ("lwt_same_decision_different_values", "lwt_same_decision_different_values",
                 "Conditional writes both clusters decided the same way, answering different current values"),
                ("secondary_writes_recorded", "secondary_writes_recorded",
                 "Writes the secondary missed, recorded for repair")):
            yield _counter(f"{p}_{name}", text, ["keyspace", "table"],
                           {k: getattr(v, attr) for k, v in tables.items()})
        yield _gauge(f"{p}_divergences_pending", "Rows recorded as divergent, not yet resolved",
                     ["keyspace", "table", "kind"], _by_table_kind(snap.pending))
        yield _counter(f"{p}_divergences_resolved", "Recorded rows re-checked or repaired",
                       ["keyspace", "table", "kind"], _by_table_kind(snap.resolved))
        if snap.phase is not None:
            yield _gauge(f"{p}_phase", "The migration's phase (0-5)", [], {(): snap.phase})
        yield _gauge(f"{p}_routing_primary", "1 for the cluster reads go to", ["cluster"],
                     {(c,): int(snap.routing.primary.value == c) for c in ("origin", "target")})
        yield _gauge(f"{p}_routing_async_reads", "1 while reads are mirrored to the secondary (phase 3)", [],
                     {(): int(snap.routing.read_mode.value == "dual_async")})
        if snap.revision is not None:
            yield _gauge(f"{p}_routing_revision", "The routing revision the instance applies", [],
                         {(): snap.revision})
        yield _gauge(f"{p}_cluster_connected", "1 while the proxy's control connection to it is up", ["cluster"],
                     {(c,): int(up) for c, up in snap.connected.items()})
        yield _gauge(f"{p}_workers", "Worker processes serving clients", [], {(): snap.workers})


def _by_table_kind(counts: dict) -> dict:
    out = {}
    for table, kinds in counts.items():
        ks, _, name = table.partition(".")
        for kind, n in kinds.items():
            out[ks, name, kind] = n
    return out


def _counter(name: str, text: str, labels: list[str], values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


def _gauge(name: str, text: str, labels: list[str], values: dict) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


def _histograms(name: str, text: str, labels: list[str], values: dict[tuple, Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, text, labels=labels)
    for key, h in values.items():
        cumulative, running = [], 0
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), h.counts):
            running += count
            cumulative.append((bound, running))
        family.add_metric(list(key), cumulative, h.total)
    return family
