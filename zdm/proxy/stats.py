"""The proxy's counters: kept per event loop, summed per instance.

Theory of operation: every worker process (and an in-process proxy's one loop) counts in
its own :class:`ProxyStats` with plain integer attributes (an increment is the cheapest
thing Python does), instance-wide and per ``keyspace.table`` (:class:`TableStats`, for
what an operator must act on: async-read mismatches, LWT divergences, writes the
secondary did not take, each with a few sample keys; and LWTs both clusters decided the
same way whose answers still differed, which are no divergence but show rows that differ).  :meth:`ProxyStats.snapshot` turns
them into a dict that crosses the worker channel; :func:`merge` sums snapshots into the
instance's view, which the state store, `zdm status` and the metrics publish.

The async-read counters describe one window: they restart when reads become async again
(phase 3 entered anew), and ``async_since`` says when the window opened.
"""

from __future__ import annotations

import bisect
import datetime
from typing import Callable, Iterable

from zdm.cql import messages as m
from zdm.cql.constants import Opcode, ResultKind
from zdm.cql.frame import Frame
from zdm.proxy.aggregate import Outcome

#: the instance-wide counters, in the order `snapshot` lists them
COUNTERS = (
    "client_connections",   # client connections accepted, ever
    "refused_connections",  # refused: proxy.max_client_connections reached
    "requests",             # requests answered (after the handshake)
    "executes",             # EXECUTE requests among them
    "reprepares",           # statements the proxy prepared again on a cluster that forgot them
    "unknown_prepared",     # EXECUTE/BATCH of an id this worker never saw: answered UNPREPARED
    "heartbeats",
    "async_requests",
    "async_errors",
    "async_mismatches",
    "async_skipped",        # reads in async mode that could not be compared (later pages)
    "lwt_divergences",      # conditional writes the clusters decided differently ([applied])
    "lwt_same_decision_different_values",  # decided the same, answered different current values
    "secondary_writes_recorded",  # record mode: rows written to the primary only, recorded
    "token_aware_replica",  # requests (per cluster) a replica of their partition coordinated
    "token_aware_fallback",  # requests (per cluster) with a known partition sent home: no link yet
)
#: latency buckets, seconds (zdm-proxy's defaults: 1 ms ... 15 s)
BUCKETS = (0.001, 0.004, 0.007, 0.01, 0.025, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
           10.0, 15.0)
#: what a request at the proxy's entry point is, for its latency and in-flight figures
REQUEST_TYPES = ("reads_origin", "reads_target", "writes")
#: how a node's failures are named (zdm-proxy's "error" label)
NODE_ERRORS = {0x1200: "read_timeout", 0x1300: "read_failure", 0x1100: "write_timeout",
               0x1500: "write_failure", 0x1001: "overloaded", 0x1000: "unavailable",
               0x2500: "unprepared"}

#: the counters kept per keyspace.table
TABLE_COUNTERS = ("async_requests", "async_errors", "async_mismatches", "async_skipped",
                  "lwt_divergences", "lwt_same_decision_different_values", "secondary_writes_recorded")
ASYNC_COUNTERS = ("async_requests", "async_errors", "async_mismatches", "async_skipped")
MAX_SAMPLES = 5


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Histogram:
    """Counts per bucket of :data:`BUCKETS` (the last one: above them all) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def add(self, other: dict) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other["counts"])]
        self.total += other["sum"]

    def snapshot(self) -> dict:
        return {"counts": list(self.counts), "sum": self.total}


class NodeStats:
    """One cluster node as one worker sees it: its answers' latency and its failures."""

    __slots__ = ("durations", "errors")

    def __init__(self) -> None:
        self.durations = Histogram()
        self.errors: dict[str, int] = {}

    def answered(self, seconds: float, frame: Frame) -> None:
        self.durations.observe(seconds)
        if frame.opcode == Opcode.ERROR:
            code = int.from_bytes(frame.body[:4], "big") if not frame.flags else \
                m.decode_error(frame.body, flags=frame.flags).code
            self.failed(NODE_ERRORS.get(code, "other"))

    def failed(self, error: str) -> None:
        self.errors[error] = self.errors.get(error, 0) + 1


class TableStats:
    __slots__ = (*TABLE_COUNTERS, "samples")

    def __init__(self) -> None:
        for name in TABLE_COUNTERS:
            setattr(self, name, 0)
        self.samples: list[str] = []  # keys of rows that differed, newest last

    def sample(self, description: str) -> None:
        if description not in self.samples:
            self.samples.append(description)
            del self.samples[:-MAX_SAMPLES]

    def snapshot(self) -> dict:
        return {**{name: getattr(self, name) for name in TABLE_COUNTERS}, "samples": list(self.samples)}


