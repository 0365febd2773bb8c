"""Prepared statements across two clusters.

Theory of operation: a PREPARE goes to both clusters; the client always sees
origin's prepared id (so the id stays valid when reads move to target), and this
cache maps it to target's id and result-metadata id.  It keeps the query text and
keyspace, so the proxy can re-prepare transparently when a cluster answers
UNPREPARED, and the statement's classification, so an EXECUTE is routed by the
kind of statement that was prepared.  Prepared statements are per cluster, not per
connection, so one cache serves every client connection of a proxy.
"""

from __future__ import annotations

from dataclasses import dataclass

from zdm.cql.classify import Statement


@dataclass(slots=True)
class PreparedEntry:
    query: str
    keyspace: str | None  # the keyspace it was prepared in (USE or v5 WITH_KEYSPACE)
    statement: Statement
    origin_id: bytes
    target_id: bytes
    origin_metadata_id: bytes | None = None
    target_metadata_id: bytes | None = None


class PreparedCache:
    """origin prepared id -> :class:`PreparedEntry`; bounded, oldest evicted first."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._entries: dict[bytes, PreparedEntry] = {}
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, origin_id: bytes) -> PreparedEntry | None:
        return self._entries.get(origin_id)

    def put(self, entry: PreparedEntry) -> None:
        entries = self._entries
        entries.pop(entry.origin_id, None)
        entries[entry.origin_id] = entry
        if len(entries) > self._max:
            del entries[next(iter(entries))]

    def target_ids(self, origin_ids) -> dict[bytes, bytes]:
        """origin id -> target id for those ids that differ (for BATCH rewrites)."""
        out = {}
        for oid in origin_ids:
            entry = self._entries.get(oid)
            if entry is not None and entry.target_id != oid:
                out[oid] = entry.target_id
        return out
