"""The occurrences of a recurring series over fakes of our own repositories: the next
``series_ahead`` ones exist as scheduled conferences, one that is over makes room for the next,
an occurrence that passed unstarted is not created, and nothing is topped up while the series is
changed whole."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.config import Settings
from engine.domain.model import ConferenceState
from engine.services.bus import DomainEvent, EventBus
from engine.services.conference_limits import PlanChecks
from engine.services.conference_records import ConferenceRecords
from engine.services.series_mail import SeriesMail
from engine.services.series_occurrences import SeriesOccurrences
from tests.unit.fakes import FakeConferenceRepo, FakeGuard, FakePlans, FakeSeriesRepo, until

PLAN = {"mode": "voice", "guest_pin_required": True, "duration_minutes": 30, "max_participants": 5,
        "auto_invite": True, "auto_extend_minutes": 0, "reminder_minutes": None, "language": "ru",
        "notify_participants": False, "recording": False, "participants": []}


def build(first_start: datetime, count: int = 10) -> tuple[SeriesOccurrences, FakeConferenceRepo, EventBus]:
    settings = Settings(test_mode=True, series_ahead=2, minute_seconds=60.0)
    conferences, bus = FakeConferenceRepo(), EventBus()
    series_repo = FakeSeriesRepo(conferences)
    series_repo.series[7] = {"id": 7, "owner_id": 5, "kind": "recurring", "state": "active", "subject": "Daily",
                             "plan": PLAN, "recurrence": {"frequency": "daily", "weekdays": [], "until": None,
                                                          "count": count},
                             "first_start": first_start, "timezone": "UTC", "conference_number": "123456",
                             "chair_pin": "111111", "guest_pin": "222222"}
    records = ConferenceRecords(settings, conferences, bus, asyncio.Event())  # type: ignore[arg-type]
    checks = PlanChecks(conferences, FakePlans(None), FakeGuard())  # type: ignore[arg-type]
    mail = SeriesMail(settings, None, series_repo, records)  # type: ignore[arg-type]
    occurrences = SeriesOccurrences(settings, series_repo, records, checks, mail=mail,  # type: ignore[arg-type]
                                    bus=bus)
    return occurrences, conferences, bus


def starts(conferences: FakeConferenceRepo, state: ConferenceState | None = None) -> list[datetime]:
    return sorted(c.starts_at for c in conferences.conferences.values() if state in (None, c.state))


async def end(conferences: FakeConferenceRepo, bus: EventBus, conference_id: int) -> None:
    ended = conferences.conferences[conference_id] = replace(conferences.conferences[conference_id],
                                                             state=ConferenceState.ENDED)
    await bus.publish(DomainEvent(kind="conference.ended", conference_id=ended.id, owner_id=ended.owner_id))


async def test_the_next_occurrences_are_kept_ahead_and_one_over_makes_room() -> None:
    first = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    occurrences, conferences, bus = build(first)
    await occurrences.start()
    assert starts(conferences) == [first, first + timedelta(days=1)]
    first_id = min(conferences.conferences)
    detail: dict[str, Any] = conferences.events[0][2]
    assert detail["series_id"] == 7 and conferences.kinds(first_id) == ["conference.scheduled"]
    await end(conferences, bus, first_id)
    await until(lambda: len(conferences.conferences) == 3)
    assert starts(conferences, ConferenceState.SCHEDULED) == [first + timedelta(days=1), first + timedelta(days=2)]
    await occurrences.materialise(7)  # already two ahead: nothing more
    assert len(conferences.conferences) == 3
    await occurrences.stop()


async def test_an_occurrence_that_passed_unstarted_is_not_created() -> None:
    first = (datetime.now(UTC) - timedelta(days=1) + timedelta(minutes=10)).replace(microsecond=0)  # yesterday: over
    occurrences, conferences, _ = build(first)
    created = await occurrences.materialise(7)
    assert [c.starts_at for c in created] == [first + timedelta(days=1), first + timedelta(days=2)]


async def test_nothing_is_topped_up_while_the_series_is_changed_whole() -> None:
    first = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    occurrences, conferences, bus = build(first, count=2)
    await occurrences.start()
    with occurrences.mail.changing_whole(7):
        await end(conferences, bus, min(conferences.conferences))
    await occurrences.stop()
    assert len(conferences.conferences) == 2
