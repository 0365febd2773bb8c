"""The proxy's counters: kept per event loop, summed per instance.

Theory of operation: every worker process (and an in-process proxy's one loop) counts in
its own :class:`ProxyStats` with plain integer attributes (an increment is the cheapest
thing Python does), instance-wide and per ``keyspace.table`` (:class:`TableStats`, for
what an operator must act on: async-read mismatches, LWT divergences, writes the
secondary did not take, each with a few sample keys).  :meth:`ProxyStats.snapshot` turns
them into a dict that crosses the worker channel; :func:`merge` sums snapshots into the
instance's view, which the state store, `zdm status` and the metrics publish.

The async-read counters describe one window: they restart when reads become async again
(phase 3 entered anew), and ``async_since`` says when the window opened.
"""

from __future__ import annotations

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
    "lwt_divergences",      # conditional writes whose result differed between the clusters
    "secondary_writes_recorded",  # record mode: rows written to the primary only, recorded
)
#: the counters kept per keyspace.table
TABLE_COUNTERS = ("async_requests", "async_errors", "async_mismatches", "async_skipped",
                  "lwt_divergences", "secondary_writes_recorded")
ASYNC_COUNTERS = ("async_requests", "async_errors", "async_mismatches", "async_skipped")
MAX_SAMPLES = 5


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


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
    __slots__ = (*COUNTERS, "async_since", "tables")

    def __init__(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)
        self.async_since = utc_now()
        self.tables: dict[str, TableStats] = {}

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
    if sinces:
        total.async_since = max(sinces)  # the window every worker has been counting in
    return total


def _rows(frame: Frame, version: int):
    if m.result_kind(frame.body, flags=frame.flags) != ResultKind.ROWS:
        return m.result_kind(frame.body, flags=frame.flags)
    return m.decode_rows(frame.body, version, flags=frame.flags).rows
