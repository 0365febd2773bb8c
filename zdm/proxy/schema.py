"""The tables' primary keys, as the proxy knows them: an immutable snapshot and a pure lookup.

Theory of operation: the proxy needs a table's primary key only to name the row of a
divergence it records (:mod:`~zdm.proxy.keys`), which is rare, so the request path never
waits for schema.  One owner -- the instance's control connection to origin
(:mod:`~zdm.proxy.control`) -- reads ``system_schema.columns`` (``system.schema_columns`` on
Cassandra 2.x), follows origin's SCHEMA_CHANGE events, and publishes a new
:class:`KeySchema` each time something changed; every worker swaps its reference to the
newest one.  A snapshot is never modified: :meth:`KeySchema.replaced` returns a new one.

:func:`key_of` is the lookup the request path uses: a pure function of a snapshot, so tests
build snapshots by hand and need no cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple


class TableKey(NamedTuple):
    """A table's primary key: partition key columns, then clustering columns, in order."""

    partition: tuple[str, ...]
    clustering: tuple[str, ...] = ()


#: ``system_schema.columns`` (Cassandra 3.0+): kind is partition_key, clustering, regular, static
COLUMNS_QUERY = "SELECT keyspace_name, table_name, column_name, kind, position FROM system_schema.columns"
#: the same on Cassandra 2.x: kind is partition_key, clustering_key, ...; position component_index
LEGACY_COLUMNS_QUERY = ("SELECT keyspace_name, columnfamily_name, column_name, type, component_index "
                        "FROM system.schema_columns")
#: keyspaces whose tables never reach a divergence record: not read
_SKIPPED = frozenset({"system", "system_schema", "system_auth", "system_distributed", "system_traces",
                      "system_views", "system_virtual_schema"})


class KeySchema:
    """The primary keys of origin's tables at one moment.  Immutable; picklable (it crosses
    to worker processes)."""

    __slots__ = ("tables",)

    def __init__(self, tables: Mapping[tuple[str, str], TableKey] | None = None) -> None:
        self.tables: dict[tuple[str, str], TableKey] = dict(tables or {})

    def replaced(self, fresh: KeySchema, *, keyspace: str | None = None,
                 table: str | None = None) -> KeySchema:
        """A new snapshot: this one with what ``fresh`` says about ``keyspace`` (or only its
        ``table``; both None: everything) taking the place of what was known -- a table
        ``fresh`` lacks was dropped."""
        def covered(ks: str, t: str) -> bool:
            return keyspace is None or (ks == keyspace and (table is None or t == table))

        tables = {k: v for k, v in self.tables.items() if not covered(*k)}
        tables.update({k: v for k, v in fresh.tables.items() if covered(*k)})
        return KeySchema(tables)

    def __len__(self) -> int:
        return len(self.tables)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeySchema) and other.tables == self.tables

    def __repr__(self) -> str:
        return f"KeySchema({len(self.tables)} tables)"

    def __getstate__(self):
        return self.tables

    def __setstate__(self, state) -> None:
        self.tables = state


EMPTY = KeySchema()


def key_of(schema: KeySchema | None, keyspace: str | None, table: str | None) -> TableKey | None:
    """The primary key of ``keyspace.table``; None when the snapshot does not know it."""
    if schema is None or keyspace is None or table is None:
        return None
    return schema.tables.get((keyspace, table))


def from_rows(rows: Iterable[tuple]) -> KeySchema:
    """A snapshot from rows of :data:`COLUMNS_QUERY` or :data:`LEGACY_COLUMNS_QUERY`:
    (keyspace, table, column, kind, position)."""
    parts: dict[tuple[str, str], tuple[dict[int, str], dict[int, str]]] = {}
    for keyspace, table, column, kind, position in rows:
        if keyspace in _SKIPPED or kind not in ("partition_key", "clustering", "clustering_key"):
            continue
        partition, clustering = parts.setdefault((keyspace, table), ({}, {}))
        (partition if kind == "partition_key" else clustering)[position if position is not None else 0] = column
    return KeySchema({name: TableKey(tuple(p[i] for i in sorted(p)), tuple(c[i] for i in sorted(c)))
                      for name, (p, c) in parts.items() if p})
