"""Prepared statements across two clusters.

Theory of operation: a PREPARE goes to both clusters; the client always sees
origin's prepared id (so the id stays valid when reads move to target), and this
cache maps it to target's id and result-metadata id.  It keeps the query text and
keyspace, so the proxy can re-prepare transparently when a cluster answers
UNPREPARED, and the statement's classification, so an EXECUTE is routed by the
kind of statement that was prepared.  Prepared statements are per cluster, not per
connection, so one cache serves every client connection of a worker; a worker that
never saw a PREPARE answers UNPREPARED and the driver prepares through it.

A statement rewritten for function replacement (:mod:`~zdm.proxy.functions`) runs as
``exec_query`` on both clusters, under ids of its own on each, while the client keeps
the id of the statement it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zdm.cql.classify import Statement
from zdm.cql.messages import ColumnSpec
from zdm.phases.model import Cluster
from zdm.proxy.routing_key import KeyMarkers


@dataclass(slots=True)
class PreparedEntry:
    query: str
    keyspace: str | None  # the keyspace it was prepared in (USE or v5 WITH_KEYSPACE)
    statement: Statement
    origin_id: bytes      # the id the client has
    target_id: bytes | None  # None: prepared on origin only (never executed on target)
    origin_metadata_id: bytes | None = None
    target_metadata_id: bytes | None = None
    #: for a read of a virtual system table: the result columns origin described
    result_columns: list[ColumnSpec] | None = None
    #: the bind markers of what the clusters run (their names and types)
    binds: list[ColumnSpec] = field(default_factory=list)
    #: function replacement: the statement the clusters run, its id on origin, and where the
    #: generated values go among its markers ((index, kind), see functions.with_markers)
    exec_query: str | None = None
    origin_exec_id: bytes | None = None
    origin_exec_metadata_id: bytes | None = None
    slots: tuple[tuple[int, str], ...] = ()
    #: its table's keyspace and which markers bind the partition key (token-aware forwarding;
    #: None: not known, or a statement the proxy rewrote)
    key_markers: KeyMarkers | None = None

    @property
    def run_query(self) -> str:
        """The text the clusters prepare."""
        return self.exec_query or self.query

    def id_on(self, cluster: Cluster) -> bytes | None:
        """The id ``cluster`` runs this statement under."""
        if cluster is Cluster.ORIGIN:
            return self.origin_exec_id or self.origin_id
        return self.target_id


class PreparedCache:
    """client (origin) prepared id -> :class:`PreparedEntry`; bounded, oldest evicted first."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._entries: dict[bytes, PreparedEntry] = {}
        #: (cluster, the id it runs a statement under) -> the client's id, where they differ
        self._aliases: dict[tuple[Cluster, bytes], bytes] = {}
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, origin_id: bytes) -> PreparedEntry | None:
        return self._entries.get(origin_id)

    def put(self, entry: PreparedEntry) -> None:
        entries = self._entries
        self._forget(entries.pop(entry.origin_id, None))
        entries[entry.origin_id] = entry
        self._alias(entry)
        if len(entries) > self._max:
            self._forget(entries.pop(next(iter(entries))))

    def reprepared(self, entry: PreparedEntry, cluster: Cluster, prepared_id: bytes,
                   metadata_id: bytes | None) -> None:
        """``cluster`` prepared ``entry`` again and gave ``prepared_id``."""
        self._forget(entry)
        if cluster is Cluster.TARGET:
            entry.target_id, entry.target_metadata_id = prepared_id, metadata_id
        elif entry.exec_query is not None:
            entry.origin_exec_id, entry.origin_exec_metadata_id = prepared_id, metadata_id
        else:
            entry.origin_metadata_id = metadata_id
        self._alias(entry)

    def on_cluster(self, cluster: Cluster, prepared_id: bytes) -> PreparedEntry | None:
        """The entry ``cluster`` runs under ``prepared_id``."""
        entry = self._entries.get(self._aliases.get((cluster, prepared_id), prepared_id))
        return entry if entry is not None and entry.id_on(cluster) == prepared_id else None

    def target_ids(self, origin_ids) -> dict[bytes, bytes]:
        """client id -> target id for those ids that differ (for BATCH rewrites)."""
        out = {}
        for oid in origin_ids:
            entry = self._entries.get(oid)
            if entry is not None and entry.target_id is not None and entry.target_id != oid:
                out[oid] = entry.target_id
        return out

    def _alias(self, entry: PreparedEntry) -> None:
        for cluster in Cluster:
            pid = entry.id_on(cluster)
            if pid is not None and pid != entry.origin_id:
                self._aliases[cluster, pid] = entry.origin_id

    def _forget(self, entry: PreparedEntry | None) -> None:
        if entry is None:
            return
        for cluster in Cluster:
            pid = entry.id_on(cluster)
            if pid is not None and self._aliases.get((cluster, pid)) == entry.origin_id:
                del self._aliases[cluster, pid]
