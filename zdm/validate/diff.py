"""Compare one row's cells on origin and target (pure).

A cell differs by value, by writetime (zdm copies writetimes exactly, so any difference
counts), or by TTL beyond ``ttl_tolerance_s`` (a TTL is read as seconds remaining, so
the two reads legitimately differ by the time between them).  Collections compare per
element, non-frozen UDTs per field; counters compare by value only, and so do columns
whose cells' metadata origin cannot read (``Column.exact`` False: their contents, not
their element writetimes and TTLs, see :mod:`zdm.migrate.fallback`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from zdm.migrate.schema import Column, Kind, TableSpec


@dataclass(frozen=True)
class CellDiff:
    column: str
    aspect: str  # "value" | "writetime" | "ttl"
    origin: Any
    target: Any
    field: str | None = None

    def to_json(self) -> dict:
        name = f"{self.column}.{self.field}" if self.field else self.column
        return {"column": name, "aspect": self.aspect, "origin": _jsonable(self.origin),
                "target": _jsonable(self.target)}


def _ttl_close(o: Any, t: Any, tol: float) -> bool:
    if isinstance(o, list) or isinstance(t, list):
        o, t = o or [], t or []
        return len(o) == len(t) and all(_ttl_close(a, b, tol) for a, b in zip(o, t))
    if not o and not t:
        return True
    if not o or not t:
        return False
    return abs(o - t) <= tol


def diff_columns(columns: Iterable[Column], o: tuple, t: tuple, ttl_tolerance_s: float) -> list[CellDiff]:
    out: list[CellDiff] = []
    for c in columns:
        ov, tv = o[c.offset], t[c.offset]
        if c.kind is Kind.COUNTER:
            if (ov or 0) != (tv or 0) or (ov is None) != (tv is None):
                out.append(CellDiff(c.name, "value", ov, tv))
            continue
        if not c.exact:
            if ov != tv:
                out.append(CellDiff(c.name, "value", ov, tv))
            continue
        if c.kind is Kind.UDT:
            for i, f in enumerate(c.fields):
                ofv = getattr(ov, f) if ov is not None else None
                tfv = getattr(tv, f) if tv is not None else None
                ow, ot = o[c.offset + 1 + 2 * i], o[c.offset + 2 + 2 * i]
                tw, tt = t[c.offset + 1 + 2 * i], t[c.offset + 2 + 2 * i]
                out.extend(_diff_cell(c.name, ofv, tfv, ow, tw, ot, tt, ttl_tolerance_s, f))
            continue
        out.extend(_diff_cell(c.name, ov, tv, o[c.offset + 1], t[c.offset + 1],
                              o[c.offset + 2], t[c.offset + 2], ttl_tolerance_s))
    return out


def _diff_cell(name, ov, tv, ow, tw, ot, tt, tol, field=None) -> list[CellDiff]:
    if ov != tv:
        return [CellDiff(name, "value", ov, tv, field), *(
            [CellDiff(name, "writetime", ow, tw, field)] if ow != tw else [])]
    if ow != tw:
        return [CellDiff(name, "writetime", ow, tw, field)]
    if not _ttl_close(ot, tt, tol):
        return [CellDiff(name, "ttl", ot, tt, field)]
    return []


def diff_row(spec: TableSpec, o: tuple, t: tuple, *, statics: bool, ttl_tolerance_s: float) -> list[CellDiff]:
    """Differences in the clustering row (and in the static row when ``statics``)."""
    cols = spec.columns if statics else spec.regulars
    return diff_columns(cols, o, t, ttl_tolerance_s)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return [_jsonable(v) for v in value]
    if hasattr(value, "_fields"):
        return {f: _jsonable(getattr(value, f)) for f in value._fields}
    if hasattr(value, "items"):
        return [[_jsonable(k), _jsonable(v)] for k, v in value.items()]
    if isinstance(value, (set, frozenset)) or type(value).__name__ == "SortedSet":
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
