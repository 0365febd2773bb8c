"""The proxy's counters: kept per event loop, summed per instance.

Theory of operation: every worker process (and an in-process proxy's one loop) counts in
its own :class:`ProxyStats` with plain integer attributes (an increment is the cheapest
thing Python does).  :meth:`ProxyStats.snapshot` turns them into a dict that crosses the
worker channel; :func:`merge` sums snapshots into the instance's view, which the state
store and `zdm status` publish.
"""

from __future__ import annotations

import datetime
from typing import Iterable

from zdm.cql import messages as m
from zdm.cql.constants import Opcode, ResultKind
from zdm.cql.frame import Frame
from zdm.proxy.aggregate import Outcome

#: the summed counters, in the order `snapshot` lists them
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
)


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class ProxyStats:
    __slots__ = (*COUNTERS, "async_since")

    def __init__(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)
        self.async_since = utc_now()

    def compare_async_read(self, primary: Outcome, secondary: Outcome, version: int) -> None:
        self.async_requests += 1
        p_ok = isinstance(primary, Frame) and primary.opcode == Opcode.RESULT
        s_ok = isinstance(secondary, Frame) and secondary.opcode == Opcode.RESULT
        if not p_ok:
            return
        if not s_ok:
            self.async_errors += 1
            return
        try:
            same = _rows(primary, version) == _rows(secondary, version)
        except Exception:  # noqa: BLE001 - an undecodable answer counts as a mismatch
            same = False
        if not same:
            self.async_mismatches += 1

    def snapshot(self) -> dict:
        out = {name: getattr(self, name) for name in COUNTERS}
        out["async_since"] = self.async_since
        return out

    @classmethod
    def from_snapshot(cls, snapshot: dict) -> "ProxyStats":
        stats = cls()
        for name in COUNTERS:
            setattr(stats, name, snapshot.get(name, 0))
        stats.async_since = snapshot.get("async_since", stats.async_since)
        return stats

    def async_reads(self) -> dict:
        return {"requests": self.async_requests, "errors": self.async_errors,
                "mismatches": self.async_mismatches, "since": self.async_since}


def merge(snapshots: Iterable[dict]) -> ProxyStats:
    """The instance's counters: the sum of its workers'."""
    total = ProxyStats()
    sinces = []
    for snap in snapshots:
        for name in COUNTERS:
            setattr(total, name, getattr(total, name) + snap.get(name, 0))
        if snap.get("async_since"):
            sinces.append(snap["async_since"])
    if sinces:
        total.async_since = min(sinces)
    return total


def _rows(frame: Frame, version: int):
    if m.result_kind(frame.body, flags=frame.flags) != ResultKind.ROWS:
        return m.result_kind(frame.body, flags=frame.flags)
    return m.decode_rows(frame.body, version, flags=frame.flags).rows
