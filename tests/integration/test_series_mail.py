"""The mail of a recurring series through the real Postgres, conference and series planning and an aiosmtpd
server: one calendar event with RRULE and a stable UID for the whole series, EXDATE when one
occurrence is cancelled, RECURRENCE-ID when one is changed, a rising SEQUENCE, METHOD CANCEL when
the series is cancelled; participants only with the owner's consent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.adapters.db import create_pool
from engine.adapters.db.conferences import ConferenceRepository
from engine.adapters.db.series import SeriesRepository
from engine.app import Engine
from engine.config import Settings
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.domain.numberplan import NumberPlan
from engine.metrics import VecheMetrics
from engine.services.audit import NoAudit
from engine.services.conference_lifecycle import ConferenceLifecycle
from engine.services.conference_limits import PlanChecks
from engine.services.conference_planning import ConferencePlanning
from engine.services.conference_records import ConferenceRecords
from engine.services.limit_guard import LimitGuard
from engine.services.numberplans import NumberPlans
from engine.services.series import SeriesPlanning
from engine.services.series_mail import SeriesMail
from engine.services.series_occurrences import SeriesOccurrences
from tests.integration.test_mail import (
    NotifierInstance,
    SmtpServer,
    by_recipient,
    mail_settings,
    make_account,
    open_instance,
    smtp_server,
)
from tests.support.database import new_database

GUEST = "series-guest@example.org"
CHAIR = "chair@example.org"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
async def sink() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
async def series_database(database_url: str) -> str:
    """A database of its own, so the session engine's notifier never touches these rows."""
    return await new_database(database_url, "veche_series")


@pytest.fixture
async def opened() -> AsyncIterator[list[NotifierInstance]]:
    found: list[NotifierInstance] = []
    yield found
    for instance in found:
        await instance.close()


@dataclass
class Planners:
    conferences: ConferencePlanning
    series: SeriesPlanning
    occurrences: SeriesOccurrences


def planning_only(settings: Settings, engine: Engine, wake_mail: Callable[[], None]) -> Planners:
    """Conference and series planning wired as build_services wires them, but without a call
    service or prompts: nothing is dialled."""
    records = ConferenceRecords(settings, ConferenceRepository(engine.pool), engine.bus, asyncio.Event())
    plans = NumberPlans(NumberPlan.from_settings(settings))
    checks = PlanChecks(records.repo, plans, LimitGuard(VecheMetrics(), NoAudit()))
    lifecycle = ConferenceLifecycle(records, calls=None, prompts=None)  # type: ignore[arg-type]
    conferences = ConferencePlanning(settings, records, checks, lifecycle=lifecycle)
    series_repo = SeriesRepository(engine.pool)
    mail = SeriesMail(settings, engine.pool, series_repo, records, wake_mail=wake_mail)
    occurrences = SeriesOccurrences(settings, series_repo, records, checks, mail=mail, bus=engine.bus)
    series = SeriesPlanning(settings, series_repo, records, checks, planning=conferences, occurrences=occurrences,
                            mail=mail)
    return Planners(conferences, series, occurrences)


async def deliver(mail, sink: SmtpServer, count: int) -> dict:
    while await mail.delivery.deliver_due():
        pass
    return by_recipient(await sink.handler.collect(count))


