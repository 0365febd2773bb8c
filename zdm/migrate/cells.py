"""Turn one scanned row into the writes that recreate it cell for cell.

Theory of operation: :func:`cells_of` explodes a scan row (layout in ``schema``) into
:class:`Cell` s, each carrying its own writetime and TTL: one per simple column, one
per collection element, one per non-frozen UDT field.  :func:`group` then puts cells
that share (writetime, TTL) into one write, so each cell keeps its exact timestamp and
last-write-wins against live dual writes stays exact per cell.

Row liveness (the "row marker", which CQL cannot read):
- A row with cells gets its marker from an ``INSERT`` of the group with the *oldest*
  writetime (typically the original INSERT); other groups are ``UPDATE`` s.  A row that
  was only ever UPDATEd therefore gains a marker on target (as with CDM and DSBulk):
  if all its cells are later deleted, target keeps the bare key while origin drops it.
- A row with no cells (primary key only) is written by ``INSERT`` at
  :data:`PK_ONLY_TIMESTAMP`.  Its real marker timestamp is unknowable, and the lowest
  timestamp guarantees that any live write or delete of that row wins on target.
- Static cells are partition-level ``UPDATE`` s, written once per partition.

Lists: an element's position is decided by the server when it is appended, so a list
whose elements differ in (writetime, TTL) is written as ordered appends in one chain;
a list in a single group is one append.  Appends are not idempotent, so callers that
may write a row twice pass the elements target already has (``present``) to skip.
Counters never come here: see :func:`counter_deltas`.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from zdm.migrate.schema import Column, Kind, TableSpec

PK_ONLY_TIMESTAMP = 0


class Op(enum.Enum):
    SET = "set"          # c = ?
    ADD = "add"          # c = c + ?   (set/map elements, list append)
    FIELD = "field"      # c.f = ?
    INCR = "incr"        # counter c = c + ?


@dataclass(frozen=True, slots=True)
class Cell:
    column: str
    op: Op
    value: Any
    writetime: int
    ttl: int  # 0 = no TTL
    field: str | None = None
    #: for list elements: which run of the list (runs are appended in order)
    run: int = 0


@dataclass(frozen=True, slots=True)
class Assignment:
    column: str
    op: Op
    value: Any
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Write:
    """One statement: ``assignments`` at (timestamp, ttl), row- or partition-level."""

    timestamp: int | None  # None: counters
    ttl: int
    assignments: tuple[Assignment, ...]
    insert: bool = False
    static: bool = False
    #: writes sharing a chain must run in this order (list appends); None: any order
    chain: str | None = None

    @property
    def shape(self) -> tuple:
        """What the prepared statement depends on (not the values)."""
        return (self.insert, self.static, self.timestamp is None,
                tuple((a.column, a.op, a.field) for a in self.assignments))


def _ttl(value: Any) -> int:
    return int(value) if value else 0


def cells_of(spec: TableSpec, row: tuple, columns: Iterable[Column],
             present: Mapping[str, list[tuple[Any, int]]] | None = None) -> list[Cell]:
    """The live cells of ``columns`` in ``row``.

    ``present`` maps a list column to (value, writetime) elements target already holds;
    those elements are left out (so a row written twice does not duplicate them).
    """
    cells: list[Cell] = []
    for c in columns:
        value = row[c.offset]
        if c.kind is Kind.COUNTER:
            raise ValueError("counter columns are copied by counter_deltas")
        if c.kind is Kind.UDT:
            if value is None:
                continue
            for i, f in enumerate(c.fields):
                wt = row[c.offset + 1 + 2 * i]
                if wt is None:  # a null field has no cell
                    continue
                cells.append(Cell(c.name, Op.FIELD, getattr(value, f, None) if not isinstance(value, dict)
                                  else value.get(f), wt, _ttl(row[c.offset + 2 + 2 * i]), field=f))
            continue
        if value is None:
            continue
        wt, ttl = row[c.offset + 1], row[c.offset + 2]
        if c.kind is Kind.SIMPLE:
            cells.append(Cell(c.name, Op.SET, value, wt, _ttl(ttl)))
        elif c.kind is Kind.MAP:
            for (k, v), w, t in zip(value.items(), wt, ttl):
                cells.append(Cell(c.name, Op.ADD, (k, v), w, _ttl(t)))
        elif c.kind is Kind.SET:
            for e, w, t in zip(value, wt, ttl):
                cells.append(Cell(c.name, Op.ADD, e, w, _ttl(t)))
        else:  # LIST
            skip = Counter(_hashable(e) for e in (present or {}).get(c.name, ()))
            run, prev = -1, None
            for e, w, t in zip(value, wt, ttl):
                meta = (w, _ttl(t))
                if skip[(_hashable(e[0]) if False else _hashable(e), w)] if False else skip[_hashable((e, w))]:
                    skip[_hashable((e, w))] -= 1
                    continue
                if meta != prev:
                    run, prev = run + 1, meta
                cells.append(Cell(c.name, Op.ADD, e, w, meta[1], run=run))
    return cells


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, (set, frozenset)) or type(value).__name__ == "SortedSet":
        return ("set", tuple(_hashable(v) for v in value))
    if isinstance(value, Mapping):
        return ("map", tuple((_hashable(k), _hashable(v)) for k, v in value.items()))
    return value


def _collect(column: Column | None, cells: list[Cell]) -> list[Assignment]:
    """Merge same-column element cells into one assignment each."""
    out: list[Assignment] = []
    by_col: dict[tuple, list[Cell]] = {}
    for cell in cells:
        by_col.setdefault((cell.column, cell.op, cell.field), []).append(cell)
    for (name, op, fld), group_cells in by_col.items():
        if op is Op.ADD:
            first = group_cells[0].value
            kind = _element_kind(first, group_cells)
            if kind == "map":
                value: Any = {k: v for k, v in (c.value for c in group_cells)}
            elif kind == "set":
                value = {c.value for c in group_cells} if _all_hashable(group_cells) else \
                    [c.value for c in group_cells]
            else:
                value = [c.value for c in group_cells]
            out.append(Assignment(name, op, value))
        else:
            (cell,) = group_cells
            out.append(Assignment(name, op, cell.value, fld))
    return out


def _element_kind(first: Any, cells: list[Cell]) -> str:
    return cells[0].__dict__.get("_kind", "") if False else getattr(cells[0], "_k", "")


def _all_hashable(cells: list[Cell]) -> bool:
    try:
        for c in cells:
            hash(c.value)
        return True
    except TypeError:
        return False
