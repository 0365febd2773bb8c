"""Schema snapshots of the migration scope, their fingerprint, and the table-by-table diff.

Theory of operation: :func:`snapshot_from_metadata` reads the driver's schema metadata
(which hides the difference between Cassandra 2.1's ``system.schema_*`` tables, 3.0+'s
``system_schema`` and DSE) into plain frozen values, every table of the keyspaces asked
for; everything after that is pure. :func:`scoped` keeps what the scope covers, asking
:class:`zdm.scope.Scope` (the only definition of the scope), and the preflight's checks,
its fingerprint and the live fingerprint of the phase machine's 0->1 guard all start there.
A snapshot holds exactly what decides whether a row written through the proxy lands the
same way on both clusters: per table the columns and their CQL types, which are static,
the partition key, and the clustering columns with their order; per keyspace the user
types. Table options (compaction, caching, ...) are kept (the preflight checks what the
target release refuses) but left out of the fingerprint on purpose: they may differ
between clusters and changing them must not invalidate a preflight. COMPACT STORAGE is
in it (only when set, so other tables' fingerprints are as before): it changes what a
write does.

Invariants:
- :func:`fingerprint` is a SHA-256 of the canonical JSON of both snapshots, so it is the
  same for the same schemas whatever the order the driver listed them in.
- :func:`diff` reports one :class:`TableDiff` per table (or per keyspace, when the whole
  keyspace is missing) with every difference spelled out, never just "differs".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from zdm.scope import Scope


@dataclass(frozen=True)
class TableSchema:
    keyspace: str
    name: str
    #: column name -> CQL type as the driver prints it ("text", "frozen<list<int>>")
    columns: Mapping[str, str]
    partition_key: tuple[str, ...]
    #: (column, "ASC" | "DESC") in clustering order
    clustering: tuple[tuple[str, str], ...] = ()
    static: frozenset[str] = frozenset()
    compact_storage: bool = False
    #: table options as the driver reads them (not in the fingerprint)
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def qualified(self) -> str:
        return f"{self.keyspace}.{self.name}"

    @property
    def is_counter_table(self) -> bool:
        return any(t == "counter" for t in self.columns.values())

    def to_dict(self) -> dict[str, Any]:
        out = {"columns": dict(sorted(self.columns.items())),
               "partition_key": list(self.partition_key),
               "clustering": [list(c) for c in self.clustering],
               "static": sorted(self.static)}
        if self.compact_storage:
            out["compact_storage"] = True
        return out


@dataclass(frozen=True)
class KeyspaceSchema:
    name: str
    tables: Mapping[str, TableSchema] = field(default_factory=dict)
    #: user type name -> ((field, type), ...)
    user_types: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"tables": {n: t.to_dict() for n, t in sorted(self.tables.items())},
                "user_types": {n: [list(f) for f in fs]
                               for n, fs in sorted(self.user_types.items())}}


@dataclass(frozen=True)
class SchemaSnapshot:
    """One cluster's schema, restricted to the keyspaces asked for (absent ones are absent)."""

    keyspaces: Mapping[str, KeyspaceSchema] = field(default_factory=dict)

    def tables(self) -> list[TableSchema]:
        return [t for _, ks in sorted(self.keyspaces.items())
                for _, t in sorted(ks.tables.items())]

    def option_names(self) -> frozenset[str]:
        """Every table option name this snapshot's tables have (a cluster's tables all
        list the options its release knows)."""
        return frozenset(k for t in self.tables() for k in t.options)

    def to_dict(self) -> dict[str, Any]:
        return {n: ks.to_dict() for n, ks in sorted(self.keyspaces.items())}


def snapshot_from_metadata(metadata: Any, keyspaces: Iterable[str]) -> SchemaSnapshot:
    """Read the driver's ``cluster.metadata`` for ``keyspaces``, every table of them
    (:func:`scoped` keeps those in scope)."""
    out: dict[str, KeyspaceSchema] = {}
    for ks_name in keyspaces:
        ks = metadata.keyspaces.get(ks_name)
        if ks is None:
            continue
        tables = {}
        for name, table in ks.tables.items():
            tables[name] = TableSchema(
                keyspace=ks_name, name=name,
                columns={c.name: c.cql_type for c in table.columns.values()},
                partition_key=tuple(c.name for c in table.partition_key),
                clustering=tuple((c.name, "DESC" if c.is_reversed else "ASC")
                                 for c in table.clustering_key),
                static=frozenset(c.name for c in table.columns.values() if c.is_static),
                compact_storage=bool(getattr(table, "is_compact_storage", False)),
                options=dict(getattr(table, "options", None) or {}))
        types = {name: tuple(zip(ut.field_names, ut.field_types))
                 for name, ut in ks.user_types.items()}
        out[ks_name] = KeyspaceSchema(ks_name, tables, types)
    return SchemaSnapshot(out)


def scoped(origin: SchemaSnapshot, target: SchemaSnapshot,
           scope: Scope) -> tuple[list[str], SchemaSnapshot, SchemaSnapshot]:
    """The keyspaces in scope (of origin's schema) and both snapshots restricted to them and
    to their tables in scope."""
    keyspaces = scope.keyspaces_in(origin.keyspaces)
    return keyspaces, _restrict(origin, keyspaces, scope), _restrict(target, keyspaces, scope)


