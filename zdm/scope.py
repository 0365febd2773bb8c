"""What the migration covers: one definition of the system keyspaces and of the scope.

Every module that asks "is this keyspace Cassandra's own?" or "is this table migrated?"
asks here: the proxy's routing (:meth:`Scope.covers`), and the preflight, the copy and the
validation, which pick the keyspaces and tables of a schema (:meth:`Scope.keyspaces_in`,
:meth:`Scope.tables_in`).

Theory of operation: a :class:`Scope` starts as zdm.yaml's ``scope`` section
(:meth:`Scope.of`); a command's ``--keyspace``, ``--table``, ``--exclude-table`` and
``--exclude-keyspace`` narrow it in one place (:meth:`Scope.narrow`).

Invariants:
- A system keyspace (:func:`is_system_keyspace`) is never covered. Naming one in the scope is
  refused with an error, not ignored: each cluster keeps its own.
- A statement that names no keyspace (roles, for instance) is covered: it concerns both
  clusters.
- The order of ``scope.keyspaces`` is kept (the copy goes through them in that order);
  without it, every non-system keyspace of the schema, sorted by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection, Iterable

from zdm.config import Config, ScopeConfig
from zdm.errors import ZdmError

#: Keyspaces zdm never migrates: Cassandra's own and DSE's (plus any ``dse_*``).
SYSTEM_KEYSPACES = frozenset({
    "system", "system_schema", "system_auth", "system_distributed", "system_traces",
    "system_views", "system_virtual_schema", "solr_admin", "OpsCenter", "cfs", "cfs_archive",
    "HiveMetaStore", "spark_system", "dsefs",
})


def is_system_keyspace(name: str | None) -> bool:
    return name is not None and (name in SYSTEM_KEYSPACES or name.startswith("dse_"))


@dataclass(frozen=True, slots=True)
class Scope:
    """``keyspaces`` (empty: every non-system keyspace) and, within them, ``tables`` (empty:
    all of them), less ``exclude_tables`` and ``exclude_keyspaces``. Tables are named
    ``ks.table``."""

    keyspaces: Collection[str] = ()
    exclude_tables: Collection[str] = frozenset()
    tables: Collection[str] = frozenset()
    exclude_keyspaces: Collection[str] = frozenset()
    _keyspace_set: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keyspaces = tuple(dict.fromkeys(self.keyspaces))  # named twice is named once
        object.__setattr__(self, "keyspaces", keyspaces)
        object.__setattr__(self, "_keyspace_set", frozenset(keyspaces))
        for name in ("exclude_tables", "tables", "exclude_keyspaces"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))

    @classmethod
    def of(cls, config: Config) -> Scope:
        """zdm.yaml's scope."""
        return cls.of_section(config.scope)

    @classmethod
    def of_section(cls, section: ScopeConfig) -> Scope:
        return cls(section.keyspaces, section.exclude_tables)

    def narrow(self, by: Scope) -> Scope:
        """This scope as a command's options ``by`` narrow it: ``--keyspace`` names the keyspaces
        (in place of ``scope.keyspaces``), ``--table`` the only tables, and the exclusions
        add to these."""
        return Scope(by.keyspaces or self.keyspaces, self.exclude_tables | by.exclude_tables,
                     by.tables or self.tables, self.exclude_keyspaces | by.exclude_keyspaces)

    @property
    def everything(self) -> bool:
        return not (self.keyspaces or self.exclude_tables or self.tables or self.exclude_keyspaces)

    def covers(self, keyspace: str | None, table: str | None = None) -> bool:
        """Whether ``keyspace`` (``table``) is migrated; one that names no keyspace (roles,
        for instance) counts as covered, Cassandra's own keyspaces never do."""
        if keyspace is None:
            return True
        if is_system_keyspace(keyspace) or keyspace in self.exclude_keyspaces:
            return False
        if self._keyspace_set and keyspace not in self._keyspace_set:
            return False
        if table is None:
            return not self.tables or any(t.partition(".")[0] == keyspace for t in self.tables)
        qualified = f"{keyspace}.{table}"
        return qualified not in self.exclude_tables and (not self.tables or qualified in self.tables)

    def keyspaces_in(self, present: Iterable[str]) -> list[str]:
        """The keyspaces in scope of a schema that has ``present``: those the scope names, in
        order, whether present or not (the caller says what a missing one means), else every
        non-system one present, sorted; less the excluded ones. Raises ZdmError if the scope
        names a system keyspace."""
        self._refuse_system_keyspaces()
        named = self.keyspaces or sorted(k for k in present if not is_system_keyspace(k))
        return [k for k in named if k not in self.exclude_keyspaces]

    def tables_in(self, keyspace: str, tables: Iterable[str]) -> list[str]:
        """The names of ``keyspace``'s ``tables`` (a schema's) in scope, sorted."""
        return sorted(t for t in tables if self.covers(keyspace, t))

    def _refuse_system_keyspaces(self) -> None:
        named = list(self.keyspaces) + sorted({t.partition(".")[0] for t in self.tables})
        system = list(dict.fromkeys(k for k in named if is_system_keyspace(k)))
        if system:
            raise ZdmError(
                f"the scope names Cassandra's own keyspace(s) {', '.join(system)}: zdm never "
                "migrates a system keyspace, each cluster keeps its own",
                hint=f"remove {', '.join(system)} from scope.keyspaces in zdm.yaml (or from "
                     "--keyspace/--table); roles and permissions (system_auth) are created on "
                     "target by hand")
