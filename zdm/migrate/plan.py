"""The writes that recreate one scanned row on target: its exact cells
(:mod:`zdm.migrate.cells`) and, for columns origin cannot read cell by cell, the
fallback's (:mod:`zdm.migrate.fallback`).

``target_row`` is target's current version of the row, read with the same selectors,
when the table has lists (or None): list writes depend on what target already holds.

``since`` (microseconds; ``zdm migrate --since``) keeps only the cells written at or after
it, for a catch-up after an outage or a rollback.  What cannot be dated is written anyway,
which is harmless: a row with no cells (its INSERT is at the lowest timestamp) and the
fallback's columns (below the start of dual writes, so every newer write wins).
"""

from __future__ import annotations

from zdm.migrate.cells import PK_ONLY_TIMESTAMP, Assignment, Op, Write, cells_of, group
from zdm.migrate.fallback import fallback_writes
from zdm.migrate.schema import Column, Kind, TableSpec


def list_elements(spec: TableSpec, row: tuple | None) -> dict[str, list]:
    """(element, writetime) pairs of each exact non-frozen list in a scan row."""
    if row is None:
        return {}
    out = {}
    for c in spec.columns:
        if c.kind is Kind.LIST and c.exact and row[c.offset] is not None:
            out[c.name] = list(zip(row[c.offset], row[c.offset + 1]))
    return out


def _plan(spec: TableSpec, row: tuple, columns: tuple[Column, ...], target_row: tuple | None,
          *, static: bool, since: int | None = None) -> list[Write]:
    simple = spec.simple_offsets(static=static) if since is None else None
    if simple is not None:
        return plan_simple(row, simple, marker=not static, static=static)
    cells = cells_of(row, columns, list_elements(spec, target_row))
    recent = cells if since is None else [c for c in cells if c.writetime >= since]
    # every cell older than ``since``: nothing to write (a row without cells is written anyway)
    writes = group(recent, marker=not static, static=static) if recent or not cells else []
    inexact = [c for c in columns if not c.exact]
    if inexact:
        writes += fallback_writes(spec, row, inexact, target_row, static=static)
    return writes


def plan_simple(row: tuple, columns: tuple[tuple[str, int], ...], *, marker: bool,
                static: bool) -> list[Write]:
    """:func:`~zdm.migrate.cells.group` of :func:`~zdm.migrate.cells.cells_of` for columns
    that are all simple and exact, given as (name, offset): the same writes, without
    making a cell of each value (most tables, and the copy's hot path)."""
    groups: dict[tuple[int, int], list[Assignment]] = {}
    for name, offset in columns:
        value = row[offset]
        if value is None:
            continue
        meta = (row[offset + 1], row[offset + 2] or 0)
        assignment = Assignment(name, Op.SET, value)
        same = groups.get(meta)
        if same is None:
            groups[meta] = [assignment]
        else:
            same.append(assignment)
    if not groups:
        return [Write(PK_ONLY_TIMESTAMP, 0, (), insert=True)] if marker else []
    metas = sorted(groups) if len(groups) > 1 else groups
    return [Write(wt, ttl, tuple(groups[(wt, ttl)]), insert=marker and i == 0, static=static)
            for i, (wt, ttl) in enumerate(metas)]


def plan_row(spec: TableSpec, row: tuple, target_row: tuple | None = None, *,
             since: int | None = None) -> list[Write]:
    """The writes for the clustering row of ``row`` (none for a static-only scan row)."""
    if spec.clustering_key and row[spec.key_width] is None and all(v is None for v in spec.ck_of(row)):
        return []  # a partition with static data only: no clustering row
    return _plan(spec, row, spec.regulars, target_row, static=False, since=since)


def plan_static(spec: TableSpec, row: tuple, target_row: tuple | None = None, *,
                since: int | None = None) -> list[Write]:
    """The partition-level writes for the static cells of ``row``."""
    return _plan(spec, row, spec.statics, target_row, static=True, since=since)
