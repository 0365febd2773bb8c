"""Time as zdm keeps it: timezone-aware UTC, written as ISO 8601, and as Cassandra's writetimes.

Invariants: every datetime these return is aware and in UTC (a naive one given is taken as
UTC, never as local time); :func:`iso` keeps microseconds, so a time written and read back
(:func:`parse_time`) is the same instant.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def iso(when: datetime) -> str:
    return as_utc(when).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (without a zone: UTC); raises ValueError if ``text`` is not one."""
    return as_utc(datetime.fromisoformat(text))


def micros(when: datetime) -> int:
    """``when`` as a writetime: microseconds since the epoch."""
    when = as_utc(when)
    return (int(when.timestamp()) * 1_000_000) + when.microsecond
