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
Counters never come here: see :func:`counter_deltas`.  Nor do columns whose cells'
metadata origin cannot read (``Column.exact`` False): see :mod:`zdm.migrate.fallback`;
:mod:`zdm.migrate.plan` puts both together for one scan row.
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
    PREPEND = "prepend"  # c = ? + c   (list elements before all others)
    FIELD = "field"      # c.f = ?
    INCR = "incr"        # counter c = c + ?


@dataclass(frozen=True, slots=True)
class Cell:
    column: str
    kind: Kind
    value: Any  # element for collections ((key, value) for maps), field value for UDTs
    writetime: int
    ttl: int  # 0 = no TTL
    field: str | None = None
    #: for list elements: which run of equal (writetime, TTL) the element belongs to
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


def hashable(value: Any) -> Any:
    """A hashable stand-in for a CQL value (lists, sets, maps, UDTs nest)."""
    if isinstance(value, (list, tuple)):
        return tuple(hashable(v) for v in value)
    if isinstance(value, Mapping):
        return ("map", tuple((hashable(k), hashable(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)) or type(value).__name__ == "SortedSet":
        return ("set", tuple(hashable(v) for v in value))
    return value


def cells_of(row: tuple, columns: Iterable[Column],
             present: Mapping[str, Iterable[tuple[Any, int]]] | None = None) -> list[Cell]:
    """The live cells of ``columns`` in the scan ``row``.

    ``present`` maps a list column to the (element, writetime) pairs target already
    holds; those are left out, so a row written twice does not duplicate them.
    """
    cells: list[Cell] = []
    for c in columns:
        if not c.exact:
            continue  # the fallback's (see zdm.migrate.fallback)
        value = row[c.offset]
        if value is None:
            continue
        kind = c.kind
        if kind is Kind.SIMPLE:
            cells.append(Cell(c.name, kind, value, row[c.offset + 1], _ttl(row[c.offset + 2])))
        elif kind is Kind.UDT:
            for i, f in enumerate(c.fields):
                wt = row[c.offset + 1 + 2 * i]
                if wt is not None:  # a null field has no cell
                    cells.append(Cell(c.name, kind, getattr(value, f), wt,
                                      _ttl(row[c.offset + 2 + 2 * i]), field=f))
        elif kind is Kind.MAP or kind is Kind.SET:
            items = value.items() if kind is Kind.MAP else value
            for e, w, t in zip(items, row[c.offset + 1], row[c.offset + 2]):
                cells.append(Cell(c.name, kind, e, w, _ttl(t)))
        elif kind is Kind.LIST:
            skip = Counter(hashable((e, w)) for e, w in (present or {}).get(c.name, ()))
            run, prev = -1, None
            for e, w, t in zip(value, row[c.offset + 1], row[c.offset + 2]):
                if skip[hashable((e, w))]:
                    skip[hashable((e, w))] -= 1
                    continue
                meta = (w, _ttl(t))
                if meta != prev:
                    run, prev = run + 1, meta
                cells.append(Cell(c.name, kind, e, w, meta[1], run=run))
        else:
            raise ValueError(f"{c.name}: counter columns are copied by counter_deltas")
    return cells


def _assignments(cells: list[Cell]) -> list[Assignment]:
    """One assignment per column (per field for UDTs); collection elements merge."""
    by_col: dict[tuple[str, str | None], list[Cell]] = {}
    for cell in cells:
        by_col.setdefault((cell.column, cell.field), []).append(cell)
    out = []
    for (name, fld), cs in by_col.items():
        kind = cs[0].kind
        if kind is Kind.SIMPLE:
            out.append(Assignment(name, Op.SET, cs[0].value))
        elif kind is Kind.UDT:
            out.append(Assignment(name, Op.FIELD, cs[0].value, fld))
        elif kind is Kind.MAP:
            out.append(Assignment(name, Op.ADD, dict(c.value for c in cs)))
        elif kind is Kind.SET:
            out.append(Assignment(name, Op.ADD, _set_of([c.value for c in cs])))
        else:
            out.append(Assignment(name, Op.ADD, [c.value for c in cs]))
    return out


def _set_of(values: list) -> Any:
    try:
        return set(values)
    except TypeError:  # unhashable elements (frozen collections): the driver takes a list
        return values


def group(cells: list[Cell], *, marker: bool = False, static: bool = False) -> list[Write]:
    """Writes that recreate ``cells`` exactly; ``marker`` also creates the row marker.

    Cells sharing (writetime, TTL) share a write.  A list with several runs becomes a
    chain of appends, one write per run, in order.  With ``marker``, the oldest group
    is an INSERT of its simple cells (an INSERT of the key alone if it has none, or if
    there are no cells at all, at :data:`PK_ONLY_TIMESTAMP`).
    """
    runs_per_list: dict[str, set[int]] = {}
    for cell in cells:
        if cell.kind is Kind.LIST:
            runs_per_list.setdefault(cell.column, set()).add(cell.run)
    chained = {name for name, runs in runs_per_list.items() if len(runs) > 1}

    groups: dict[tuple[int, int], list[Cell]] = {}
    chains: dict[tuple[str, int], list[Cell]] = {}
    for cell in cells:
        if cell.column in chained:
            chains.setdefault((cell.column, cell.run), []).append(cell)
        else:
            groups.setdefault((cell.writetime, cell.ttl), []).append(cell)

    writes: list[Write] = []
    insert_key = min(groups) if marker and groups else None
    for (wt, ttl), cs in sorted(groups.items()):
        if (wt, ttl) == insert_key:
            simple = [c for c in cs if c.kind is Kind.SIMPLE]
            rest = [c for c in cs if c.kind is not Kind.SIMPLE]
            writes.append(Write(wt, ttl, tuple(_assignments(simple)), insert=True))
            if rest:
                writes.append(Write(wt, ttl, tuple(_assignments(rest)), static=static))
        else:
            writes.append(Write(wt, ttl, tuple(_assignments(cs)), static=static))
    for (name, _run), cs in sorted(chains.items(), key=lambda kv: kv[0]):
        writes.append(Write(cs[0].writetime, cs[0].ttl, tuple(_assignments(cs)), static=static,
                            chain=name))
    if marker and not groups:
        # no cell outside list chains: the marker needs its own INSERT
        ts = min((c.writetime for c in cells), default=PK_ONLY_TIMESTAMP)
        ttl = min((c.ttl for c in cells if c.writetime == ts), default=0)
        writes.insert(0, Write(ts, ttl, (), insert=True))
    return writes


def counter_deltas(spec: TableSpec, origin_row: tuple, target_row: tuple | None,
                   *, static: bool) -> Write | None:
    """``target += origin - target`` for each counter column (statics or regulars)."""
    cols = spec.statics if static else spec.regulars
    deltas = []
    for c in cols:
        want = origin_row[c.offset]
        have = target_row[c.offset] if target_row is not None else None
        if want is None:
            continue  # never reduce a counter origin lacks: counters cannot be deleted by delta
        if have is None or want != have:  # an increment by 0 still creates the cell
            deltas.append(Assignment(c.name, Op.INCR, want - (have or 0)))
    if not deltas:
        return None
    return Write(None, 0, tuple(deltas), static=static)