async def test_series_mail_rrule_exdate_recurrence_id_and_cancel(sink: SmtpServer, settings: Settings,
                                                                 series_database: str,
                                                                 opened: list[NotifierInstance]) -> None:
    configured = mail_settings(settings, series_database, sink.port)
    mail = await open_instance(opened, configured)
    engine = Engine(configured)
    engine.pool = await create_pool(series_database, min_size=1, max_size=4)
    try:
        planners = planning_only(configured, engine, mail.delivery.wake)  # no call is placed
        conferences, series = planners.conferences, planners.series
        await planners.occurrences.start()
        owner = await make_account(engine.pool, email_address=CHAIR, timezone="Europe/Berlin")
        await engine.pool.execute("UPDATE accounts SET max_concurrent_conferences = 1 WHERE id = $1", owner)
        first = datetime(datetime.now(UTC).year + 1, 3, 16, 9, 0, tzinfo=UTC)  # Tuesdays, 10:00 Berlin
        plan = ConferencePlan(subject="Планёрка", start=first, duration_minutes=30, max_participants=5,
                              participants=(ParticipantPlan("375291000001", "Пётр", GUEST),),
                              timezone="Europe/Berlin", notify_participants=True)
        made = await series.plan_series(owner, plan, {"frequency": "weekly", "weekdays": ["tu"], "count": 3})
        occurrences = made["conferences"]
        assert [c.starts_at.hour for c in occurrences] == [9, 9, 8]  # 10:00 local; summer time from 28 March
        assert len({(c.conference_number, c.chair_pin, c.guest_pin) for c in occurrences}) == 1

        invitations = await deliver(mail, sink, 2)
        assert set(invitations) == {GUEST, CHAIR}
        method, event = invitations[GUEST].calendar_event()
        assert method == "REQUEST"
        uid = str(event["UID"])
        assert event["RRULE"]["FREQ"] == ["WEEKLY"] and event["RRULE"]["COUNT"] == [3]
        assert event["DTSTART"].dt.hour == 10 and str(event["DTSTART"].dt.tzinfo) == "Europe/Berlin"
        assert int(event["SEQUENCE"]) == 0
        assert made["chair_pin"] not in invitations[GUEST].raw.decode(errors="replace")

        # cancel this one: the series is re-sent with its start as EXDATE
        await conferences.cancel(owner, occurrences[1].id)
        cancelled = await deliver(mail, sink, 2)
        method, event = cancelled[GUEST].calendar_event()
        assert cancelled[GUEST].kind == "cancellation" and method == "REQUEST"
        assert str(event["UID"]) == uid and int(event["SEQUENCE"]) == 1
        exdates = [d.dt for d in event["EXDATE"].dts]
        assert [d.astimezone(UTC) for d in exdates] == [occurrences[1].starts_at]
        assert "RRULE" in event

        # change this one: RECURRENCE-ID names the rule's start, DTSTART the new one
        moved = occurrences[2].starts_at + timedelta(hours=2)
        await conferences.update(owner, occurrences[2].id, {"start": moved})
        updated = await deliver(mail, sink, 2)
        method, event = updated[GUEST].calendar_event()
        assert method == "REQUEST" and str(event["UID"]) == uid and int(event["SEQUENCE"]) == 2
        assert event["RECURRENCE-ID"].dt.astimezone(UTC) == occurrences[2].starts_at
        assert event["DTSTART"].dt.astimezone(UTC) == moved
        assert "RRULE" not in event

        # change the whole series: the occurrence changed on its own keeps its start and subject
        whole = await series.update_series(owner, made["id"], {"subject": "Weekly sync"})
        subjects = {c.id: c.subject for c in whole["conferences"]}
        assert subjects[occurrences[0].id] == "Weekly sync"
        assert subjects[occurrences[2].id] == "Планёрка"
        updated = await deliver(mail, sink, 2)
        method, event = updated[GUEST].calendar_event()
        assert str(event["SUMMARY"]) == "Weekly sync" and int(event["SEQUENCE"]) == 3 and "RRULE" in event

        # cancel the whole series
        done = await series.cancel_series(owner, made["id"])
        assert done["state"] == "cancelled"
        assert {c.state.value for c in done["conferences"]} == {"cancelled"}
        cancelled = await deliver(mail, sink, 2)
        method, event = cancelled[GUEST].calendar_event()
        assert method == "CANCEL" and str(event["UID"]) == uid and int(event["SEQUENCE"]) == 4
        assert str(event["STATUS"]) == "CANCELLED"
        await planners.occurrences.stop()
    finally:
        await engine.pool.close()


async def test_series_without_consent_mails_only_the_owner(sink: SmtpServer, settings: Settings,
                                                           series_database: str,
                                                           opened: list[NotifierInstance]) -> None:
    configured = mail_settings(settings, series_database, sink.port)
    mail = await open_instance(opened, configured)
    engine = Engine(configured)
    engine.pool = await create_pool(series_database, min_size=1, max_size=4)
    try:
        series = planning_only(configured, engine, mail.delivery.wake).series
        owner = await make_account(engine.pool, email_address="series-owner@example.org")
        plan = ConferencePlan(subject="Daily", start=datetime.now(UTC) + timedelta(days=1), duration_minutes=15,
                              max_participants=5, participants=(ParticipantPlan("375291000002", "Anna", GUEST),))
        await series.plan_series(owner, plan, {"frequency": "daily", "count": 2})
        invitations = await deliver(mail, sink, 1)
        assert set(invitations) == {"series-owner@example.org"}
    finally:
        await engine.pool.close()


