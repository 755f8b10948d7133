"""The occurrences of a recurring series: its next ``series_ahead`` ones exist as scheduled
conferences, topped up whenever one of them is over; an occurrence changed or cancelled on its
own is told in the series' calendar mail."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from engine.adapters.db.conferences import OverLimit
from engine.adapters.db.series import SeriesRepository
from engine.config import Settings
from engine.domain.model import Conference
from engine.domain.notifications import MessageKind
from engine.domain.recurrence import Recurrence, occurrence_starts, validate_recurrence
from engine.services.bus import Bus, DomainEvent
from engine.services.calls import now_utc
from engine.services.conference_limits import PlanChecks
from engine.services.conference_records import ConferenceRecords
from engine.services.series_mail import SeriesMail

log = logging.getLogger(__name__)

TOP_UP_ON = frozenset({"conference.ended", "conference.cancelled", "conference.failed"})


class SeriesOccurrences:
    """Materialises the occurrences of the active recurring series and reacts to their events."""

    def __init__(self, settings: Settings, repo: SeriesRepository, records: ConferenceRecords, checks: PlanChecks,
                 *, mail: SeriesMail, bus: Bus) -> None:
        self.settings = settings
        self.repo = repo
        self.records = records
        self.conferences = records.repo
        self.checks = checks
        self.mail = mail
        self.bus = bus
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.bus.subscribe(self.on_event, kinds=TOP_UP_ON | {"conference.updated"})
        for series_id in await self.repo.active_recurring():
            try:
                await self.materialise(series_id)
            except Exception:  # noqa: BLE001 - one series must not keep the engine from starting
                log.exception("series %s: occurrences not materialised", series_id)

    async def stop(self) -> None:
        self.bus.unsubscribe(self.on_event)
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def on_event(self, event: DomainEvent) -> None:
        """An occurrence changed or cancelled on its own ("this one", through any path: API,
        portal) is told with RECURRENCE-ID or EXDATE; one that is over makes room for the next
        (it hears TOP_UP_ON and conference.updated only)."""
        conference = await self.conferences.get(event.conference_id, with_participants=False)
        if conference is None or conference.series_id is None or self.mail.is_changing_whole(conference.series_id):
            return
        series = await self.repo.get(conference.series_id)
        if series is None or series["kind"] != "recurring":
            return
        if event.kind == "conference.updated":
            await self.repo.mark_changed(conference.id)
            await self.mail.send(series, MessageKind.UPDATE, conference, recurrence_id=conference.occurrence_at)
            return
        if event.kind == "conference.cancelled":
            await self.mail.send(series, MessageKind.CANCELLATION, conference)
        if series["state"] == "active":
            task = asyncio.create_task(self._top_up(series["id"]), name=f"series-top-up-{series['id']}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _top_up(self, series_id: int) -> None:
        try:
            await self.materialise(series_id)
        except Exception:  # noqa: BLE001 - logged; the next occurrence's end or a restart tries again
            log.exception("series %s: occurrences not topped up", series_id)

    async def materialise(self, series_id: int, actor: str = "engine") -> list[Conference]:
        """Store the series' next occurrences as scheduled conferences, up to ``series_ahead``
        upcoming ones; returns those created now. OverLimit of an occurrence is a LimitExceeded."""
        lock = self._locks.setdefault(series_id, asyncio.Lock())
        async with lock:
            series = await self.repo.get(series_id)
            if series is None or series["state"] != "active" or series["kind"] != "recurring":
                return []
            plan = series["plan"]
            rule = Recurrence(**{**series["recurrence"], "weekdays": tuple(series["recurrence"]["weekdays"]),
                                 "until": validate_recurrence(series["recurrence"]).until})
            duration = self.records.minutes(plan["duration_minutes"])
            known = await self.repo.occurrence_starts(series_id)
            now = now_utc()
            upcoming = sum(1 for at, state in known.items() if state == "scheduled" and at >= now)
            created: list[Conference] = []
            for start in occurrence_starts(rule, series["first_start"], series["timezone"]):
                if upcoming >= self.settings.series_ahead:
                    break
                if start in known or start + duration <= now:
                    continue
                created.append(await self._insert_occurrence(series, start, duration, actor))
                upcoming += 1
        if created:
            self.records.wake_scheduler()
        return created

    async def _insert_occurrence(self, series: dict[str, Any], start: datetime, duration: timedelta,
                                 actor: str) -> Conference:
        plan = series["plan"]
        fields = {
            "owner_id": series["owner_id"], "subject": series["subject"], "mode": plan["mode"],
            "node_id": self.settings.node_id, "room": f"veche-{secrets.token_hex(8)}",
            "conference_number": series["conference_number"], "chair_pin": series["chair_pin"],
            "guest_pin": series["guest_pin"], "guest_pin_required": plan["guest_pin_required"],
            "immediate": False, "starts_at": start, "duration_minutes": plan["duration_minutes"],
            "ends_at": start + duration, "timezone": series["timezone"],
            "max_participants": plan["max_participants"], "auto_invite": plan["auto_invite"],
            "auto_extend_minutes": plan["auto_extend_minutes"],
            "extend_cap_minutes": self.settings.extend_cap_minutes, "reminder_minutes": plan["reminder_minutes"],
            "language": plan["language"], "notify_participants": plan["notify_participants"],
            "recording": plan["recording"], "series_id": series["id"], "occurrence_at": start,
        }
        participants = [{**p, "node_id": self.settings.node_id} for p in plan["participants"]]
        try:
            conference = await self.conferences.insert_conference(fields, participants)
        except OverLimit as exc:
            raise self.checks.concurrency_refused(series["owner_id"], exc) from None
        await self.conferences.log_event(conference.id, "conference.scheduled", actor=actor,
                                         detail={"subject": conference.subject, "immediate": False,
                                                 "starts_at": conference.starts_at.isoformat(),
                                                 "participants": len(participants),
                                                 "series_id": series["id"]})
        await self.records.publish("conference.scheduled", conference, series_id=series["id"])
        return conference

