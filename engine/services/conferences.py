"""Conference service: planning, the life cycle (start, deadline, end) and live control of a
conference. The portal, the JSON API and the CLI all call these methods."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from engine.adapters.ami import AmiEvent
from engine.adapters.db.conferences import ConferenceRepository, OverLimit
from engine.config import Settings
from engine.domain import speech
from engine.domain.errors import (
    AmiError,
    Forbidden,
    LimitExceeded,
    NotFound,
    StateConflict,
    ValidationError,
    VersionConflict,
)
from engine.domain.model import (
    Conference,
    ConferencePlan,
    ConferenceState,
    FailureReason,
    Origin,
    Participant,
    ParticipantPlan,
    ParticipantState,
    Role,
    state_refusal,
)
from engine.domain.numberplan import NumberPlan
from engine.domain.pins import generate_conference_number, generate_pins
from engine.domain.planning import (
    PLAN_FIELDS,
    AccountLimits,
    extension_refusal,
    validate_extension,
    validate_participant,
    validate_plan,
)
from engine.services.bus import Bus, DomainEvent
from engine.services.calls import IN_CALL_STATES, CallService, now_utc
from engine.services.nodes import NO_NODE, Placement
from engine.services.operator import LimitGuard, NumberPlans
from engine.services.prompts import PromptService

log = logging.getLogger(__name__)

START_IN_PAST_TOLERANCE = timedelta(seconds=60)
ROOM_EMPTY_TIMEOUT = 10.0


def actor_of(owner_id: int | None) -> str:
    """How the event log names who acted."""
    return "operator" if owner_id is None else f"account:{owner_id}"


class ConferenceService:
    """Plans, runs and controls conferences. ``schedule_changed`` is set whenever a start, warning
    or end time may have moved, so the scheduler recomputes its next wake-up."""

    def __init__(self, settings: Settings, repo: ConferenceRepository, *, calls: CallService, bus: Bus,
                 plans: NumberPlans, guard: LimitGuard, prompts: PromptService,
                 schedule_changed: asyncio.Event, placement: Placement | None = None) -> None:
        self.settings = settings
        self.placement = placement  # several media nodes: which one a starting conference goes to
        self.prompts = prompts
        self.repo = repo
        self.calls = calls
        self.bus = bus
        self.plans = plans
        self.guard = guard
        self.schedule_changed = schedule_changed

    # ----------------------------------------------------------------- helpers

    def minutes(self, minutes: float) -> timedelta:
        """A conference duration in wall-clock time (tests shrink ``minute_seconds``)."""
        return timedelta(seconds=minutes * self.settings.minute_seconds)

    def _wake_scheduler(self) -> None:
        self.schedule_changed.set()

    async def _publish(self, kind: str, conference: Conference, participant_id: int | None = None,
                       **data: Any) -> None:
        await self.bus.publish(DomainEvent(kind=kind, conference_id=conference.id, owner_id=conference.owner_id,
                                           participant_id=participant_id, data=data))

    async def _owned(self, owner_id: int | None, conference_id: int, with_participants: bool = True) -> Conference:
        conference = await self.repo.get(conference_id, owner_id, with_participants=with_participants)
        if conference is None:
            raise NotFound("no such conference")
        return conference

    async def _running(self, owner_id: int | None, conference_id: int) -> Conference:
        conference = await self._owned(owner_id, conference_id)
        if conference.state != ConferenceState.RUNNING:
            raise StateConflict(state_refusal(conference.state))
        return conference

    @staticmethod
    def _participant_of(conference: Conference, participant_id: int) -> Participant:
        for participant in conference.participants:
            if participant.id == participant_id:
                return participant
        raise NotFound("no such participant in this conference")

    async def _limits(self, owner_id: int) -> AccountLimits:
        row = await self.repo.account_limits(owner_id)
        if row is None:
            raise NotFound("no such account")
        if row["blocked"]:
            raise Forbidden("the account is blocked")
        return AccountLimits.from_row(row)

    async def _number_plan(self, owner_id: int | None) -> NumberPlan:
        """The dial-out plan of the account's number-plan group, else the default."""
        return await self.plans.for_account(owner_id)

    def _limit_hit(self, owner_id: int | None, limit: str, detail: str) -> None:
        """Tell the toll-fraud guard (engine/services/operator.py) that an account was refused."""
        self.guard.hit(owner_id, limit, detail)

    async def _checked_plan(self, owner_id: int, plan: ConferencePlan, limits: AccountLimits) -> ConferencePlan:
        """validate_plan with the account's number plan; refusals are reported to the guard."""
        try:
            return validate_plan(plan, limits, await self._number_plan(owner_id))
        except LimitExceeded as exc:
            self._limit_hit(owner_id, "max_participants", str(exc))
            raise
        except ValidationError as exc:
            if (exc.field or "").endswith(".number"):
                self._limit_hit(owner_id, "number_plan", str(exc))
            raise

    def _concurrency_refused(self, owner_id: int, exc: OverLimit) -> LimitExceeded:
        """The refusal of a plan over the account's concurrent conferences (checked atomically
        by the repository), reported to the guard."""
        self._limit_hit(owner_id, "max_concurrent_conferences", f"{exc.current} overlapping")
        return LimitExceeded("your account allows at most %(limit)d conferences at the same time", limit=exc.allowed)

    # ----------------------------------------------------------------- planning

    async def plan(self, owner_id: int, plan: ConferencePlan) -> Conference:
        """Validate and store a conference; an immediate plan (start None) starts at once."""
        limits = await self._limits(owner_id)
        checked = await self._checked_plan(owner_id, plan, limits)
        now = now_utc()
        immediate = checked.start is None
        starts_at = now if immediate else checked.start
        if not immediate and starts_at < now - START_IN_PAST_TOLERANCE:
            raise ValidationError("the start time is in the past", "start")
        ends_at = starts_at + self.minutes(checked.duration_minutes)
        language = checked.language or (await self.repo.account_limits(owner_id) or {}).get("language", "ru")
        participants = [{"number": p.number, "name": p.name, "email": p.email, "role": str(p.role),
                         "node_id": self.settings.node_id} for p in checked.participants]
        if immediate and self.placement is not None and not await self.placement.fits(checked.max_participants):
            raise StateConflict("no media node has %(seats)d free seats now; plan fewer participants or try later",
                                seats=checked.max_participants)
        conference = None
        for _ in range(20):
            chair_pin, guest_pin = generate_pins(self.settings.pin_length)
            fields = {
                "owner_id": owner_id, "subject": checked.subject, "mode": checked.mode,
                "node_id": self.settings.node_id, "room": f"veche-{secrets.token_hex(8)}",
                "conference_number": generate_conference_number(self.settings.conference_number_length),
                "chair_pin": chair_pin, "guest_pin": guest_pin,
                "guest_pin_required": checked.guest_pin_required, "immediate": immediate,
                "starts_at": starts_at, "duration_minutes": checked.duration_minutes, "ends_at": ends_at,
                "timezone": checked.timezone, "max_participants": checked.max_participants,
                "auto_invite": checked.auto_invite, "auto_extend_minutes": checked.auto_extend_minutes,
                "extend_cap_minutes": self.settings.extend_cap_minutes,
                "reminder_minutes": checked.reminder_minutes, "language": language,
                "notify_participants": checked.notify_participants, "recording": checked.recording,
            }
            try:
                conference = await self.repo.insert_conference(fields, participants)
                break
            except asyncpg.UniqueViolationError:
                continue  # the random conference number is in use: draw another
            except OverLimit as exc:
                raise self._concurrency_refused(owner_id, exc) from None
        if conference is None:
            raise LimitExceeded("no free conference number; try again later")
        await self.repo.log_event(conference.id, "conference.scheduled", actor=actor_of(owner_id),
                                  detail={"subject": conference.subject, "immediate": immediate,
                                          "starts_at": conference.starts_at.isoformat(),
                                          "participants": len(participants)})
        await self._publish("conference.scheduled", conference, immediate=immediate)
        if immediate:
            await self.start_conference(conference.id)
        else:
            self._wake_scheduler()
        return await self._owned(owner_id, conference.id)

    async def get(self, owner_id: int | None, conference_id: int) -> Conference:
        """One conference with its participants (NotFound if not the owner's)."""
        return await self._owned(owner_id, conference_id)

    async def list(self, owner_id: int | None, states: set[ConferenceState] | None = None) -> list[Conference]:
        """The owner's conferences (optionally only in ``states``), newest start first."""
        return await self.repo.list(owner_id, states)

    async def history(self, owner_id: int | None, since: datetime, until: datetime) -> list[Conference]:
        """Ended, cancelled or failed conferences whose start lies in [since, until)."""
        return await self.repo.history(owner_id, since, until)

    async def events(self, owner_id: int | None, conference_id: int) -> list[dict]:
        """The conference's event log (at, kind, actor, participant_id, detail), oldest first."""
        await self._owned(owner_id, conference_id, with_participants=False)
        return await self.repo.events(conference_id)

    async def update(self, owner_id: int | None, conference_id: int, changes: dict,
                     expected_version: int | None = None) -> Conference:
        """Change a scheduled conference; keys are ConferencePlan fields. With ``expected_version``
        (the version the editor read) a conference changed meanwhile is refused with
        VersionConflict instead of silently overwriting the other change."""
        conference = await self._owned(owner_id, conference_id)
        if expected_version is not None and conference.version != expected_version:
            raise VersionConflict("the conference was changed meanwhile", conference)
        if conference.state != ConferenceState.SCHEDULED:
            raise StateConflict("only a scheduled conference can be changed; %(reason)s",
                                reason=state_refusal(conference.state))
        unknown = set(changes) - PLAN_FIELDS
        if unknown:
            raise ValidationError("unknown field %(name)s", sorted(unknown)[0], name=sorted(unknown)[0])
        if "start" in changes and changes["start"] is None:
            raise ValidationError("a scheduled conference needs a start time", "start")
        current = ConferencePlan(
            subject=conference.subject, start=conference.starts_at, duration_minutes=conference.duration_minutes,
            max_participants=conference.max_participants,
            participants=tuple(ParticipantPlan(p.number, p.name, p.email, p.role) for p in conference.participants
                               if p.origin == Origin.DIALOUT),
            auto_invite=conference.auto_invite, auto_extend_minutes=conference.auto_extend_minutes,
            guest_pin_required=conference.guest_pin_required, reminder_minutes=conference.reminder_minutes,
            timezone=conference.timezone, mode=conference.mode, language=conference.language,
            notify_participants=conference.notify_participants, recording=conference.recording)
        proposed = {**asdict(current), **changes}
        try:
            proposed["participants"] = tuple(
                p if isinstance(p, ParticipantPlan) else ParticipantPlan(**p) for p in proposed["participants"])
        except TypeError:
            raise ValidationError("each participant needs a number (and optionally name, email, role)",
                                  "participants") from None
        limits = await self._limits(conference.owner_id)
        checked = await self._checked_plan(conference.owner_id, ConferencePlan(**proposed), limits)
        if "start" in changes and checked.start < now_utc() - START_IN_PAST_TOLERANCE:
            raise ValidationError("the start time is in the past", "start")
        ends_at = checked.start + self.minutes(checked.duration_minutes)
        try:
            moved = await self.repo.reschedule(conference.id, conference.owner_id, checked.start, ends_at,
                                               version=expected_version)
        except OverLimit as exc:
            raise self._concurrency_refused(conference.owner_id, exc) from None
        if moved is None and expected_version is not None:
            now = await self._owned(owner_id, conference.id)
            if now.state == ConferenceState.SCHEDULED and now.version != expected_version:
                raise VersionConflict("the conference was changed meanwhile", now)
        if moved is None:
            raise StateConflict("only a scheduled conference can be changed; this one started meanwhile")
        if "participants" in changes:
            await self.repo.delete_planned_participants(conference.id)
            for p in checked.participants:
                await self.repo.add_participant(conference.id, number=p.number, name=p.name, email=p.email,
                                                role=str(p.role), node_id=conference.node_id)
        updated = await self.repo.update(
            conference.id, subject=checked.subject, starts_at=checked.start,
            duration_minutes=checked.duration_minutes, ends_at=ends_at,
            max_participants=checked.max_participants, auto_invite=checked.auto_invite,
            auto_extend_minutes=checked.auto_extend_minutes, guest_pin_required=checked.guest_pin_required,
            reminder_minutes=checked.reminder_minutes, timezone=checked.timezone,
            language=checked.language or conference.language, notify_participants=checked.notify_participants,
            recording=checked.recording)
        changed = sorted(changes)
        await self.repo.log_event(conference.id, "conference.updated", actor=actor_of(owner_id),
                                  detail={"changed": changed})
        await self._publish("conference.updated", updated, changed=changed)
        self._wake_scheduler()
        return await self._owned(owner_id, conference.id)

    async def cancel(self, owner_id: int | None, conference_id: int) -> Conference:
        """Cancel a scheduled conference."""
        conference = await self._owned(owner_id, conference_id, with_participants=False)
        cancelled = await self.repo.transition(conference.id, [ConferenceState.SCHEDULED],
                                               ConferenceState.CANCELLED, cancelled_at=now_utc(),
                                               end_reason="cancelled")
        if cancelled is None:
            raise StateConflict("only a scheduled conference can be cancelled; %(reason)s",
                                reason=state_refusal(conference.state))
        await self.repo.log_event(conference.id, "conference.cancelled", actor=actor_of(owner_id))
        await self._publish("conference.cancelled", cancelled)
        self._wake_scheduler()
        return await self._owned(owner_id, conference.id)

    async def start_now(self, owner_id: int | None, conference_id: int) -> Conference:
        """Start a scheduled conference before its time: it runs its planned duration from now
        (within the account's limit of concurrent conferences) and starts through the
        scheduler's path, so auto-invite and the call limits apply as at the planned time."""
        conference = await self._owned(owner_id, conference_id, with_participants=False)
        if conference.state != ConferenceState.SCHEDULED:
            raise StateConflict("only a scheduled conference can be started; %(reason)s",
                                reason=state_refusal(conference.state))
        await self._limits(conference.owner_id)
        now = now_utc()
        try:
            moved = await self.repo.reschedule(conference.id, conference.owner_id, now,
                                               now + self.minutes(conference.duration_minutes))
        except OverLimit as exc:
            raise self._concurrency_refused(conference.owner_id, exc) from None
        if moved is None:
            raise StateConflict("the conference is no longer scheduled")
        await self.repo.log_event(conference.id, "conference.start_requested", actor=actor_of(owner_id),
                                  detail={"planned_start": conference.starts_at.isoformat()})
        started = await self.start_conference(conference.id, actor=actor_of(owner_id))
        if started is None:
            raise StateConflict("the conference could not start")
        return await self._owned(owner_id, conference.id)

    # ----------------------------------------------------------------- life cycle (scheduler)

    async def start_conference(self, conference_id: int, actor: str = "engine") -> Conference | None:
        """Start a scheduled conference (once, even with several engines) and dial its planned
        participants when auto-invite is on. None when it was not scheduled any more."""
        missed = await self.repo.transition_if_over(conference_id, ConferenceState.FAILED, end_reason="missed",
                                                    ended_at=now_utc())
        if missed is not None:  # the engine was down for the whole planned time
            log.warning("conference %s was missed: its end passed before it could start", conference_id)
            await self.repo.log_event(conference_id, "conference.failed", actor=actor, detail={"reason": "missed"})
            await self._publish("conference.failed", missed, reason="missed")
            return None
        if await self._owner_blocked(conference_id):  # a blocked account's conferences never start
            log.warning("conference %s not started: its account is blocked", conference_id)
            failed = await self.repo.transition(conference_id, [ConferenceState.SCHEDULED], ConferenceState.FAILED,
                                                end_reason="account_blocked", ended_at=now_utc())
            if failed is not None:
                await self.repo.log_event(conference_id, "conference.failed", actor=actor,
                                          detail={"reason": "account_blocked"})
                await self._publish("conference.failed", failed, reason="account_blocked")
            return None
        if self.placement is not None and not await self._placed(conference_id, actor):
            return None
        started = await self.repo.transition(conference_id, [ConferenceState.SCHEDULED], ConferenceState.RUNNING,
                                             started_at=now_utc())
        if started is None:
            return None
        lateness = (started.started_at - started.starts_at).total_seconds()
        await self.repo.log_event(conference_id, "conference.started", actor=actor,
                                  detail={"late_seconds": round(lateness, 3)})
        await self._publish("conference.started", started)
        self._wake_scheduler()
        if started.auto_invite:
            started.participants = await self.repo.participants(conference_id)
            planned = [p for p in started.participants if p.state == ParticipantState.PLANNED]
            await self.calls.dial(started, planned, actor=actor, strict_rate=False)
        return started

    async def _placed(self, conference_id: int, actor: str) -> bool:
        """Place a starting conference on a media node; one that fits no node fails (the operator
        is alerted)."""
        conference = await self.repo.get(conference_id, with_participants=False)
        if conference is None or await self.placement.place(conference) is not None:
            return True
        failed = await self.repo.transition(conference_id, [ConferenceState.SCHEDULED], ConferenceState.FAILED,
                                            end_reason=NO_NODE, ended_at=now_utc())
        if failed is not None:
            await self.repo.log_event(conference_id, "conference.failed", actor=actor, detail={"reason": NO_NODE})
            await self._publish("conference.failed", failed, reason=NO_NODE)
            self.placement.no_node_alert(failed)
        return False

    async def _owner_blocked(self, conference_id: int) -> bool:
        conference = await self.repo.get(conference_id, with_participants=False)
        if conference is None:
            return False
        limits = await self.repo.account_limits(conference.owner_id)
        return bool(limits and limits["blocked"])

    async def warn(self, conference: Conference) -> None:
        """Play the deadline warning into the room, once."""
        if not await self.repo.mark_warned(conference.id):
            return
        detail: dict[str, Any] = {"ends_at": conference.ends_at.isoformat(), "language": conference.language}
        if not await self.repo.count_participants(conference.id, [ParticipantState.CONNECTED]):
            return  # nobody to warn; do not create an empty room for the announcer
        left = max(0, round((conference.ends_at - now_utc()).total_seconds()))
        if left >= 60:
            left = round(left / 60) * 60  # said in whole minutes
        announcement = speech.warning(conference.language, left, self._phrases(conference.language))
        detail["prompts"] = list(announcement.files())
        try:
            detail["announcer"] = await self.calls.announce(conference, announcement)
        except AmiError as exc:
            detail["error"] = str(exc)
        await self.repo.log_event(conference.id, "conference.warned", detail=detail)
        await self._publish("conference.warned", conference, ends_at=conference.ends_at.isoformat(),
                            seconds_left=left, language=conference.language)

    def _extended_speech(self, conference: Conference, minutes: int) -> speech.Announcement:
        return speech.extended(conference.language, minutes, self._phrases(conference.language))

    def _phrases(self, language: str) -> frozenset[str]:
        """The prompts the operator replaced in ``language`` (the Veche phrases among them make
        Russian minutes grammatical)."""
        return self.prompts.phrases(language)

    async def _announce(self, conference: Conference, announcement: speech.Announcement,
                        wait: bool = False) -> str | None:
        """Play an announcement into the room when anyone is connected; an Asterisk failure is
        logged and never stops what the announcement is about."""
        if not await self.repo.count_participants(conference.id, [ParticipantState.CONNECTED]):
            return None
        try:
            return await self.calls.announce(conference, announcement, wait=wait)
        except AmiError as exc:
            log.warning("conference %s: announcement %s not played: %s", conference.id, announcement.files(), exc)
            return None

    async def deadline(self, conference: Conference) -> Conference | None:
        """The conference reached its end: auto-extend when on, someone is connected and the
        cap allows; otherwise end it."""
        if conference.auto_extend_minutes:
            connected = await self.repo.count_participants(conference.id, [ParticipantState.CONNECTED])
            if connected:
                step = conference.auto_extend_minutes
                extended = await self.repo.extend(conference.id, self.minutes(step).total_seconds(), step,
                                                  count_against_cap=True)
                if extended is not None:
                    log.info("conference %s auto-extended by %s min to %s", conference.id, step, extended.ends_at)
                    await self.repo.log_event(conference.id, "conference.extended",
                                              detail={"minutes": step, "auto": True,
                                                      "ends_at": extended.ends_at.isoformat()})
                    await self._publish("conference.extended", extended, minutes=step, auto=True,
                                        ends_at=extended.ends_at.isoformat())
                    await self._announce(extended, self._extended_speech(extended, step))
                    return extended
                await self.repo.log_event(conference.id, "conference.extend_refused",
                                          detail={"why": "cap", "cap_minutes": conference.extend_cap_minutes})
        return await self.end_conference(conference.id, reason="deadline", actor="engine")

    async def end_conference(self, conference_id: int, reason: str, actor: str = "engine") -> Conference | None:
        """End a running conference: state ended, every channel leaves and is hung up, the room
        closes. None when it was not running."""
        ended = await self.repo.transition(conference_id, [ConferenceState.RUNNING], ConferenceState.ENDED,
                                           ended_at=now_utc(), end_reason=reason)
        if ended is None:
            return None
        # everyone hears that it has ended; the hang-up waits for the announcer to finish
        await self._announce(ended, speech.ending(ended.language), wait=True)
        await self._teardown(ended)
        await self.repo.log_event(conference_id, "conference.ended", actor=actor, detail={"reason": reason})
        await self._publish("conference.ended", ended, reason=reason)
        self._wake_scheduler()
        return ended

    async def _teardown(self, conference: Conference) -> None:
        adapter = self.calls.node(conference.node_id)
        try:
            members = await adapter.confbridge_members(conference.room)
        except AmiError as exc:
            log.warning("conference %s: cannot list the room: %s", conference.id, exc)
            members = []
        room_closed = asyncio.get_running_loop().create_future()

        def on_end(event: AmiEvent) -> None:
            if event.get("Conference") == conference.room and not room_closed.done():
                room_closed.set_result(True)

        adapter.subscribe(on_end, ("ConfbridgeEnd",))
        try:
            for member in members:
                with contextlib.suppress(AmiError):
                    await adapter.hangup(member.get("Channel"))
            participants = await self.repo.participants(conference.id)
            for participant in participants:
                if participant.state in IN_CALL_STATES:
                    self.calls.forget_attempt(participant.call_id)
                    await self.calls.hangup(participant)
            if members:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(room_closed, ROOM_EMPTY_TIMEOUT)
        finally:
            adapter.unsubscribe(on_end)
        for participant in await self.repo.participants(conference.id):
            if participant.state == ParticipantState.CONNECTED:
                await self.calls.mark_left(participant, None)
            elif participant.state in IN_CALL_STATES:
                await self.calls.mark_failed(participant, conference.owner_id, FailureReason.CANCELLED, None,
                                             detail={"why": "conference ended"})

    # ----------------------------------------------------------------- live control

    async def add_participant(self, owner_id: int | None, conference_id: int, participant: ParticipantPlan,
                              invite: bool = True) -> Participant:
        """Add a participant to a scheduled or running conference (dialled at once if running and ``invite``)."""
        conference = await self._owned(owner_id, conference_id)
        if conference.state not in (ConferenceState.SCHEDULED, ConferenceState.RUNNING):
            raise StateConflict(state_refusal(conference.state))
        try:
            checked = validate_participant(participant, await self._number_plan(conference.owner_id), "participant")
        except ValidationError as exc:
            if (exc.field or "").endswith(".number"):
                self._limit_hit(conference.owner_id, "number_plan", str(exc))
            raise
        if any(p.number == checked.number and p.origin == Origin.DIALOUT for p in conference.participants):
            raise ValidationError("%(number)s is already a participant; invite them again instead",
                                  "participant.number", number=checked.number)
        try:
            added = await self.repo.add_participant(conference.id, number=checked.number, name=checked.name,
                                                    email=checked.email, role=str(checked.role),
                                                    node_id=conference.node_id,
                                                    max_active=conference.max_participants)
        except OverLimit:
            raise LimitExceeded("the conference allows at most %(limit)d participants",
                                limit=conference.max_participants) from None
        await self.repo.log_event(conference.id, "participant.added", actor=actor_of(owner_id),
                                  participant_id=added.id, detail={"number": added.number, "name": added.name})
        await self._publish("participant.added", conference, added.id, number=added.number, name=added.name)
        if invite and conference.state == ConferenceState.RUNNING:
            await self.calls.dial(conference, [added], actor=actor_of(owner_id), strict_rate=True)
            added = await self.repo.get_participant(added.id) or added
        return added

    async def invite(self, owner_id: int | None, conference_id: int, participant_ids: list[int]) -> None:
        """Dial (or re-dial) the given participants of a running conference."""
        conference = await self._running(owner_id, conference_id)
        chosen = [self._participant_of(conference, pid) for pid in participant_ids]
        for participant in chosen:
            if participant.origin != Origin.DIALOUT:
                raise StateConflict("%(number)s dialled in and cannot be dialled back", number=participant.number)
        await self.calls.dial(conference, chosen, actor=actor_of(owner_id), strict_rate=True)

    def _in_room(self, conference: Conference, participant_id: int) -> Participant:
        participant = self._participant_of(conference, participant_id)
        if participant.state != ParticipantState.CONNECTED or not participant.channel:
            raise StateConflict("the participant is not in the conference room")
        return participant

    async def mute(self, owner_id: int | None, conference_id: int, participant_id: int, muted: bool,
                   actor: str | None = None) -> None:
        """Mute or unmute a connected participant (``actor`` names who, when not the owner)."""
        conference = await self._running(owner_id, conference_id)
        participant = self._in_room(conference, participant_id)
        try:
            await self.calls.node(conference.node_id).confbridge_mute(conference.room, participant.channel, muted)
        except AmiError as exc:
            log.warning("conference %s: mute %s refused by Asterisk: %s", conference.id, muted, exc)
            raise StateConflict("the telephony server did not carry out the action; try again") from exc
        await self.repo.update_participant(participant.id, muted=muted)
        kind = "participant.muted" if muted else "participant.unmuted"
        await self.repo.log_event(conference.id, kind, actor=actor or actor_of(owner_id),
                                  participant_id=participant.id)
        await self._publish(kind, conference, participant.id, actor=actor or actor_of(owner_id))

    async def kick(self, owner_id: int | None, conference_id: int, participant_id: int) -> None:
        """Remove a participant from the room (or stop dialling them)."""
        conference = await self._running(owner_id, conference_id)
        participant = self._participant_of(conference, participant_id)
        if participant.state in IN_CALL_STATES:
            self.calls.forget_attempt(participant.call_id)
            await self.calls.hangup(participant)
            await self.calls.mark_failed(participant, conference.owner_id, FailureReason.CANCELLED, None,
                                         detail={"why": "kicked"})
        else:
            participant = self._in_room(conference, participant_id)
            try:
                await self.calls.node(conference.node_id).confbridge_kick(conference.room, participant.channel)
            except AmiError as exc:
                log.warning("conference %s: kick refused by Asterisk: %s", conference.id, exc)
                raise StateConflict("the telephony server did not carry out the action; try again") from exc
            await self.calls.mark_left(participant, None)
        await self.repo.log_event(conference.id, "participant.kicked", actor=actor_of(owner_id),
                                  participant_id=participant.id)
        await self._publish("participant.kicked", conference, participant.id)

    async def set_role(self, owner_id: int | None, conference_id: int, participant_id: int,
                       role: Role | str) -> Participant:
        """Make a participant a chair or a guest. A connected participant takes the new role in
        the call at once: ConfBridge cannot change a member's user profile, so the channel
        re-enters the room with the other profile (calls.rejoin); a call being set up joins with it."""
        try:
            role = Role(role)
        except ValueError:
            raise ValidationError("the role is chair or guest", "role") from None
        conference = await self._owned(owner_id, conference_id)
        if conference.state not in (ConferenceState.SCHEDULED, ConferenceState.RUNNING):
            raise StateConflict(state_refusal(conference.state))
        participant = self._participant_of(conference, participant_id)
        if participant.role == role:
            return participant
        live = conference.state == ConferenceState.RUNNING
        if live and participant.state == ParticipantState.CONNECTED and participant.channel:
            # a locked room lets only chairs in: open it for the moment of a chair's re-entry as a guest
            reopen = conference.locked and role == Role.GUEST
            adapter = self.calls.node(conference.node_id)
            if reopen:
                with contextlib.suppress(AmiError):
                    await adapter.confbridge_lock(conference.room, False)
            try:
                await self.calls.rejoin(participant, role, muted=participant.muted)
            except AmiError as exc:
                log.warning("conference %s: role change refused by Asterisk: %s", conference.id, exc)
                raise StateConflict("the telephony server did not carry out the action; try again") from exc
            finally:
                if reopen:
                    with contextlib.suppress(AmiError):
                        await adapter.confbridge_lock(conference.room, True)
        elif live and participant.state in IN_CALL_STATES:
            await self.calls.set_profile(participant, role)
        updated = await self.repo.update_participant(participant.id, role=str(role)) or participant
        await self.repo.log_event(conference.id, "participant.role", actor=actor_of(owner_id),
                                  participant_id=participant.id, detail={"role": str(role)})
        await self._publish("participant.role", conference, participant.id, role=str(role))
        return updated

    async def lock(self, owner_id: int | None, conference_id: int, locked: bool, actor: str | None = None) -> None:
        """Lock (no guest dials in; a chair PIN and whoever is invited still enter) or unlock a
        running conference."""
        conference = await self._running(owner_id, conference_id)
        try:
            await self.calls.node(conference.node_id).confbridge_lock(conference.room, locked)
        except AmiError as exc:
            # no room yet (nobody joined): the stored flag is what dial-in checks
            log.info("conference %s: room not locked in Asterisk: %s", conference.id, exc)
        await self.repo.update(conference.id, locked=locked)
        kind = "conference.locked" if locked else "conference.unlocked"
        await self.repo.log_event(conference.id, kind, actor=actor or actor_of(owner_id))
        await self._publish(kind, conference, actor=actor or actor_of(owner_id))

    async def extend(self, owner_id: int | None, conference_id: int, minutes: int,
                     actor: str | None = None) -> Conference:
        """Move the end of a running conference by 15, 30, 45 or 60 minutes."""
        step = validate_extension(minutes)
        conference = await self._running(owner_id, conference_id)
        extended = await self.repo.extend(conference.id, self.minutes(step).total_seconds(), step,
                                          count_against_cap=True)
        if extended is None:
            current = await self._running(owner_id, conference_id)
            raise extension_refusal(current.extend_cap_minutes)
        await self.repo.log_event(conference.id, "conference.extended", actor=actor or actor_of(owner_id),
                                  detail={"minutes": step, "auto": False, "ends_at": extended.ends_at.isoformat()})
        await self._publish("conference.extended", extended, minutes=step, auto=False,
                            ends_at=extended.ends_at.isoformat(), actor=actor or actor_of(owner_id))
        self._wake_scheduler()
        await self._announce(extended, self._extended_speech(extended, step))
        return await self._owned(owner_id, conference.id)

    async def end(self, owner_id: int | None, conference_id: int) -> Conference:
        """End a running conference now: everyone is hung up and the room closes."""
        conference = await self._running(owner_id, conference_id)
        ended = await self.end_conference(conference.id, reason="ended_by_" + ("operator" if owner_id is None
                                                                                else "owner"),
                                          actor=actor_of(owner_id))
        if ended is None:
            raise StateConflict("the conference is not running")
        return await self._owned(owner_id, conference.id)

