"""The repeat rules of a recurring series: local start times across a DST change, the end by a
date or a count, weekly days, weekdays, monthly, and the refusals of a bad rule."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from engine.domain.errors import ValidationError
from engine.domain.recurrence import ical_rule, local_starts, occurrence_starts, validate_recurrence


def test_weekly_series_keeps_its_local_time_across_the_autumn_dst_change() -> None:
    rule = validate_recurrence({"frequency": "weekly", "weekdays": ["tu"], "count": 4})
    first = datetime(2026, 10, 13, 8, 0, tzinfo=UTC)  # 10:00 in Berlin (summer time, UTC+2)
    local = local_starts(rule, first, "Europe/Berlin")
    assert [(m.date(), m.hour, m.minute) for m in local] == [
        (date(2026, 10, 13), 10, 0), (date(2026, 10, 20), 10, 0), (date(2026, 10, 27), 10, 0),
        (date(2026, 11, 3), 10, 0)]
    utc = occurrence_starts(rule, first, "Europe/Berlin")
    assert [m.hour for m in utc] == [8, 8, 9, 9]  # summer time ended on 25 October
    assert all(m.tzinfo is UTC for m in utc)


def test_daily_series_across_the_spring_change_in_new_york() -> None:
    rule = validate_recurrence({"frequency": "daily", "until": "2027-03-16"})
    first = datetime(2027, 3, 12, 14, 30, tzinfo=UTC)  # 9:30 EST
    utc = occurrence_starts(rule, first, "America/New_York")
    assert [(m.day, m.hour) for m in utc] == [(12, 14), (13, 14), (14, 13), (15, 13), (16, 13)]


def test_weekdays_skip_the_weekend_and_weekly_takes_several_days() -> None:
    first = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # a Friday
    weekdays = occurrence_starts(validate_recurrence({"frequency": "weekdays", "count": 3}), first, "Europe/Minsk")
    assert [m.strftime("%a %d") for m in weekdays] == ["Fri 27", "Mon 30", "Tue 01"]
    weekly = occurrence_starts(validate_recurrence({"frequency": "weekly", "weekdays": ["we", "mo"], "count": 4}),
                               first, "Europe/Minsk")
    assert [m.strftime("%a %d") for m in weekly] == ["Mon 30", "Wed 02", "Mon 07", "Wed 09"]


def test_monthly_and_an_until_date_in_the_owners_zone() -> None:
    first = datetime(2026, 12, 15, 21, 30, tzinfo=UTC)  # 00:30 on the 16th in Minsk
    rule = validate_recurrence({"frequency": "monthly", "until": "2027-02-16"}, first)
    local = local_starts(rule, first, "Europe/Minsk")
    assert [(m.month, m.day, m.hour) for m in local] == [(12, 16, 0), (1, 16, 0), (2, 16, 0)]
    assert ical_rule(rule, first, "Europe/Minsk") == {"FREQ": "MONTHLY",
                                                      "UNTIL": datetime(2027, 2, 15, 21, 30, tzinfo=UTC)}


@pytest.mark.parametrize(("raw", "field"), [
    ("weekly", "recurrence"),
    ({"frequency": "hourly", "count": 2}, "recurrence.frequency"),
    ({"frequency": "weekly", "count": 2}, "recurrence.weekdays"),
    ({"frequency": "weekly", "weekdays": ["xx"], "count": 2}, "recurrence.weekdays"),
    ({"frequency": "daily"}, "recurrence.until"),
    ({"frequency": "daily", "count": 3, "until": "2027-01-01"}, "recurrence.until"),
    ({"frequency": "daily", "count": 0}, "recurrence.count"),
    ({"frequency": "daily", "count": 101}, "recurrence.count"),
    ({"frequency": "daily", "count": True}, "recurrence.count"),
    ({"frequency": "daily", "until": "31.12.2026"}, "recurrence.until"),
    ({"frequency": "daily", "count": 2, "interval": 2}, "recurrence.interval"),
])
def test_bad_rules_are_refused_naming_the_field(raw: object, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validate_recurrence(raw)
    assert refused.value.field == field


def test_an_until_before_the_start_or_years_ahead_is_refused() -> None:
    first = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with pytest.raises(ValidationError):
        validate_recurrence({"frequency": "daily", "until": "2026-11-30"}, first)
    with pytest.raises(ValidationError):
        validate_recurrence({"frequency": "daily", "until": "2030-01-01"}, first)
