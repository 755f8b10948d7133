"""Recurring conferences: the repeat rule a customer may choose and the local start times it
gives in the owner's time zone (pure: no I/O; occurrences keep their wall-clock time across DST)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import rrule

from engine.domain.errors import ValidationError

FREQUENCIES = ("daily", "weekdays", "weekly", "monthly")
WEEKDAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")
MAX_OCCURRENCES = 100  # a series ends after at most this many occurrences
MAX_SPAN_DAYS = 2 * 366  # ... and within two years of its first one
_RRULE_DAYS = (rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU)


@dataclass(frozen=True)
class Recurrence:
    """How a series repeats: ``frequency`` with ``weekdays`` (weekly only), ending on the date
    ``until`` (inclusive, in the owner's time zone) or after ``count`` occurrences."""

    frequency: str
    weekdays: tuple[str, ...] = ()
    until: date | None = None
    count: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"frequency": self.frequency, "weekdays": list(self.weekdays),
                "until": self.until.isoformat() if self.until else None, "count": self.count}


def validate_recurrence(raw: Any, first_start: datetime | None = None) -> Recurrence:
    """A Recurrence from a mapping (API body, form, stored JSON), or ValidationError naming the field."""
    if isinstance(raw, Recurrence):
        raw = raw.as_dict()
    if not isinstance(raw, dict):
        raise ValidationError("the repeat rule must be an object", "recurrence")
    unknown = set(raw) - {"frequency", "weekdays", "until", "count"}
    if unknown:
        raise ValidationError(f"unknown field {sorted(unknown)[0]}", "recurrence." + sorted(unknown)[0])
    frequency = raw.get("frequency")
    if frequency not in FREQUENCIES:
        raise ValidationError("repeat daily, on weekdays, weekly or monthly", "recurrence.frequency")
    weekdays_raw = raw.get("weekdays") or ()
    if not isinstance(weekdays_raw, (list, tuple)) or any(d not in WEEKDAYS for d in weekdays_raw):
        raise ValidationError("weekdays are mo, tu, we, th, fr, sa, su", "recurrence.weekdays")
    weekdays = tuple(d for d in WEEKDAYS if d in weekdays_raw)
    if frequency == "weekly" and not weekdays:
        raise ValidationError("choose at least one day of the week", "recurrence.weekdays")
    if frequency != "weekly":
        weekdays = ()
    until, count = raw.get("until"), raw.get("count")
    if isinstance(until, str) and until:
        try:
            until = date.fromisoformat(until)
        except ValueError:
            raise ValidationError("the last day must be a date (YYYY-MM-DD)", "recurrence.until") from None
    elif until in ("", None):
        until = None
    elif not isinstance(until, date) or isinstance(until, datetime):
        raise ValidationError("the last day must be a date (YYYY-MM-DD)", "recurrence.until")
    if count in ("", None):
        count = None
    elif isinstance(count, str) and count.isdigit():
        count = int(count)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)
                              or not 1 <= count <= MAX_OCCURRENCES):
        raise ValidationError(f"the number of occurrences must be 1 to {MAX_OCCURRENCES}", "recurrence.count")
    if (until is None) == (count is None):
        raise ValidationError("end the series on a date or after a number of occurrences (one of them)",
                              "recurrence.until")
    if until is not None and first_start is not None:
        days = (until - first_start.date()).days
        if days < 0:
            raise ValidationError("the last day is before the first occurrence", "recurrence.until")
        if days > MAX_SPAN_DAYS:
            raise ValidationError("a series may span at most two years", "recurrence.until")
    return Recurrence(frequency=frequency, weekdays=weekdays, until=until, count=count)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("unknown time zone", "timezone") from None


def _rule(recurrence: Recurrence, first_local: datetime) -> rrule.rrule:
    """The dateutil rule over naive local wall-clock times."""
    kwargs: dict[str, Any] = {"dtstart": first_local}
    if recurrence.count is not None:
        kwargs["count"] = recurrence.count
    else:
        kwargs["until"] = datetime.combine(recurrence.until, time(23, 59, 59))  # type: ignore[arg-type]
    if recurrence.frequency == "daily":
        return rrule.rrule(rrule.DAILY, **kwargs)
    if recurrence.frequency == "weekdays":
        return rrule.rrule(rrule.DAILY, byweekday=_RRULE_DAYS[:5], **kwargs)
    if recurrence.frequency == "weekly":
        days = [_RRULE_DAYS[WEEKDAYS.index(d)] for d in recurrence.weekdays]
        return rrule.rrule(rrule.WEEKLY, byweekday=days, **kwargs)
    return rrule.rrule(rrule.MONTHLY, **kwargs)  # on the first start's day of the month


def local_starts(recurrence: Recurrence, first_start: datetime, timezone: str) -> list[datetime]:
    """Every occurrence's start as an aware time in ``timezone``: the wall-clock time of the
    first start on each day the rule gives (10:00 stays 10:00 when summer time begins or ends).
    A weekly rule starts on the first chosen day on or after the first start."""
    tz = zone(timezone)
    first_local = first_start.astimezone(tz).replace(tzinfo=None)
    return [moment.replace(tzinfo=tz) for moment in islice(_rule(recurrence, first_local), MAX_OCCURRENCES)]


def occurrence_starts(recurrence: Recurrence, first_start: datetime, timezone: str) -> list[datetime]:
    """The occurrences' starts in UTC, in order."""
    return [moment.astimezone(UTC) for moment in local_starts(recurrence, first_start, timezone)]


def ical_rule(recurrence: Recurrence, first_start: datetime, timezone: str) -> dict[str, Any]:
    """The RRULE value for the series' calendar event (icalendar's vRecur mapping); a series
    ended by a date carries UNTIL as the last occurrence's start in UTC."""
    value: dict[str, Any] = {}
    if recurrence.frequency == "weekdays":
        value = {"FREQ": "WEEKLY", "BYDAY": ["MO", "TU", "WE", "TH", "FR"]}
    elif recurrence.frequency == "weekly":
        value = {"FREQ": "WEEKLY", "BYDAY": [d.upper() for d in recurrence.weekdays]}
    else:
        value = {"FREQ": recurrence.frequency.upper()}
    if recurrence.count is not None:
        value["COUNT"] = recurrence.count
    else:
        starts = occurrence_starts(recurrence, first_start, timezone)
        value["UNTIL"] = starts[-1] if starts else first_start.astimezone(UTC)
    return value
