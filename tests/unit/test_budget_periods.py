"""accounting.budgets.counters, the budgets' pure parts: calendar-aligned UTC periods and the counters' names."""

from datetime import date, datetime, timedelta, timezone

import pytest

from accounting.budgets import counters as budgets


@pytest.mark.parametrize("period, now, first, end", [
    ("daily", datetime(2026, 2, 28, 23, 59, tzinfo=timezone.utc), date(2026, 2, 28), date(2026, 3, 1)),
    ("weekly", datetime(2026, 11, 29, 12, tzinfo=timezone.utc), date(2026, 11, 23), date(2026, 11, 30)),  # a Sunday
    ("weekly", datetime(2026, 11, 30, 0, 0, tzinfo=timezone.utc), date(2026, 11, 30), date(2026, 12, 7)),  # Monday
    ("monthly", datetime(2026, 12, 31, 23, 0, tzinfo=timezone.utc), date(2026, 12, 1), date(2027, 1, 1)),
    ("monthly", datetime(2028, 2, 10, tzinfo=timezone.utc), date(2028, 2, 1), date(2028, 3, 1)),  # leap year
    ("total", datetime(2026, 5, 5, tzinfo=timezone.utc), None, None),
])
def test_periods_are_calendar_aligned_in_utc(period, now, first, end):
    assert budgets.window(period, now) == (first, end)


def test_a_local_time_counts_in_its_utc_day():
    late_in_new_york = datetime(2026, 3, 1, 20, 30, tzinfo=timezone(timedelta(hours=-5)))  # 01:30 UTC on the 2nd
    assert budgets.window("daily", late_in_new_york)[0] == date(2026, 3, 2)
    assert budgets.period_end("monthly", late_in_new_york) == datetime(2026, 4, 1, tzinfo=timezone.utc)
    assert budgets.period_end("total", late_in_new_york) is None


def test_counter_names_round_trip(settings):
    settings.USAGE_STREAM = "gm:usage"
    now = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
    assert budgets.counter("tenant", 7, "weekly", now) == "gm:usage:budget:tenant:7:weekly:20261123"
    assert budgets.parse_counter("gm:usage:budget:tenant:7:weekly:20261123") == ("tenant", 7, "weekly",
                                                                                  date(2026, 11, 23))
    assert budgets.parse_counter(budgets.counter("key", 3, "total", now)) == ("key", 3, "total", None)
    for bad in ("other:budget:tenant:7:weekly:20261123", "gm:usage:budget:team:7:weekly:20261123",
                "gm:usage:budget:tenant:x:weekly:20261123", "gm:usage:budget:tenant:7:yearly:20261123",
                "gm:usage:budget:tenant:7:weekly:2026-11", "gm:usage:budget:tenant:7:weekly"):
        assert budgets.parse_counter(bad) is None


def test_usd_strings():
    assert budgets.usd(0) == "0"
    assert budgets.usd(51_000) == "0.0000051"
    assert budgets.usd(25 * 10**10) == "25"
