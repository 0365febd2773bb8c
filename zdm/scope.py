"""What the migration covers: one definition of the system keyspaces and of the scope.

Every module that asks "is this keyspace Cassandra's own?" or "is this table migrated?"
asks here: the preflight, the copy, the validation and the proxy's routing.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """``scope.keyspaces`` (empty: every non-system keyspace) less ``scope.exclude_tables``."""

    keyspaces: frozenset[str] = frozenset()
    exclude_tables: frozenset[str] = frozenset()  # "ks.table"

    @classmethod
    def of(cls, config) -> "Scope":
        return cls(frozenset(config.scope.keyspaces), frozenset(config.scope.exclude_tables))

    @property
    def everything(self) -> bool:
        return not self.keyspaces and not self.exclude_tables

    def covers(self, keyspace: str | None, table: str | None = None) -> bool:
        """Whether ``keyspace`` (``table``) is migrated; one that names no keyspace (roles,
        for instance) counts as covered, Cassandra's own keyspaces never do."""
        if keyspace is None:
            return True
        if is_system_keyspace(keyspace):
            return False
        if self.keyspaces and keyspace not in self.keyspaces:
            return False
        return table is None or f"{keyspace}.{table}" not in self.exclude_tables
