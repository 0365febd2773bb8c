"""The copy of non-frozen collections and UDTs from an origin that cannot read their cells'
writetimes and TTLs (Cassandra before 5.0): safe where it cannot be exact.

Theory of operation.  Before 5.0, ``WRITETIME()`` and ``TTL()`` reject a non-frozen
list, set, map or UDT, so the copy knows such a column's value (its live elements or
fields) but not when each element was written, nor when it expires.  Every other cell
(simple, frozen, tuple, counter, static) is still copied exactly by :mod:`zdm.migrate.cells`.
A column without metadata is written to target at one timestamp for the whole
migration, the *fallback timestamp* ``T``, chosen below the start of dual writes::

    T = dual_writes_since - FALLBACK_MARGIN        (microseconds)

``dual_writes_since`` is when the migration last entered phase 1 (the state's
history, :attr:`~zdm.phases.state.MigrationState.dual_writes_since`), or what the
operator says (``--dual-writes-since``).  It is recorded in the migration evidence.

The invariant: *the copy loses to every write the proxy made to target.*  A write W
that the proxy made has a timestamp ``ts >= dual_writes_since`` (less any client clock
skew, which the margin absorbs), so ``T < ts``.  Then, whatever order the copy and W
reach target in, and whether or not the copy's read of origin saw W:

- W added or overwrote an element (or field): W's cell (ts) beats the copy's (T).
- W removed an element (set/map element, UDT field, ``DELETE c[k]``): its tombstone (ts)
  shadows the element the copy may have read before W and written after it.
- W replaced the whole collection (``SET c = ...`` writes a collection tombstone at
  ``ts - 1`` plus the new elements at ``ts``): ``T <= ts - 1``, and a tombstone wins a
  tie, so the copy cannot resurrect an element W deleted.
- W deleted the row or partition, or let it expire: its tombstone (ts) shadows it all.

Writes made before ``dual_writes_since`` reached origin alone, long before the copy reads
it, so the value the copy reads already holds their effect.  Hence sets, maps and UDTs
are written whole, as the statement the application would write::

    UPDATE t USING TIMESTAMP T SET c = <origin's value> WHERE <key>

whose collection tombstone at ``T - 1`` also clears whatever is older on target (an
aborted earlier attempt), and never touches a dual write (``ts > T``).  Writing the same
value at the same ``T`` again is a no-op, so ranges may be retried.

Lists are the exception: an element's cell name is a time UUID the coordinator makes
up, so writing a list twice doubles it, and its position depends on when it was added.
The copy reads target's list first and writes only the elements target lacks
(:func:`missing_from_list`: origin's list with target's matched from the end, since
dual writes append), *prepended* at ``T`` (``c = [...] + c``): a prepend sorts before
every append, so the old elements come before the ones the application appended
through the proxy, as on origin.  No tombstone is written, and a replaced list on
target (tombstone at ``ts - 1``) shadows the prepended elements as above.

What is not exact, type by type (documented in the README):
- element (field) writetimes are ``T``, not origin's;
- element (field) TTLs are lost: the copied elements do not expire;
- list order matches origin when the application only appended through the proxy;
  prepends or ``l[i] = ...`` through the proxy may leave it differently ordered, and
  removing a list element by value (``l = l - [x]``) while the copy reads and writes
  the same row may leave ``x`` on target (a list removal reads its replica's list, so
  it misses an element the copy has not written yet).  Validation reports either.
- an application that writes through the proxy with explicit ``USING TIMESTAMP``
  values older than ``T`` breaks the invariant (as it breaks last-write-wins anyway).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Sequence

from zdm.migrate.cells import Assignment, Op, Write, hashable
from zdm.migrate.schema import Column, Kind, TableSpec

#: How far below the start of dual writes the fallback writes: the largest client clock
#: skew it tolerates (a client whose clock lags by more could write below ``T``).
FALLBACK_MARGIN = timedelta(minutes=10)

#: What the fallback keeps and loses, per kind of column (for reports and the README).
FIDELITY: dict[Kind, str] = {
    Kind.LIST: "elements and their order; element writetimes become the fallback timestamp, "
               "element TTLs are lost",
    Kind.SET: "elements; element writetimes become the fallback timestamp, element TTLs are lost",
    Kind.MAP: "keys and values; entry writetimes become the fallback timestamp, entry TTLs "
              "are lost",
    Kind.UDT: "field values; field writetimes become the fallback timestamp, field TTLs are lost",
}


def fallback_timestamp(dual_writes_since: datetime) -> int:
    """``T`` in microseconds (CQL's ``USING TIMESTAMP`` unit)."""
    since = dual_writes_since - FALLBACK_MARGIN
    return int(since.timestamp() * 1_000_000)


def missing_from_list(origin: Sequence[Any] | None, target: Sequence[Any] | None) -> list[Any]:
    """The elements of origin's list that target's lacks, in origin's order.

    Target's elements are matched against origin's from the end (dual writes append,
    so target's list is normally a suffix of origin's); each target element matches at
    most one origin element, so repeated values are counted, not collapsed.
    """
    origin, target = list(origin or ()), [hashable(v) for v in target or ()]
    missing: list[Any] = []
    t = len(target) - 1
    for value in reversed(origin):
        if t >= 0 and hashable(value) == target[t]:
            t -= 1
        else:
            missing.append(value)
    if t >= 0:
        # target has elements origin lacks, or a different order: match what is left
        # as a multiset, so no element target already has is written twice
        left = [hashable(v) for v in target[:t + 1]]
        kept = []
        for value in missing:
            key = hashable(value)
            if key in left:
                left.remove(key)
            else:
                kept.append(value)
        missing = kept
    missing.reverse()
    return missing


def fallback_writes(spec: TableSpec, row: tuple, columns: Sequence[Column],
                    target_row: tuple | None, *, static: bool) -> list[Write]:
    """The writes that copy ``columns`` (all not exact) of the scan ``row``: one
    ``UPDATE ... USING TIMESTAMP T`` with every non-null one of them."""
    if spec.fallback_timestamp is None:
        raise ValueError(f"{spec.qualified}: the fallback timestamp is not known")
    assignments = []
    for c in columns:
        value = row[c.offset]
        if value is None:
            continue  # empty on origin: nothing to copy (a dual write may fill target)
        if c.kind is Kind.LIST:
            have = target_row[c.offset] if target_row is not None else None
            missing = missing_from_list(value, have)
            if missing:
                assignments.append(Assignment(c.name, Op.PREPEND, missing))
        else:
            assignments.append(Assignment(c.name, Op.SET, value))
    if not assignments:
        return []
    return [Write(spec.fallback_timestamp, 0, tuple(assignments), static=static)]
