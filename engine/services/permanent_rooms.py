"""Permanent rooms: a standing conference number and PINs that answer dial-in whenever called;
each session is one ordinary conference row from the first join to the last leave."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable
from typing import Any

import asyncpg

from engine.adapters.db.conferences import OverLimit
from engine.adapters.db.series import SeriesRepository
from engine.config import Settings
from engine.domain.errors import NotFound, StateConflict, ValidationError
from engine.domain.model import Conference, ConferencePlan, ConferenceState
from engine.domain.pins import generate_conference_number, generate_pins
from engine.domain.planning import MAX_DURATION_MINUTES
from engine.services.bus import Bus, DomainEvent
from engine.services.calls import now_utc
from engine.services.conference_lifecycle import ConferenceLifecycle
from engine.services.conference_limits import PlanChecks
from engine.services.conference_records import ConferenceRecords, actor_of
from engine.services.series import SeriesPlanning, plan_json
from engine.services.series_mail import SeriesMail

log = logging.getLogger(__name__)
NOT_SESSIONS_KEPT = 10_000  # conferences remembered as no room's session (then forgotten all at once)


class PermanentRooms:
    """Plans and closes permanent rooms and opens and closes their sessions for dial-in."""

    def __init__(self, settings: Settings, repo: SeriesRepository, records: ConferenceRecords, checks: PlanChecks,
                 *, series: SeriesPlanning, lifecycle: ConferenceLifecycle, mail: SeriesMail, bus: Bus) -> None:
        self.settings = settings
        self.repo = repo
        self.records = records
        self.conferences = records.repo
        self.checks = checks
        self.series = series
        self.lifecycle = lifecycle
        self.mail = mail
        self.bus = bus
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        # conferences seen to be no room's session (a conference's series and occurrence never
        # change), so that their participants' leaving needs no look-up
        self._not_sessions: set[int] = set()

    async def start(self) -> None:
        self.bus.subscribe(self.on_event, kinds=("participant.state",))

    async def stop(self) -> None:
        self.bus.unsubscribe(self.on_event)
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def on_event(self, event: DomainEvent) -> Awaitable[None] | None:
        """A participant who left a room's session may have been its last one; any other state
        (a burst's calling and connected) costs no coroutine."""
        if event.kind == "participant.state" and event.data.get("state") in ("left", "failed"):
            return self._on_left(event)
        return None

    async def _on_left(self, event: DomainEvent) -> None:
        if event.conference_id in self._not_sessions:
            return
        conference = await self.conferences.get(event.conference_id, with_participants=False)
        if conference is not None and (conference.series_id is None or conference.occurrence_at is not None):
            if len(self._not_sessions) >= NOT_SESSIONS_KEPT:
                self._not_sessions.clear()
            self._not_sessions.add(conference.id)
            return
        if conference is None or conference.state != ConferenceState.RUNNING:
            return
        task = asyncio.create_task(self._close_if_empty(conference.id), name=f"room-session-{conference.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def plan_room(self, owner_id: int, plan: ConferencePlan, wait_for_chair: bool) -> dict[str, Any]:
        """A permanent room: a standing conference number and PINs, open for dial-in whenever
        called. ``plan`` gives the subject, the participant limit, the guest PIN switch and the
        voice language; its start and duration are not used (a session lasts while anyone is in
        it, at most the longest conference)."""
        rules = await self.checks.rules(owner_id)
        checked = await self.checks.checked_plan(owner_id, plan, rules)
        if not isinstance(wait_for_chair, bool):
            raise ValidationError("guests_wait_for_chair is true or false", "guests_wait_for_chair")
        language = checked.language or rules.language
        for _ in range(20):
            chair_pin, guest_pin = generate_pins(self.settings.pin_length)
            try:
                room = await self.repo.insert({
                    "owner_id": owner_id, "kind": "permanent", "subject": checked.subject,
                    "plan": {**plan_json(checked, language), "participants": [], "auto_invite": False,
                             "duration_minutes": MAX_DURATION_MINUTES},
                    "timezone": checked.timezone, "guests_wait_for_chair": wait_for_chair,
                    "conference_number": generate_conference_number(self.settings.conference_number_length),
                    "chair_pin": chair_pin, "guest_pin": guest_pin,
                    "mail_uid": self.mail.new_uid("room")})
                return await self.series.get(owner_id, room["id"])
            except asyncpg.UniqueViolationError:
                continue  # the random conference number is in use: draw another
        raise ValidationError("no free conference number; try again later", "subject")

    async def close_room(self, owner_id: int | None, room_id: int) -> dict[str, Any]:
        """Close a permanent room: its number stops answering; a session in progress is ended."""
        room = await self.repo.get(room_id, owner_id)
        if room is None or room["kind"] != "permanent":
            raise NotFound("no such room")
        if room["state"] != "active":
            raise StateConflict("the room is closed")
        await self.repo.update(room_id, state="cancelled")
        for conference_id in await self.repo.conference_ids(room_id, ("running",)):
            await self.lifecycle.end_conference(conference_id, reason="room_closed", actor=actor_of(owner_id))
        return await self.series.get(owner_id, room_id)

    async def standing(self, conference_number: str) -> Conference | None:
        """The permanent room answering this number, as a conference not yet in session (id 0)
        for the PIN check of dial-in; None when no open room has the number."""
        room = await self.repo.room_by_number(conference_number)
        if room is None:
            return None
        plan = room["plan"]
        now = now_utc()
        return Conference(
            id=0, owner_id=room["owner_id"], subject=room["subject"], mode="voice", node_id=self.settings.node_id,
            room="", conference_number=room["conference_number"], chair_pin=room["chair_pin"],
            guest_pin=room["guest_pin"], guest_pin_required=plan["guest_pin_required"], immediate=True,
            starts_at=now, duration_minutes=plan["duration_minutes"], ends_at=now, timezone=room["timezone"],
            max_participants=plan["max_participants"], auto_invite=False, auto_extend_minutes=0,
            extend_cap_minutes=0, extended_minutes=0, reminder_minutes=None, locked=False,
            state=ConferenceState.SCHEDULED, language=plan["language"], series_id=room["id"],
            wait_for_chair=room["guests_wait_for_chair"])

    async def open_session(self, room_id: int) -> Conference:
        """The room's running session, started now when there is none: one conference row from
        the first join to the last leave (one History entry), within the account's limit of
        concurrent conferences (LimitExceeded beyond it)."""
        room = await self.repo.get(room_id)
        if room is None or room["kind"] != "permanent" or room["state"] != "active":
            raise NotFound("no such room")
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            for _ in range(3):
                running = await self.repo.conference_ids(room_id, ("scheduled", "running"))
                if running:
                    conference = await self.conferences.get(running[0], with_participants=False)
                    if conference is not None and conference.state == ConferenceState.RUNNING:
                        return conference
                    started = await self.lifecycle.start_conference(running[0])
                    if started is not None:
                        return started
                    continue
                plan = room["plan"]
                now = now_utc()
                fields = {
                    "owner_id": room["owner_id"], "subject": room["subject"], "mode": "voice",
                    "node_id": self.settings.node_id, "room": f"veche-{secrets.token_hex(8)}",
                    "conference_number": room["conference_number"], "chair_pin": room["chair_pin"],
                    "guest_pin": room["guest_pin"], "guest_pin_required": plan["guest_pin_required"],
                    "immediate": True, "starts_at": now, "duration_minutes": plan["duration_minutes"],
                    "ends_at": now + self.records.minutes(plan["duration_minutes"]),
                    "timezone": room["timezone"], "max_participants": plan["max_participants"],
                    "auto_invite": False, "auto_extend_minutes": 0,
                    "extend_cap_minutes": self.settings.extend_cap_minutes, "reminder_minutes": None,
                    "language": plan["language"], "notify_participants": False, "recording": False,
                    "series_id": room_id, "wait_for_chair": room["guests_wait_for_chair"],
                }
                try:
                    conference = await self.conferences.insert_conference(fields, ())
                except asyncpg.UniqueViolationError:
                    continue  # another engine opened the session meanwhile
                except OverLimit as exc:
                    raise self.checks.concurrency_refused(room["owner_id"], exc) from None
                await self.conferences.log_event(conference.id, "conference.scheduled", actor="dialin",
                                                 detail={"subject": conference.subject, "immediate": True,
                                                         "starts_at": now.isoformat(), "participants": 0,
                                                         "series_id": room_id})
                started = await self.lifecycle.start_conference(conference.id, actor="dialin")
                if started is not None:
                    return started
            raise StateConflict("the room's session could not start")

    async def _close_if_empty(self, conference_id: int) -> None:
        """A room's session ends when its last participant has left."""
        await asyncio.sleep(0)
        if await self.repo.present(conference_id):
            return
        await self.lifecycle.end_conference(conference_id, reason="room_empty", actor="engine")

