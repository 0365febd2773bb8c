"""What a range run reports as it goes: past-tense facts, one dataclass each.

:func:`zdm.ranges.coordinator.run_ranges` emits them, in this order per table: one
:class:`Planned`, then :class:`Rows` while ranges progress and a :class:`RangeDone` or
:class:`RangeFailed` as each range (or retry piece) ends.  migrate and validate hand them on
to their callers (the CLI's progress display, tests); nothing reads them by position.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Planned:
    """A table's ranges, before any runs: ``ranges_total - ranges_remaining`` are done already
    (an earlier run's, resumed or carried)."""

    table: str
    ranges_total: int
    ranges_remaining: int
    rows_before: int  # rows the done ranges counted


@dataclass(frozen=True)
class Rows:
    """``rows`` more rows of ``table`` read (copied, or compared on origin)."""

    table: str
    rows: int


@dataclass(frozen=True)
class RangeDone:
    """A range (``"start:end"``) finished and checkpointed."""

    table: str
    range: str
    rows: int
    table_complete: bool
    #: what the job found, as checkpointed (validate's findings; None for a copy)
    detail: dict | None = None


@dataclass(frozen=True)
class RangeFailed:
    table: str
    range: str
    error: str
    attempt: int
    final: bool  # False: it will be retried in smaller pieces
