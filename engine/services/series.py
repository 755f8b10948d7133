"""Recurring conferences and permanent rooms: one plan, one conference number and one pair of
PINs shared by many ordinary conference rows (occurrences, or a room's sessions), so the
scheduler, the limits, dial-in and History handle each of them unchanged.

A series is materialised ahead: its next ``series_ahead`` occurrences exist as scheduled
conferences, topped up whenever one of them is over. Its mail is one calendar event with RRULE
(UID and SEQUENCE kept on the series), EXDATE for a cancelled occurrence and RECURRENCE-ID for a
changed one, queued in the same outbox as every other conference mail."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from engine.adapters.db import notifications as mail_repo
from engine.adapters.db.conferences import OverLimit
from engine.adapters.db.series import SeriesRepository
from engine.config import Settings
from engine.domain.errors import NotFound, StateConflict, ValidationError
from engine.domain.model import Conference, ConferencePlan, ConferenceState, ParticipantPlan
from engine.domain.notifications import ConferenceFacts, MessageKind, Recipient, RecipientRole
from engine.domain.pins import generate_conference_number, generate_pins
from engine.domain.planning import MAX_DURATION_MINUTES
from engine.domain.recurrence import Recurrence, ical_rule, occurrence_starts, validate_recurrence
from engine.domain.text import flatten
from engine.services.bus import Bus, DomainEvent
from engine.services.calls import now_utc
from engine.services.conferences import START_IN_PAST_TOLERANCE, ConferenceService, actor_of
from engine.services.mail_messages import MailComposer

log = logging.getLogger(__name__)

TOP_UP_ON = frozenset({"conference.ended", "conference.cancelled", "conference.failed"})
SERIES_FIELDS = frozenset({"subject", "duration_minutes", "max_participants", "auto_invite", "auto_extend_minutes",
                           "guest_pin_required", "reminder_minutes", "participants", "language",
                           "notify_participants", "recording"})


def _plan_json(plan: ConferencePlan, language: str) -> dict[str, Any]:
    data = asdict(plan)
    data.pop("start")
    data["language"] = language
    data["participants"] = [{"number": p.number, "name": p.name, "email": p.email, "role": str(p.role)}
                            for p in plan.participants]
    return data


class SeriesService:
    """Plans, materialises, changes and cancels recurring series."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, bus: Bus, conferences: ConferenceService,
                 wake_mail: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.bus = bus
        self.conferences = conferences
        self.repo = SeriesRepository(pool)
        self.composer = MailComposer(settings.mail_from)
        self.wake_mail = wake_mail or (lambda: None)
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self._busy: set[int] = set()  # series being changed whole: their occurrences' events are not mailed one by one

    async def start(self) -> None:
        self.bus.subscribe(self.on_event)
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
        portal) is told with RECURRENCE-ID or EXDATE; one that is over makes room for the next."""
        if event.kind == "participant.state" and event.data.get("state") in ("left", "failed"):
            await self._on_left(event)
            return
        if event.kind not in TOP_UP_ON and event.kind != "conference.updated":
            return
        conference = await self.conferences.repo.get(event.conference_id, with_participants=False)
        if conference is None or conference.series_id is None or conference.series_id in self._busy:
            return
        series = await self.repo.get(conference.series_id)
        if series is None or series["kind"] != "recurring":
            return
        if event.kind == "conference.updated":
            await self.repo.mark_changed(conference.id)
            await self._mail(series, MessageKind.UPDATE, conference, recurrence_id=conference.occurrence_at)
            return
        if event.kind == "conference.cancelled":
            await self._mail(series, MessageKind.CANCELLATION, conference)
        if series["state"] == "active":
            task = asyncio.create_task(self._top_up(series["id"]), name=f"series-top-up-{series['id']}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _on_left(self, event: DomainEvent) -> None:
        conference = await self.conferences.repo.get(event.conference_id, with_participants=False)
        if conference is None or conference.series_id is None or conference.occurrence_at is not None \
                or conference.state != ConferenceState.RUNNING:
            return
        task = asyncio.create_task(self._close_if_empty(conference.id), name=f"room-session-{conference.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _top_up(self, series_id: int) -> None:
        try:
            await self.materialise(series_id)
        except Exception:  # noqa: BLE001 - logged; the next occurrence's end or a restart tries again
            log.exception("series %s: occurrences not topped up", series_id)

    # ----------------------------------------------------------------- reading

    async def get(self, owner_id: int | None, series_id: int) -> dict[str, Any]:
        """The series with its conferences (earliest first); NotFound when not the owner's."""
        series = await self.repo.get(series_id, owner_id)
        if series is None:
            raise NotFound("no such series")
        series["conferences"] = [await self.conferences.repo.get(cid, with_participants=False)
                                 for cid in await self.repo.conference_ids(series_id)]
        return series

    async def list(self, owner_id: int | None, kind: str | None = None) -> list[dict[str, Any]]:
        return await self.repo.list(owner_id, kind)

    # ----------------------------------------------------------------- planning

    async def plan_series(self, owner_id: int, plan: ConferencePlan, recurrence: Any) -> dict[str, Any]:
        """Validate and store a recurring series and its first occurrences; all of them share one
        conference number and PINs. Every occurrence is checked against the account's limit of
        concurrent conferences; when one is refused, nothing of the series is kept."""
        limits = await self.conferences._limits(owner_id)
        checked = await self.conferences._checked_plan(owner_id, plan, limits)
        if checked.start is None:
            raise ValidationError("a recurring conference needs a first start time", "start")
        if checked.start < now_utc() - START_IN_PAST_TOLERANCE:
            raise ValidationError("the start time is in the past", "start")
        rule = validate_recurrence(recurrence, checked.start)
        starts = occurrence_starts(rule, checked.start, checked.timezone)
        if not starts:
            raise ValidationError("the repeat rule gives no occurrence", "recurrence")
        language = checked.language or (await self.conferences.repo.account_limits(owner_id) or {}).get(
            "language", "ru")
        series = None
        for _ in range(20):
            chair_pin, guest_pin = generate_pins(self.settings.pin_length)
            try:
                series = await self.repo.insert({
                    "owner_id": owner_id, "kind": "recurring", "subject": checked.subject,
                    "plan": _plan_json(checked, language), "recurrence": rule.as_dict(), "first_start": starts[0],
                    "timezone": checked.timezone,
                    "conference_number": generate_conference_number(self.settings.conference_number_length),
                    "chair_pin": chair_pin, "guest_pin": guest_pin,
                    "mail_uid": f"veche-series-{secrets.token_hex(12)}@{self.composer.domain}"})
                break
            except asyncpg.UniqueViolationError:
                continue  # the random conference number is in use: draw another
        if series is None:
            raise ValidationError("no free conference number; try again later", "subject")
        try:
            created = await self.materialise(series["id"], actor=actor_of(owner_id))
        except BaseException:
            await self.repo.delete(series["id"])  # its occurrences go with it
            raise
        if created:
            await self._mail(series, MessageKind.INVITATION, created[0])
        return await self.get(owner_id, series["id"])

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
            duration = self.conferences.minutes(plan["duration_minutes"])
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
            self.conferences._wake_scheduler()
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
            conference = await self.conferences.repo.insert_conference(fields, participants)
        except OverLimit as exc:
            raise self.conferences._concurrency_refused(series["owner_id"], exc) from None
        await self.conferences.repo.log_event(conference.id, "conference.scheduled", actor=actor,
                                              detail={"subject": conference.subject, "immediate": False,
                                                      "starts_at": conference.starts_at.isoformat(),
                                                      "participants": len(participants),
                                                      "series_id": series["id"]})
        await self.bus.publish(DomainEvent(kind="conference.scheduled", conference_id=conference.id,
                                           owner_id=conference.owner_id, data={"series_id": series["id"]}))
        return conference

    # ----------------------------------------------------------------- the whole series

    async def update_series(self, owner_id: int | None, series_id: int, changes: dict) -> dict[str, Any]:
        """Change every upcoming occurrence that was not changed on its own, and the plan of
        the occurrences still to come. The start and the repeat rule stay (a series that should
        move is cancelled and planned anew)."""
        series = await self.repo.get(series_id, owner_id)
        if series is None or series["kind"] != "recurring":
            raise NotFound("no such series")
        if series["state"] != "active":
            raise StateConflict("the series is cancelled")
        unknown = set(changes) - SERIES_FIELDS
        if unknown:
            field = sorted(unknown)[0]
            raise ValidationError("%(name)s cannot be changed for the whole series", field, name=field)
        scheduled = await self.repo.conference_ids(series_id, ("scheduled",))
        plan = dict(series["plan"])
        limits = await self.conferences._limits(series["owner_id"])
        current = ConferencePlan(**{**plan, "start": series["first_start"],
                                    "participants": tuple(ParticipantPlan(**p) for p in plan["participants"])})
        proposed = {**asdict(current), **changes}
        try:
            proposed["participants"] = tuple(
                p if isinstance(p, ParticipantPlan) else ParticipantPlan(**p) for p in proposed["participants"])
        except TypeError:
            raise ValidationError("each participant needs a number (and optionally name, email, role)",
                                  "participants") from None
        checked = await self.conferences._checked_plan(series["owner_id"], ConferencePlan(**proposed), limits)
        anchor: Conference | None = None
        self._busy.add(series_id)
        try:
            for conference_id in scheduled:
                conference = await self.conferences.repo.get(conference_id, with_participants=False)
                if conference is None or conference.occurrence_changed:
                    continue
                anchor = await self.conferences.update(owner_id, conference_id, changes)
        finally:
            self._busy.discard(series_id)
        series = await self.repo.update(series_id, subject=checked.subject,
                                        plan=_plan_json(checked, checked.language or plan["language"]))
        await self._mail(series, MessageKind.UPDATE, anchor)
        return await self.get(owner_id, series_id)

    async def cancel_series(self, owner_id: int | None, series_id: int) -> dict[str, Any]:
        """Cancel every upcoming occurrence and the series; the calendar event is cancelled whole."""
        series = await self.repo.get(series_id, owner_id)
        if series is None or series["kind"] != "recurring":
            raise NotFound("no such series")
        if series["state"] != "active":
            raise StateConflict("the series is cancelled")
        series = await self.repo.update(series_id, state="cancelled")
        last: Conference | None = None
        self._busy.add(series_id)
        try:
            for conference_id in await self.repo.conference_ids(series_id, ("scheduled",)):
                with contextlib.suppress(StateConflict):  # started meanwhile: it runs to its end
                    last = await self.conferences.cancel(owner_id, conference_id)
        finally:
            self._busy.discard(series_id)
        await self._mail(series, MessageKind.CANCELLATION, last, whole=True)
        return await self.get(owner_id, series_id)

    async def reissue_pins(self, owner_id: int | None, series_id: int) -> dict[str, Any]:
        """New chair and guest PINs for the series and every upcoming occurrence (after a PIN
        leaked); the conference number stays, the calendar is re-sent. A running occurrence
        keeps the PINs it started with (its callers are in the room already)."""
        series = await self.repo.get(series_id, owner_id)
        if series is None:
            raise NotFound("no such series")
        if series["state"] != "active":
            raise StateConflict("the series is cancelled")
        chair_pin, guest_pin = generate_pins(self.settings.pin_length)
        series = await self.repo.update(series_id, chair_pin=chair_pin, guest_pin=guest_pin)
        for conference_id in await self.repo.conference_ids(series_id, ("scheduled",)):
            await self.conferences.repo.update(conference_id, chair_pin=chair_pin, guest_pin=guest_pin)
            await self.conferences.repo.log_event(conference_id, "conference.pins_reissued",
                                                  actor=actor_of(owner_id))
        if series["kind"] == "recurring":
            await self._mail(series, MessageKind.UPDATE, None)
        return await self.get(owner_id, series_id)

    # ----------------------------------------------------------------- permanent rooms

    async def plan_room(self, owner_id: int, plan: ConferencePlan, wait_for_chair: bool) -> dict[str, Any]:
        """A permanent room: a standing conference number and PINs, open for dial-in whenever
        called. ``plan`` gives the subject, the participant limit, the guest PIN switch and the
        voice language; its start and duration are not used (a session lasts while anyone is in
        it, at most the longest conference)."""
        limits = await self.conferences._limits(owner_id)
        checked = await self.conferences._checked_plan(owner_id, plan, limits)
        if not isinstance(wait_for_chair, bool):
            raise ValidationError("guests_wait_for_chair is true or false", "guests_wait_for_chair")
        language = checked.language or (await self.conferences.repo.account_limits(owner_id) or {}).get(
            "language", "ru")
        for _ in range(20):
            chair_pin, guest_pin = generate_pins(self.settings.pin_length)
            try:
                room = await self.repo.insert({
                    "owner_id": owner_id, "kind": "permanent", "subject": checked.subject,
                    "plan": {**_plan_json(checked, language), "participants": [], "auto_invite": False,
                             "duration_minutes": MAX_DURATION_MINUTES},
                    "timezone": checked.timezone, "guests_wait_for_chair": wait_for_chair,
                    "conference_number": generate_conference_number(self.settings.conference_number_length),
                    "chair_pin": chair_pin, "guest_pin": guest_pin,
                    "mail_uid": f"veche-room-{secrets.token_hex(12)}@{self.composer.domain}"})
                return await self.get(owner_id, room["id"])
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
            await self.conferences.end_conference(conference_id, reason="room_closed", actor=actor_of(owner_id))
        return await self.get(owner_id, room_id)

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
                    conference = await self.conferences.repo.get(running[0], with_participants=False)
                    if conference is not None and conference.state == ConferenceState.RUNNING:
                        return conference
                    started = await self.conferences.start_conference(running[0])
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
                    "ends_at": now + self.conferences.minutes(plan["duration_minutes"]),
                    "timezone": room["timezone"], "max_participants": plan["max_participants"],
                    "auto_invite": False, "auto_extend_minutes": 0,
                    "extend_cap_minutes": self.settings.extend_cap_minutes, "reminder_minutes": None,
                    "language": plan["language"], "notify_participants": False, "recording": False,
                    "series_id": room_id, "wait_for_chair": room["guests_wait_for_chair"],
                }
                try:
                    conference = await self.conferences.repo.insert_conference(fields, ())
                except asyncpg.UniqueViolationError:
                    continue  # another engine opened the session meanwhile
                except OverLimit as exc:
                    raise self.conferences._concurrency_refused(room["owner_id"], exc) from None
                await self.conferences.repo.log_event(conference.id, "conference.scheduled", actor="dialin",
                                                      detail={"subject": conference.subject, "immediate": True,
                                                              "starts_at": now.isoformat(), "participants": 0,
                                                              "series_id": room_id})
                started = await self.conferences.start_conference(conference.id, actor="dialin")
                if started is not None:
                    return started
            raise StateConflict("the room's session could not start")

    async def _close_if_empty(self, conference_id: int) -> None:
        """A room's session ends when its last participant has left."""
        await asyncio.sleep(0)
        if await self.repo.present(conference_id):
            return
        await self.conferences.end_conference(conference_id, reason="room_empty", actor="engine")

    # ----------------------------------------------------------------- mail

    async def _mail(self, series: dict[str, Any], kind: MessageKind, conference: Conference | None,
                    recurrence_id: datetime | None = None, whole: bool = False) -> int:
        """Queue the series' calendar message for its recipients: the participants only with the
        owner's consent (notify_participants), the owner while the own-copy switch is on."""
        if conference is None:
            ids = await self.repo.conference_ids(series["id"])
            if not ids:
                return 0
            conference = await self.conferences.repo.get(ids[-1], with_participants=False)
        plan = series["plan"]
        owner = await self.repo.owner_mail(series["owner_id"])
        recipients: list[Recipient] = []
        seen: set[str] = set()
        if plan.get("notify_participants"):
            participants = (await self.conferences.repo.participants(conference.id)) if recurrence_id \
                else plan["participants"]
            for p in participants:
                email = ((p.email if recurrence_id else p.get("email")) or "").strip()
                if email and email.lower() not in seen:
                    seen.add(email.lower())
                    recipients.append(Recipient(email, RecipientRole.GUEST,
                                                (p.name if recurrence_id else p.get("name")) or "",
                                                p.id if recurrence_id else None))
        if (owner.get("email") or "").strip() and owner.get("mail_own_copy", True):
            recipients.append(Recipient(owner["email"].strip(), RecipientRole.CHAIR, owner.get("name") or ""))
        if not recipients:
            return 0
        sequence = series["mail_sequence"] if kind is MessageKind.INVITATION else \
            await self.repo.next_sequence(series["id"])
        rule = validate_recurrence(series["recurrence"])
        exdates: tuple[datetime, ...] = ()
        if not whole and recurrence_id is None:
            exdates = tuple(sorted(at for at, state in (await self.repo.occurrence_starts(series["id"])).items()
                                   if state == "cancelled"))
        duration = self.conferences.minutes(plan["duration_minutes"])
        facts = ConferenceFacts(
            conference_id=conference.id, uid=series["mail_uid"], sequence=sequence, subject=series["subject"],
            starts_at=conference.starts_at, ends_at=conference.starts_at + duration if recurrence_id is None
            else conference.ends_at, duration_minutes=conference.duration_minutes,
            access_number=self.settings.access_number, conference_number=series["conference_number"],
            guest_pin=series["guest_pin"] if plan["guest_pin_required"] else None, chair_pin=series["chair_pin"],
            language=owner.get("language") or "ru", timezone=series["timezone"],
            owner_name=owner.get("name") or "", reminder_minutes=plan.get("reminder_minutes"),
            rrule=None if recurrence_id else ical_rule(rule, series["first_start"], series["timezone"]),
            exdates=exdates, recurrence_id=recurrence_id, series_starts_at=series["first_start"])
        queued = 0
        now = now_utc()
        async with self.pool.acquire() as conn:
            for recipient in recipients:
                try:
                    composed = self.composer.compose(facts, recipient, kind, now=now)
                    subject, message_id, raw, failed = composed.subject, composed.message_id, composed.raw, None
                except Exception as exc:  # noqa: BLE001 - stored as failed with the reason, like the notifier
                    subject, message_id, raw = flatten(series["subject"])[:200], "", b""
                    failed = flatten(f"message not built: {exc}")[:500]
                created = await mail_repo.enqueue(
                    conn, dedup_key=f"series:{series['id']}:{kind.value}:{sequence}:{recipient.role.value}:"
                                    f"{recipient.email.lower()}",
                    conference_id=conference.id, participant_id=recipient.participant_id, kind=kind.value,
                    recipient_role=recipient.role.value, recipient=recipient.email, sender=self.settings.mail_from,
                    subject=subject, message_id=message_id, message=raw, sequence=sequence, now=now,
                    failed_reason=failed)
                queued += int(created and failed is None)
        if queued:
            self.wake_mail()
        return queued

