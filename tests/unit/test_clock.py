"""zdm.clock: every time is aware UTC, written and read back as the same instant."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdm.clock import as_utc, iso, micros, parse_time, utcnow

PARIS_SUMMER = timezone(timedelta(hours=2))


@pytest.mark.parametrize("given_, expected", [
    (datetime(2024, 5, 1, 12, 0), datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)),
    (datetime(2024, 5, 1, 14, 0, tzinfo=PARIS_SUMMER), datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)),
], ids=["naive-is-utc", "other-zone-converted"])
def test_as_utc(given_, expected):
    out = as_utc(given_)
    assert out == expected and out.utcoffset() == timedelta(0)


@given(st.datetimes(timezones=st.just(timezone.utc)))
def test_iso_round_trips_to_the_microsecond(when):
    assert parse_time(iso(when)) == when


@pytest.mark.parametrize("text, expected", [
    ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
    ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
], ids=["no-zone-is-utc", "zone-kept"])
def test_parse_time(text, expected):
    assert parse_time(text) == expected


def test_parse_time_refuses_what_is_not_a_time():
    with pytest.raises(ValueError):
        parse_time("yesterday")


@pytest.mark.parametrize("when, expected", [
    (datetime(1970, 1, 1, tzinfo=timezone.utc), 0),
    (datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc), 1714564800_123456),
    (datetime(2024, 5, 1, 12, 0, 0, 123456), 1714564800_123456),
], ids=["epoch", "microseconds-exact", "naive-is-utc"])
def test_micros_is_a_writetime(when, expected):
    assert micros(when) == expected


def test_utcnow_is_aware_utc():
    assert utcnow().utcoffset() == timedelta(0)