async def test_series_occurrence_reminders_once_per_recipient_without_invitations(
        sink: SmtpServer, settings: Settings, series_database: str, opened: list[NotifierInstance]) -> None:
    """A weekly series with a 15-minute reminder whose first occurrence starts in 10 minutes: the
    notifier's scan (sweep + reminders, run twice) sends that occurrence one reminder per consenting
    recipient (the guest with an address and the owner's own copy), filed under the series' UID with
    the occurrence's RECURRENCE-ID, and no invitation of the occurrence's own; an occurrence whose
    reminder fell due beyond the late window is skipped; one without consent reminds only the owner."""
    configured = mail_settings(settings, series_database, sink.port)
    mail = await open_instance(opened, configured)
    engine = Engine(configured)
    engine.pool = await create_pool(series_database, min_size=1, max_size=4)
    pool = engine.pool
    try:
        series = planning_only(configured, engine, mail.delivery.wake).series
        owner = await make_account(pool, email_address="remind-owner@example.org", timezone="Europe/Berlin")
        quiet_owner = await make_account(pool, email_address="quiet-owner@example.org")
        await pool.execute("UPDATE accounts SET mail_own_copy = false WHERE id = $1", quiet_owner)
        first = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        weekly = {"frequency": "weekly", "count": 3,
                  "weekdays": [("mo", "tu", "we", "th", "fr", "sa", "su")[first.astimezone(BERLIN).weekday()]]}
        guests = (ParticipantPlan("375291000011", "Пётр", "remind-guest@example.org"),
                  ParticipantPlan("375291000012", "Без почты", None))
        plan = ConferencePlan(subject="Weekly", start=first, duration_minutes=30, max_participants=5,
                              participants=guests, timezone="Europe/Berlin", reminder_minutes=15,
                              notify_participants=True)
        made = await series.plan_series(owner, plan, weekly)
        occurrences = made["conferences"]
        # no consent for the participants, no own copy for the owner: nobody is reminded
        quiet = await series.plan_series(quiet_owner, ConferencePlan(
            subject="Quiet", start=first, duration_minutes=30, max_participants=5,
            participants=(ParticipantPlan("375291000013", "Anna", "quiet-guest@example.org"),),
            timezone="Europe/Berlin", reminder_minutes=15), weekly | {"count": 2})
        invitations = await deliver(mail, sink, 2)  # the series' own RRULE event, once
        assert set(invitations) == {"remind-guest@example.org", "remind-owner@example.org"}
        uid = str(invitations["remind-guest@example.org"].calendar_event()[1]["UID"])

        # the first occurrence starts in 10 minutes (its reminder fell due 5 minutes ago); the
        # second in 2 minutes (due 13 minutes ago, beyond the 10-minute late window)
        now = datetime.now(UTC).replace(microsecond=0)  # iCalendar times are whole seconds
        due_soon, too_late = occurrences[0], occurrences[1]
        moves = [(due_soon.id, now + timedelta(minutes=10)), (too_late.id, now + timedelta(minutes=2)),
                 (quiet["conferences"][0].id, now + timedelta(minutes=10))]
        for conference_id, start in moves:
            await pool.execute("UPDATE conferences SET starts_at = $2::timestamptz,"
                               " ends_at = $2::timestamptz + interval '30 minutes' WHERE id = $1", conference_id, start)
        new_start = await pool.fetchval("SELECT starts_at FROM conferences WHERE id = $1", due_soon.id)

        queued = 0
        for _ in range(2):  # what the scan loop does on each poll, twice
            queued += await mail.notifier.sweep()
            queued += await mail.notifier.process_reminders()
        assert queued == 2
        reminders = await deliver(mail, sink, 2)
        assert set(reminders) == {"remind-guest@example.org", "remind-owner@example.org"}
        for address, item in reminders.items():
            assert item.kind == "reminder"
            method, event = item.calendar_event()
            assert method == "REQUEST" and str(event["UID"]) == uid and "RRULE" not in event
            assert int(event["SEQUENCE"]) == 0
            assert event["RECURRENCE-ID"].dt.astimezone(UTC) == due_soon.starts_at
            assert event["DTSTART"].dt.astimezone(UTC) == new_start
            assert made["conference_number"] in item.texts()["text/plain"]
            if address == "remind-guest@example.org":
                assert made["chair_pin"].encode() not in item.raw
        assert made["chair_pin"] in reminders["remind-owner@example.org"].texts()["text/plain"]

        # once more through the scan: nothing new is queued or delivered
        assert await mail.notifier.sweep() + await mail.notifier.process_reminders() == 0
        assert await mail.delivery.deliver_due() == 0
        assert sink.handler.received.empty()

        rows = await pool.fetch("""
            SELECT conference_id, kind, recipient, dedup_key FROM mail_outbox
             WHERE conference_id = ANY($1::bigint[]) AND dedup_key NOT LIKE 'series:%'""",
            [c.id for c in occurrences + quiet["conferences"]])
        assert sorted((r["conference_id"], r["kind"], r["recipient"]) for r in rows) == [
            (due_soon.id, "reminder", "remind-guest@example.org"),
            (due_soon.id, "reminder", "remind-owner@example.org")]
        outcomes = dict(await pool.fetch("""
            SELECT conference_id, reminder_outcome FROM mail_calendar WHERE conference_id = ANY($1::bigint[])""",
            [due_soon.id, too_late.id]))
        assert outcomes == {due_soon.id: "queued", too_late.id: "skipped"}
        statuses = await mail.delivery.delivery_status(owner, due_soon.id)
        assert {(s["email"], s["kind"], s["status"]) for s in statuses if s["kind"] == "reminder"} == {
            ("remind-guest@example.org", "reminder", "sent"), ("remind-owner@example.org", "reminder", "sent")}
    finally:
        await pool.close()
