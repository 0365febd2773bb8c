"""Prepared statements across two clusters.

Theory of operation: a PREPARE goes to both clusters; the client always sees
origin's prepared id (so the id stays valid when reads move to target), and this
cache maps it to target's id and result-metadata id.  It keeps the query text and
keyspace, so the proxy can re-prepare transparently when a cluster answers
UNPREPARED, and the statement's classification, so an EXECUTE is routed by the
kind of statement that was prepared.  Prepared statements are per cluster, not per
connection, so one cache serves every client connection of a worker; a worker that
never saw a PREPARE answers UNPREPARED and the driver prepares through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zdm.cql.classify import Statement
from zdm.cql.messages import ColumnSpec
from zdm.phases.model import Cluster


@dataclass(slots=True)
class PreparedEntry:
    query: str
    keyspace: str | None  # the keyspace it was prepared in (USE or v5 WITH_KEYSPACE)
    statement: Statement
    origin_id: bytes
    target_id: bytes | None  # None: prepared on origin only (never executed on target)
    origin_metadata_id: bytes | None = None
    target_metadata_id: bytes | None = None
    #: for a read of a virtual system table: the result columns origin described
    result_columns: list[ColumnSpec] | None = None
    #: the bind markers origin described (their names and types)
    binds: list[ColumnSpec] = field(default_factory=list)

    def id_on(self, cluster: Cluster) -> bytes:
        return self.origin_id if cluster is Cluster.ORIGIN else self.target_id


class PreparedCache:
    """origin prepared id -> :class:`PreparedEntry`; bounded, oldest evicted first."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._entries: dict[bytes, PreparedEntry] = {}
        self._by_target: dict[bytes, bytes] = {}  # target id -> origin id, where they differ
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, origin_id: bytes) -> PreparedEntry | None:
        return self._entries.get(origin_id)

    def put(self, entry: PreparedEntry) -> None:
        entries = self._entries
        self._forget(entries.pop(entry.origin_id, None))
        entries[entry.origin_id] = entry
        if entry.target_id is not None and entry.target_id != entry.origin_id:
            self._by_target[entry.target_id] = entry.origin_id
        if len(entries) > self._max:
            self._forget(entries.pop(next(iter(entries))))

    def retarget(self, entry: PreparedEntry, target_id: bytes, metadata_id: bytes | None) -> None:
        """Target prepared ``entry`` again and gave ``target_id``."""
        self._by_target.pop(entry.target_id, None)
        entry.target_id, entry.target_metadata_id = target_id, metadata_id
        if target_id != entry.origin_id:
            self._by_target[target_id] = entry.origin_id

    def on_cluster(self, cluster: Cluster, prepared_id: bytes) -> PreparedEntry | None:
        """The entry whose id on ``cluster`` is ``prepared_id``."""
        if cluster is Cluster.ORIGIN:
            return self._entries.get(prepared_id)
        entry = self._entries.get(self._by_target.get(prepared_id, prepared_id))
        return entry if entry is not None and entry.target_id == prepared_id else None

    def target_ids(self, origin_ids) -> dict[bytes, bytes]:
        """origin id -> target id for those ids that differ (for BATCH rewrites)."""
        out = {}
        for oid in origin_ids:
            entry = self._entries.get(oid)
            if entry is not None and entry.target_id is not None and entry.target_id != oid:
                out[oid] = entry.target_id
        return out

    def _forget(self, entry: PreparedEntry | None) -> None:
        if entry is not None and self._by_target.get(entry.target_id) == entry.origin_id:
            del self._by_target[entry.target_id]
