"""Conference planning: a conference planned, read, changed, cancelled or started before its
time. The portal, the JSON API and the CLI plan through it; the life cycle takes over at the
start."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime

import asyncpg

from engine.adapters.db.conferences import LogEntry, OverLimit, StaleRules
from engine.config import Settings
from engine.domain.errors import LimitExceeded, StateConflict, ValidationError, VersionConflict
from engine.domain.model import (
    Conference,
    ConferencePlan,
    ConferenceState,
    Origin,
    ParticipantPlan,
    state_refusal,
)
from engine.domain.pins import generate_conference_number, generate_pins
from engine.domain.planning import PLAN_FIELDS, AccountRules, changed_plan
from engine.services.calls import now_utc
from engine.services.conference_lifecycle import ConferenceLifecycle
from engine.services.conference_limits import PlanChecks
from engine.services.conference_records import ConferenceRecords, actor_of
from engine.services.nodes import Placement

RULES_READS = 3  # reads of an account's rules one plan makes at most while they keep changing


class ConferencePlanning:
    """Plans and reads the conferences of an owner (``owner_id`` None: the operator's view)."""

    def __init__(self, settings: Settings, records: ConferenceRecords, checks: PlanChecks, *,
                 lifecycle: ConferenceLifecycle, placement: Placement | None = None) -> None:
        self.settings = settings
        self.placement = placement  # several media nodes: an immediate conference must fit one
        self.records = records
        self.repo = records.repo
        self.checks = checks
        self.lifecycle = lifecycle

    async def plan(self, owner_id: int, plan: ConferencePlan) -> Conference:
        """Validate and store a conference; an immediate plan (start None) starts at once: on one
        media node it is stored running, and its dial-out follows the insert's commit."""
        # A plan that starts and dials at once on one media node is stored by one statement that
        # checks the account rules' stamp under the account's lock, so it may be checked
        # against the rules as last read; rules changed since are read again, and it is checked
        # anew.
        as_read = plan.start is None and self.placement is None and bool(plan.auto_invite)
        for _ in range(RULES_READS):
            if as_read:
                checked, rules = await self.checks.checked_as_read(owner_id, plan)
            else:
                rules = await self.checks.rules(owner_id)
                checked = await self.checks.checked_plan(owner_id, plan, rules)
            try:
                return await self._store(owner_id, checked, rules)
            except StaleRules:
                as_read = False
        raise StateConflict("the account changed while the conference was being planned; try again")

    async def _store(self, owner_id: int, checked: ConferencePlan, rules: AccountRules) -> Conference:
        immediate = checked.start is None
        starts_at = now_utc() if immediate else checked.start
        if not immediate:
            self.checks.refuse_past_start(starts_at)
        ends_at = starts_at + self.records.minutes(checked.duration_minutes)
        language = checked.language or rules.language
        # one media node: an immediate conference is stored running (nothing to place it on)
        open_now = immediate and self.placement is None
        actor = actor_of(owner_id)
        participants = [{"number": p.number, "name": p.name, "email": p.email, "role": str(p.role),
                         "node_id": self.settings.node_id} for p in checked.participants]
        if immediate and self.placement is not None and not await self.placement.fits(checked.max_participants):
            raise StateConflict("no media node has %(seats)d free seats now; plan fewer participants or try later",
                                seats=checked.max_participants)
        conference, grant = None, None
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
            scheduled = LogEntry("conference.scheduled", actor, {
                "subject": checked.subject, "immediate": immediate, "starts_at": starts_at.isoformat(),
                "participants": len(participants)})
            events = [scheduled]
            if open_now:
                fields.update(state=ConferenceState.RUNNING, started_at=starts_at)
                events.append(LogEntry("conference.started", "engine", {"late_seconds": 0.0}))
            try:
                if open_now:
                    conference, grant = await self.lifecycle.store_open(fields, participants, events, rules)
                else:
                    conference = await self.repo.insert_conference(fields, participants, events)
                break
            except asyncpg.UniqueViolationError:
                continue  # the random conference number is in use: draw another
            except OverLimit as exc:
                raise self.checks.concurrency_refused(owner_id, exc) from None
        if conference is None:
            raise LimitExceeded("no free conference number; try again later")
        if open_now:
            await self.lifecycle.opened(conference, grant, rules)
            if grant is None or grant.bound_by is None:
                # as its one statement stored it, every call claimed and calling: not read again
                # while Asterisk sets the calls up (their states follow on the console's stream)
                return conference
        elif immediate:  # several media nodes: the start places it on one
            # the start does not wait for the bus's slower listeners (mail, audit) of the plan;
            # gather begins the publish first, so every listener hears of the plan before the start
            outcomes = await asyncio.gather(
                self.records.publish("conference.scheduled", conference, immediate=immediate),
                self.lifecycle.start_conference(conference.id), return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        else:
            await self.records.publish("conference.scheduled", conference, immediate=immediate)
            self.records.wake_scheduler()
        return await self.records.owned(owner_id, conference.id)

    async def get(self, owner_id: int | None, conference_id: int) -> Conference:
        """One conference with its participants (NotFound if not the owner's)."""
        return await self.records.owned(owner_id, conference_id)

    async def list(self, owner_id: int | None, states: set[ConferenceState] | None = None) -> list[Conference]:
        """The owner's conferences (optionally only in ``states``), newest start first."""
        return await self.repo.list(owner_id, states)

    async def history(self, owner_id: int | None, since: datetime, until: datetime) -> list[Conference]:
        """Ended, cancelled or failed conferences whose start lies in [since, until)."""
        return await self.repo.history(owner_id, since, until)

    async def events(self, owner_id: int | None, conference_id: int) -> list[dict]:
        """The conference's event log (at, kind, actor, participant_id, detail), oldest first."""
        await self.records.owned(owner_id, conference_id, with_participants=False)
        return await self.repo.events(conference_id)

    async def update(self, owner_id: int | None, conference_id: int, changes: dict,
                     expected_version: int | None = None) -> Conference:
        """Change a scheduled conference; keys are ConferencePlan fields. With ``expected_version``
        (the version the editor read) a conference changed meanwhile is refused with
        VersionConflict instead of silently overwriting the other change."""
        conference = await self.records.owned(owner_id, conference_id)
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
        proposed = changed_plan(current, changes)
        rules = await self.checks.rules(conference.owner_id)
        checked = await self.checks.checked_plan(conference.owner_id, proposed, rules)
        if "start" in changes:
            self.checks.refuse_past_start(checked.start)
        ends_at = checked.start + self.records.minutes(checked.duration_minutes)
        participants = None if "participants" not in changes else [
            dict(number=p.number, name=p.name, email=p.email, role=str(p.role), node_id=conference.node_id)
            for p in checked.participants]
        changed = sorted(changes)
        try:
            updated = await self.repo.replan(
                conference.id, conference.owner_id, dict(
                    subject=checked.subject, starts_at=checked.start, duration_minutes=checked.duration_minutes,
                    ends_at=ends_at, max_participants=checked.max_participants, auto_invite=checked.auto_invite,
                    auto_extend_minutes=checked.auto_extend_minutes, guest_pin_required=checked.guest_pin_required,
                    reminder_minutes=checked.reminder_minutes, timezone=checked.timezone,
                    language=checked.language or conference.language,
                    notify_participants=checked.notify_participants, recording=checked.recording),
                participants=participants, version=expected_version, event="conference.updated",
                actor=actor_of(owner_id), detail={"changed": changed})
        except OverLimit as exc:
            raise self.checks.concurrency_refused(conference.owner_id, exc) from None
        if updated is None and expected_version is not None:
            now = await self.records.owned(owner_id, conference.id)
            if now.state == ConferenceState.SCHEDULED and now.version != expected_version:
                raise VersionConflict("the conference was changed meanwhile", now)
        if updated is None:
            raise StateConflict("only a scheduled conference can be changed; this one started meanwhile")
        await self.records.publish("conference.updated", updated, changed=changed)
        self.records.wake_scheduler()
        return await self.records.owned(owner_id, conference.id)

    async def cancel(self, owner_id: int | None, conference_id: int) -> Conference:
        """Cancel a scheduled conference."""
        conference = await self.records.owned(owner_id, conference_id, with_participants=False)
        cancelled = await self.repo.transition(conference.id, [ConferenceState.SCHEDULED],
                                               ConferenceState.CANCELLED, cancelled_at=now_utc(),
                                               end_reason="cancelled")
        if cancelled is None:
            raise StateConflict("only a scheduled conference can be cancelled; %(reason)s",
                                reason=state_refusal(conference.state))
        await self.repo.log_event(conference.id, "conference.cancelled", actor=actor_of(owner_id))
        await self.records.publish("conference.cancelled", cancelled)
        self.records.wake_scheduler()
        return await self.records.owned(owner_id, conference.id)

    async def start_now(self, owner_id: int | None, conference_id: int) -> Conference:
        """Start a scheduled conference before its time: it runs its planned duration from now
        (within the account's limit of concurrent conferences) and starts through the
        scheduler's path, so auto-invite and the call limits apply as at the planned time."""
        conference = await self.records.owned(owner_id, conference_id, with_participants=False)
        if conference.state != ConferenceState.SCHEDULED:
            raise StateConflict("only a scheduled conference can be started; %(reason)s",
                                reason=state_refusal(conference.state))
        await self.checks.limits(conference.owner_id)
        now = now_utc()
        try:
            moved = await self.repo.reschedule(conference.id, conference.owner_id, now,
                                               now + self.records.minutes(conference.duration_minutes))
        except OverLimit as exc:
            raise self.checks.concurrency_refused(conference.owner_id, exc) from None
        if moved is None:
            raise StateConflict("the conference is no longer scheduled")
        await self.repo.log_event(conference.id, "conference.start_requested", actor=actor_of(owner_id),
                                  detail={"planned_start": conference.starts_at.isoformat()})
        started = await self.lifecycle.start_conference(conference.id, actor=actor_of(owner_id))
        current = await self.records.owned(owner_id, conference.id)
        # None also when the scheduler, due to it from the move on, started it first: that start
        # is the one asked for
        if started is None and current.state != ConferenceState.RUNNING:
            raise StateConflict("the conference could not start")
        return current