def _restrict(snap: SchemaSnapshot, keyspaces: Iterable[str], scope: Scope) -> SchemaSnapshot:
    out = {}
    for name in keyspaces:
        ks = snap.keyspaces.get(name)
        if ks is not None:
            out[name] = replace(ks, tables={t: ks.tables[t] for t in scope.tables_in(name, ks.tables)})
    return SchemaSnapshot(out)


def fingerprint(origin: SchemaSnapshot, target: SchemaSnapshot) -> str:
    """``sha256:...`` of both schemas; changes whenever either changes within scope."""
    doc = {"origin": origin.to_dict(), "target": target.to_dict()}
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class TableDiff:
    """Every schema difference of one table (``ks.table``) or one missing keyspace (``ks``).

    ``differences`` fail the preflight; ``warnings`` (something only target has, which
    no client of origin can be using) do not.
    """

    name: str
    differences: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.name, "differences": list(self.differences),
                "warnings": list(self.warnings)}


def diff(origin: SchemaSnapshot, target: SchemaSnapshot,
         keyspaces: Iterable[str]) -> list[TableDiff]:
    """What differs, per table in scope, between origin's and target's schema."""
    out: list[TableDiff] = []
    for ks_name in keyspaces:
        o_ks, t_ks = origin.keyspaces.get(ks_name), target.keyspaces.get(ks_name)
        if o_ks is None:
            out.append(TableDiff(ks_name, (f"keyspace {ks_name} does not exist on origin",)))
            continue
        if t_ks is None:
            tables = ", ".join(sorted(o_ks.tables)) or "no tables"
            out.append(TableDiff(ks_name, (f"keyspace {ks_name} does not exist on target "
                                           f"(origin has: {tables})",)))
            continue
        out += _type_diffs(o_ks, t_ks)
        for name in sorted(set(o_ks.tables) | set(t_ks.tables)):
            o, t = o_ks.tables.get(name), t_ks.tables.get(name)
            if t is None:
                found = _describe(o)
                out.append(TableDiff(f"{ks_name}.{name}",
                                     (f"table missing on target (origin: {found})",)))
            elif o is None:
                out.append(TableDiff(f"{ks_name}.{name}", warnings=(
                    "table exists only on target, not on origin (not migrated)",)))
            else:
                problems = table_differences(o, t)
                if problems:
                    out.append(TableDiff(o.qualified, tuple(problems)))
    return out


def table_differences(o: TableSchema, t: TableSchema) -> list[str]:
    """Each difference between origin's and target's definition of one table."""
    problems = []
    if o.partition_key != t.partition_key:
        problems.append(f"partition key differs: origin ({', '.join(o.partition_key)}), "
                        f"target ({', '.join(t.partition_key)})")
    o_cols = [c for c, _ in o.clustering]
    t_cols = [c for c, _ in t.clustering]
    if o_cols != t_cols:
        problems.append(f"clustering columns differ: origin ({', '.join(o_cols) or 'none'}), "
                        f"target ({', '.join(t_cols) or 'none'})")
    elif o.clustering != t.clustering:
        problems.append(f"clustering order differs: origin ({_order(o)}), target ({_order(t)})")
    for col in sorted(set(o.columns) - set(t.columns)):
        problems.append(f"column {col} ({o.columns[col]}) missing on target")
    for col in sorted(set(t.columns) - set(o.columns)):
        problems.append(f"column {col} ({t.columns[col]}) exists only on target")
    if o.compact_storage != t.compact_storage:
        where = "origin" if o.compact_storage else "target"
        problems.append(f"COMPACT STORAGE only on {where} (a row without values, or a null "
                        "written to its last value, lives on one side and not the other): "
                        f"run `ALTER TABLE {o.qualified} DROP COMPACT STORAGE` on {where}, "
                        "or create the other side's table the same way")
    for col in sorted(set(o.columns) & set(t.columns)):
        if o.columns[col] != t.columns[col]:
            problems.append(f"column {col} type differs: origin {o.columns[col]}, "
                            f"target {t.columns[col]}")
        elif (col in o.static) != (col in t.static):
            where = "origin" if col in o.static else "target"
            problems.append(f"column {col} is static only on {where}")
    return problems


def _type_diffs(o_ks: KeyspaceSchema, t_ks: KeyspaceSchema) -> list[TableDiff]:
    out = []
    for name in sorted(set(o_ks.user_types) | set(t_ks.user_types)):
        o, t = o_ks.user_types.get(name), t_ks.user_types.get(name)
        if o == t:
            continue
        if o is None:
            out.append(TableDiff(f"{o_ks.name}.{name}",
                                 warnings=("user type exists only on target",)))
            continue
        what = (f"user type missing on target (origin: {_fields(o)})" if t is None else
                f"user type fields differ: origin ({_fields(o)}), target ({_fields(t)})")
        out.append(TableDiff(f"{o_ks.name}.{name}", (what,)))
    return out


def _describe(t: TableSchema) -> str:
    key = f"(({', '.join(t.partition_key)})" + "".join(f", {c}" for c, _ in t.clustering) + ")"
    return f"{len(t.columns)} columns, PRIMARY KEY {key}"


def _order(t: TableSchema) -> str:
    return ", ".join(f"{c} {o}" for c, o in t.clustering)


def _fields(fields: tuple[tuple[str, str], ...] | None) -> str:
    return ", ".join(f"{n} {t}" for n, t in fields or ())
