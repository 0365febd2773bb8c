"""What zdm needs to know about one table, and the range scan that reads it with cell metadata.

A scan row is a plain tuple laid out as::

    token, *partition_key, *clustering_key, then per non-key column:
      simple (incl. frozen, tuple, vector)  value, WRITETIME(c), TTL(c)
      list / set / map (non-frozen)         value, WRITETIME(c), TTL(c)   (lists, per element)
      non-frozen UDT                        value, then WRITETIME(c.f), TTL(c.f) per field
      counter                               value (counters have no writetime or TTL)
      not exact (see below)                 value

Cassandra 5.0 returns per-element writetimes and TTLs for non-frozen collections and
per-field ones for non-frozen UDT fields; :class:`Column` records where each lives.
Older origins reject those selectors, so there non-frozen collections and UDTs are
read by value only (``Column.exact`` is False) and copied by :mod:`zdm.migrate.fallback`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from cassandra.metadata import protect_name

from zdm.errors import ZdmError
from zdm.scope import Scope


class Kind(enum.Enum):
    SIMPLE = "simple"
    LIST = "list"
    SET = "set"
    MAP = "map"
    UDT = "udt"  # non-frozen user-defined type: one cell per field
    COUNTER = "counter"

    @property
    def is_collection(self) -> bool:
        return self in (Kind.LIST, Kind.SET, Kind.MAP)


@dataclass(frozen=True)
class Column:
    name: str
    cql_type: str
    kind: Kind
    static: bool = False
    #: UDT field names (non-frozen UDTs only)
    fields: tuple[str, ...] = ()
    #: index of the value in a scan row; metadata follows it (see module docstring)
    offset: int = 0
    #: False: origin cannot read this column's per-element (per-field) writetime and TTL
    exact: bool = True

    @property
    def q(self) -> str:
        return protect_name(self.name)

    @property
    def width(self) -> int:
        """How many values of a scan row this column takes."""
        if self.kind is Kind.COUNTER or not self.exact:
            return 1
        return 1 + (2 * len(self.fields) if self.kind is Kind.UDT else 2)


@dataclass(frozen=True)
class TableSpec:
    keyspace: str
    name: str
    partition_key: tuple[str, ...]
    clustering_key: tuple[str, ...]
    columns: tuple[Column, ...]  # non-key columns, statics included
    #: clustering order per clustering column, True for DESC (for the reader, not the merge)
    reversed_clustering: tuple[bool, ...] = field(default=())
    #: the timestamp the fallback writes columns that are not exact with (None: unknown yet)
    fallback_timestamp: int | None = None

    @property
    def qualified(self) -> str:
        return f"{self.keyspace}.{self.name}"

    @property
    def cql_name(self) -> str:
        return f"{protect_name(self.keyspace)}.{protect_name(self.name)}"

    @cached_property
    def is_counter(self) -> bool:
        return any(c.kind is Kind.COUNTER for c in self.columns)

    @property
    def key_width(self) -> int:
        return len(self.partition_key) + len(self.clustering_key)

    @cached_property
    def statics(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.static)

    @cached_property
    def regulars(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if not c.static)

    @cached_property
    def _simple(self) -> dict[bool, tuple[tuple[str, int], ...] | None]:
        out: dict[bool, tuple[tuple[str, int], ...] | None] = {}
        for static, cols in ((True, self.statics), (False, self.regulars)):
            simple = all(c.kind is Kind.SIMPLE and c.exact for c in cols)
            out[static] = tuple((c.name, c.offset) for c in cols) if simple else None
        return out

    def simple_offsets(self, *, static: bool) -> tuple[tuple[str, int], ...] | None:
        """(name, scan row offset) of the static (or regular) columns when all of them are
        simple and exact, else None."""
        return self._simple[static]

    def pk_of(self, row: tuple) -> tuple:
        return tuple(row[1:1 + len(self.partition_key)])

    def ck_of(self, row: tuple) -> tuple:
        p = 1 + len(self.partition_key)
        return tuple(row[p:p + len(self.clustering_key)])

    def key_of(self, row: tuple) -> tuple:
        return tuple(row[1:1 + self.key_width])

    def has_lists(self) -> bool:
        return any(c.kind is Kind.LIST for c in self.columns)

    @property
    def fallback_columns(self) -> tuple[Column, ...]:
        """Columns copied by the fallback (origin cannot read their cells' metadata)."""
        return tuple(c for c in self.columns if not c.exact)

    # -- CQL -------------------------------------------------------------------------

    def _selectors(self) -> list[str]:
        pk = ", ".join(protect_name(c) for c in self.partition_key)
        out = [f"token({pk})", *(protect_name(c) for c in self.partition_key),
               *(protect_name(c) for c in self.clustering_key)]
        for c in self.columns:
            out.append(c.q)
            if c.kind is Kind.COUNTER or not c.exact:
                continue
            if c.kind is Kind.UDT:
                for f in c.fields:
                    out += [f"WRITETIME({c.q}.{protect_name(f)})", f"TTL({c.q}.{protect_name(f)})"]
            else:
                out += [f"WRITETIME({c.q})", f"TTL({c.q})"]
        return out

    def range_select(self) -> str:
        """The scan of one token range; bind (start, end)."""
        pk = ", ".join(protect_name(c) for c in self.partition_key)
        return (f"SELECT {', '.join(self._selectors())} FROM {self.cql_name} "
                f"WHERE token({pk}) > ? AND token({pk}) <= ?")

    def row_select(self, *, static_only: bool = False) -> str:
        """A point read of one row (or one partition's static row); bind the key."""
        keys = self.partition_key if static_only else self.partition_key + self.clustering_key
        where = " AND ".join(f"{protect_name(k)} = ?" for k in keys)
        limit = " LIMIT 1" if static_only else ""
        return f"SELECT {', '.join(self._selectors())} FROM {self.cql_name} WHERE {where}{limit}"


class UnsupportedTable(ZdmError):
    """A table zdm cannot copy cell by cell."""


def column_kind(cql_type: str, user_types: Mapping[str, Any]) -> Kind:
    """How a column of this CQL type (as the driver prints it) is stored: one cell
    (simple, frozen, tuple), one cell per element (non-frozen list, set, map), one per
    field (a non-frozen UDT: a bare name of ``user_types``), or a counter."""
    t = cql_type.strip()
    if t == "counter":
        return Kind.COUNTER
    for prefix, kind in (("list<", Kind.LIST), ("set<", Kind.SET), ("map<", Kind.MAP)):
        if t.startswith(prefix):
            return kind
    return Kind.UDT if t.strip('"') in user_types else Kind.SIMPLE


def table_spec(keyspace_meta, table_meta, *, element_metadata: bool = True) -> TableSpec:
    """Build a TableSpec from driver metadata (cassandra.metadata.TableMetadata).

    ``element_metadata``: whether origin reads per-element writetimes and TTLs
    (:func:`zdm.releases.has_element_metadata`); without, non-frozen collections and
    UDTs are not exact."""
    pk = tuple(c.name for c in table_meta.partition_key)
    ck = tuple(c.name for c in table_meta.clustering_key)
    keyset = set(pk) | set(ck)
    offset = 1 + len(pk) + len(ck)
    columns = []
    for col in table_meta.columns.values():
        if col.name in keyset:
            continue
        kind = column_kind(col.cql_type, keyspace_meta.user_types)
        fields = (tuple(keyspace_meta.user_types[col.cql_type.strip().strip('"')].field_names)
                  if kind is Kind.UDT else ())
        exact = element_metadata or kind in (Kind.SIMPLE, Kind.COUNTER)
        column = Column(col.name, col.cql_type, kind, static=col.is_static, fields=fields,
                        offset=offset, exact=exact)
        columns.append(column)
        offset += column.width
    if not getattr(table_meta, "is_cql_compatible", True):
        raise UnsupportedTable(f"{keyspace_meta.name}.{table_meta.name} is a COMPACT STORAGE table "
                               "zdm cannot read through CQL",
                               hint="exclude it (scope.exclude_tables) and copy it with sstableloader")
    reversed_ck = tuple(bool(getattr(c, "is_reversed", False)) for c in table_meta.clustering_key)
    return TableSpec(keyspace_meta.name, table_meta.name, pk, ck, tuple(columns), reversed_ck)


def tables_in_scope(metadata, scope: Scope, *, element_metadata: bool = True) -> list[TableSpec]:
    """Tables to copy: those of the driver's schema ``metadata`` that ``scope`` covers."""
    known = metadata.keyspaces
    names = scope.keyspaces_in(known)
    missing = [k for k in scope.keyspaces if k not in known]
    if missing:
        raise ZdmError(f"keyspace(s) not found on origin: {', '.join(missing)}",
                       hint="check scope.keyspaces in zdm.yaml or the --keyspace option")
    specs = []
    for ks in names:
        ks_meta = known[ks]
        for tname in scope.tables_in(ks, ks_meta.tables):
            specs.append(table_spec(ks_meta, ks_meta.tables[tname],
                                    element_metadata=element_metadata))
    unknown = set(scope.tables) - {s.qualified for s in specs}
    if unknown:
        raise ZdmError(f"table(s) not found in scope: {', '.join(sorted(unknown))}",
                       hint="name tables as keyspace.table, within the keyspaces in scope")
    return specs
