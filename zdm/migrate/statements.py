"""CQL text and bind values for a :class:`~zdm.migrate.cells.Write`.

A statement depends only on the write's shape (INSERT/UPDATE, static or not, which
columns with which operation), so the copy prepares each shape once per table.
"""

from __future__ import annotations

from functools import partial

from cassandra.metadata import protect_name

from zdm.migrate.cells import Op, Write
from zdm.migrate.schema import TableSpec


def cql_for(spec: TableSpec, write: Write) -> str:
    keys = spec.partition_key if write.static else spec.partition_key + spec.clustering_key
    counter = write.timestamp is None
    using = "" if counter else " USING TIMESTAMP ? AND TTL ?"
    if write.insert:
        cols = [*keys, *(a.column for a in write.assignments)]
        names = ", ".join(protect_name(c) for c in cols)
        marks = ", ".join("?" for _ in cols)
        return f"INSERT INTO {spec.cql_name} ({names}) VALUES ({marks}){using}"
    sets = []
    for a in write.assignments:
        q = protect_name(a.column)
        if a.op is Op.SET:
            sets.append(f"{q} = ?")
        elif a.op is Op.FIELD:
            sets.append(f"{q}.{protect_name(a.field)} = ?")
        elif a.op is Op.PREPEND:
            sets.append(f"{q} = ? + {q}")
        else:  # ADD and INCR
            sets.append(f"{q} = {q} + ?")
    where = " AND ".join(f"{protect_name(k)} = ?" for k in keys)
    return f"UPDATE {spec.cql_name}{using} SET {', '.join(sets)} WHERE {where}"


def statement_for(ctx, spec: TableSpec, write: Write):
    """The statement prepared on target for ``write``'s shape, once per worker context."""
    return ctx.write_statement((spec.qualified, write.shape), partial(cql_for, spec, write))


def values_for(spec: TableSpec, write: Write, key: tuple, *, elapsed_s: float = 0.0) -> list:
    """Bind values in statement order; ``key`` is (partition key..., clustering key...).

    A TTL is what was left when the row was read: ``elapsed_s`` since then is taken off,
    so the cell expires on target when it does on origin (at least 1 s is left, since
    TTL 0 means none)."""
    keys = list(key[:len(spec.partition_key)] if write.static else key)
    assigned = [a.value for a in write.assignments]
    if write.timestamp is None:
        return [*assigned, *keys]
    ttl = max(1, write.ttl - int(elapsed_s)) if write.ttl else 0
    if write.insert:
        return [*keys, *assigned, write.timestamp, ttl]
    return [write.timestamp, ttl, *assigned, *keys]