class ProxyStats:
    __slots__ = (*COUNTERS, "async_since", "tables", "durations", "inflight", "failed_reads",
                 "failed_writes", "failed_connections", "nodes", "async_nodes")

    def __init__(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)
        self.async_since = utc_now()
        self.tables: dict[str, TableStats] = {}
        #: latency at the proxy's entry point, and requests in flight, per REQUEST_TYPES
        self.durations = {t: Histogram() for t in REQUEST_TYPES}
        self.inflight = dict.fromkeys(REQUEST_TYPES, 0)
        self.failed_reads = {"origin": 0, "target": 0}           # by the cluster that failed
        self.failed_writes = {"origin": 0, "target": 0, "both": 0}  # by where they failed
        self.failed_connections = {"origin": 0, "target": 0}
        #: "origin|host:port" -> that node's answers; async_nodes: the async reads' answers
        self.nodes: dict[str, NodeStats] = {}
        self.async_nodes: dict[str, NodeStats] = {}

    def node(self, cluster: str, address: str, *, async_reads: bool = False) -> NodeStats:
        nodes = self.async_nodes if async_reads else self.nodes
        key = f"{cluster}|{address}"
        stats = nodes.get(key)
        if stats is None:
            stats = nodes[key] = NodeStats()
        return stats

    def started(self, kind: str) -> None:
        self.inflight[kind] += 1

    def finished(self, kind: str, seconds: float) -> None:
        self.inflight[kind] -= 1
        self.durations[kind].observe(seconds)

    def table(self, name: str) -> TableStats:
        stats = self.tables.get(name)
        if stats is None:
            stats = self.tables[name] = TableStats()
        return stats

    def reset_async(self) -> None:
        """A new async-read window: phase 3 entered (again)."""
        for name in ASYNC_COUNTERS:
            setattr(self, name, 0)
            for table in self.tables.values():
                setattr(table, name, 0)
        self.async_since = utc_now()

    def compare_async_read(self, primary: Outcome, secondary: Outcome, version: int, table: str,
                           describe: Callable[[], str]) -> None:
        """Count one async read; ``describe()`` names the row it read, for a sample."""
        p_ok = isinstance(primary, Frame) and primary.opcode == Opcode.RESULT
        if not p_ok:
            return  # the client got the primary's error: there is nothing to compare
        per_table = self.table(table)
        self.async_requests += 1
        per_table.async_requests += 1
        if not (isinstance(secondary, Frame) and secondary.opcode == Opcode.RESULT):
            self.async_errors += 1
            per_table.async_errors += 1
            return
        try:
            same = _rows(primary, version) == _rows(secondary, version)
        except Exception:  # noqa: BLE001 - an undecodable answer counts as a mismatch
            same = False
        if not same:
            self.async_mismatches += 1
            per_table.async_mismatches += 1
            per_table.sample(describe())

    def skipped_async_read(self, table: str) -> None:
        self.async_skipped += 1
        self.table(table).async_skipped += 1

    def snapshot(self) -> dict:
        out = {name: getattr(self, name) for name in COUNTERS}
        out["async_since"] = self.async_since
        out["tables"] = {name: t.snapshot() for name, t in self.tables.items()}
        out["durations"] = {k: h.snapshot() for k, h in self.durations.items()}
        out["inflight"] = dict(self.inflight)
        for name in ("failed_reads", "failed_writes", "failed_connections"):
            out[name] = dict(getattr(self, name))
        for name in ("nodes", "async_nodes"):
            out[name] = {k: {"durations": n.durations.snapshot(), "errors": dict(n.errors)}
                         for k, n in getattr(self, name).items()}
        return out

    def async_reads(self) -> dict:
        return {"requests": self.async_requests, "errors": self.async_errors,
                "mismatches": self.async_mismatches, "skipped": self.async_skipped,
                "since": self.async_since}


def merge(snapshots: Iterable[dict]) -> ProxyStats:
    """The instance's counters: the sum of its workers'."""
    total = ProxyStats()
    sinces = []
    for snap in snapshots:
        for name in COUNTERS:
            setattr(total, name, getattr(total, name) + snap.get(name, 0))
        if snap.get("async_since"):
            sinces.append(snap["async_since"])
        for name, table in snap.get("tables", {}).items():
            mine = total.table(name)
            for counter in TABLE_COUNTERS:
                setattr(mine, counter, getattr(mine, counter) + table.get(counter, 0))
            for sample in table.get("samples", ()):
                mine.sample(sample)
        for kind, histogram in snap.get("durations", {}).items():
            total.durations[kind].add(histogram)
        for name in ("inflight", "failed_reads", "failed_writes", "failed_connections"):
            mine = getattr(total, name)
            for key, n in snap.get(name, {}).items():
                mine[key] = mine.get(key, 0) + n
        for name in ("nodes", "async_nodes"):
            mine = getattr(total, name)
            for key, node in snap.get(name, {}).items():
                stats = mine.setdefault(key, NodeStats())
                stats.durations.add(node["durations"])
                for error, n in node["errors"].items():
                    stats.errors[error] = stats.errors.get(error, 0) + n
    if sinces:
        total.async_since = max(sinces)  # the window every worker has been counting in
    return total


def _rows(frame: Frame, version: int):
    if m.result_kind(frame.body, flags=frame.flags) != ResultKind.ROWS:
        return m.result_kind(frame.body, flags=frame.flags)
    return m.decode_rows(frame.body, version, flags=frame.flags).rows
