"""The writes that recreate one scanned row on target: its exact cells
(:mod:`zdm.migrate.cells`) and, for columns origin cannot read cell by cell, the
fallback's (:mod:`zdm.migrate.fallback`).

``target_row`` is target's current version of the row, read with the same selectors,
when the table has lists (or None): list writes depend on what target already holds.
"""

from __future__ import annotations

from zdm.migrate.cells import Write, cells_of, group
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
          *, static: bool) -> list[Write]:
    writes = group(cells_of(row, columns, list_elements(spec, target_row)),
                   marker=not static, static=static)
    inexact = [c for c in columns if not c.exact]
    if inexact:
        writes += fallback_writes(spec, row, inexact, target_row, static=static)
    return writes


def plan_row(spec: TableSpec, row: tuple, target_row: tuple | None = None) -> list[Write]:
    """The writes for the clustering row of ``row`` (none for a static-only scan row)."""
    if spec.clustering_key and all(v is None for v in spec.ck_of(row)):
        return []  # a partition with static data only: no clustering row
    return _plan(spec, row, spec.regulars, target_row, static=False)


def plan_static(spec: TableSpec, row: tuple, target_row: tuple | None = None) -> list[Write]:
    """The partition-level writes for the static cells of ``row``."""
    return _plan(spec, row, spec.statics, target_row, static=True)
