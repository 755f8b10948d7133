"""Live control of a conference: participants added and invited, muted, kicked, given another
role; the room locked, extended or ended. The portal's console, the API and the keypad call it."""

from __future__ import annotations

import contextlib
import logging

from engine.adapters.db.conferences import OverLimit
from engine.domain.errors import AmiError, LimitExceeded, StateConflict, ValidationError
from engine.domain.model import (
    Conference,
    ConferenceState,
    FailureReason,
    Origin,
    Participant,
    ParticipantPlan,
    ParticipantState,
    Role,
    state_refusal,
)
from engine.domain.planning import extension_refusal, validate_extension
from engine.services.calls import IN_CALL_STATES, CallService
from engine.services.conference_lifecycle import ConferenceLifecycle
from engine.services.conference_limits import PlanChecks
from engine.services.conference_records import ConferenceRecords, actor_of

log = logging.getLogger(__name__)


class LiveControl:
    """What the owner (or the operator, ``owner_id`` None) does with a conference while it runs."""

    def __init__(self, records: ConferenceRecords, checks: PlanChecks, *, calls: CallService,
                 lifecycle: ConferenceLifecycle) -> None:
        self.records = records
        self.repo = records.repo
        self.checks = checks
        self.calls = calls
        self.lifecycle = lifecycle

    async def add_participant(self, owner_id: int | None, conference_id: int, participant: ParticipantPlan,
                              invite: bool = True) -> Participant:
        """Add a participant to a scheduled or running conference (dialled at once if running and ``invite``)."""
        conference = await self.records.owned(owner_id, conference_id)
        if conference.state not in (ConferenceState.SCHEDULED, ConferenceState.RUNNING):
            raise StateConflict(state_refusal(conference.state))
        checked = await self.checks.checked_participant(conference.owner_id, participant)
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
        await self.records.publish("participant.added", conference, added.id, number=added.number, name=added.name)
        if invite and conference.state == ConferenceState.RUNNING:
            await self.calls.dial(conference, [added], actor=actor_of(owner_id), strict_rate=True)
            added = await self.repo.get_participant(added.id) or added
        return added

    async def invite(self, owner_id: int | None, conference_id: int, participant_ids: list[int]) -> None:
        """Dial (or re-dial) the given participants of a running conference."""
        conference = await self.records.running(owner_id, conference_id)
        chosen = [self.records.participant_of(conference, pid) for pid in participant_ids]
        for participant in chosen:
            if participant.origin != Origin.DIALOUT:
                raise StateConflict("%(number)s dialled in and cannot be dialled back", number=participant.number)
        await self.calls.dial(conference, chosen, actor=actor_of(owner_id), strict_rate=True)

    def _in_room(self, conference: Conference, participant_id: int) -> Participant:
        participant = self.records.participant_of(conference, participant_id)
        if participant.state != ParticipantState.CONNECTED or not participant.channel:
            raise StateConflict("the participant is not in the conference room")
        return participant

    async def mute(self, owner_id: int | None, conference_id: int, participant_id: int, muted: bool,
                   actor: str | None = None) -> None:
        """Mute or unmute a connected participant (``actor`` names who, when not the owner)."""
        conference = await self.records.running(owner_id, conference_id)
        participant = self._in_room(conference, participant_id)
        try:
            await self.calls.node(conference.node_id).mute(conference.room, participant.channel, muted)
        except AmiError as exc:
            log.warning("conference %s: mute %s refused by Asterisk: %s", conference.id, muted, exc)
            raise StateConflict("the telephony server did not carry out the action; try again") from exc
        await self.repo.update_participant(participant.id, muted=muted)
        kind = "participant.muted" if muted else "participant.unmuted"
        await self.repo.log_event(conference.id, kind, actor=actor or actor_of(owner_id),
                                  participant_id=participant.id)
        await self.records.publish(kind, conference, participant.id, actor=actor or actor_of(owner_id))

    async def kick(self, owner_id: int | None, conference_id: int, participant_id: int) -> None:
        """Remove a participant from the room (or stop dialling them)."""
        conference = await self.records.running(owner_id, conference_id)
        participant = self.records.participant_of(conference, participant_id)
        if participant.state in IN_CALL_STATES:
            self.calls.forget_attempt(participant.call_id)
            await self.calls.hangup(participant)
            await self.calls.mark_failed(participant, conference.owner_id, FailureReason.CANCELLED, None,
                                         detail={"why": "kicked"})
        else:
            participant = self._in_room(conference, participant_id)
            try:
                await self.calls.node(conference.node_id).kick(conference.room, participant.channel)
            except AmiError as exc:
                log.warning("conference %s: kick refused by Asterisk: %s", conference.id, exc)
                raise StateConflict("the telephony server did not carry out the action; try again") from exc
            await self.calls.mark_left(participant, None)
        await self.repo.log_event(conference.id, "participant.kicked", actor=actor_of(owner_id),
                                  participant_id=participant.id)
        await self.records.publish("participant.kicked", conference, participant.id)

    async def set_role(self, owner_id: int | None, conference_id: int, participant_id: int,
                       role: Role | str) -> Participant:
        """Make a participant a chair or a guest. A connected participant takes the new role in
        the call at once: ConfBridge cannot change a member's user profile, so the channel
        re-enters the room with the other profile (calls.rejoin); a call being set up joins with it."""
        try:
            role = Role(role)
        except ValueError:
            raise ValidationError("the role is chair or guest", "role") from None
        conference = await self.records.owned(owner_id, conference_id)
        if conference.state not in (ConferenceState.SCHEDULED, ConferenceState.RUNNING):
            raise StateConflict(state_refusal(conference.state))
        participant = self.records.participant_of(conference, participant_id)
        if participant.role == role:
            return participant
        live = conference.state == ConferenceState.RUNNING
        if live and participant.state == ParticipantState.CONNECTED and participant.channel:
            # a locked room lets only chairs in: open it for the moment of a chair's re-entry as a guest
            reopen = conference.locked and role == Role.GUEST
            node = self.calls.node(conference.node_id)
            if reopen:
                with contextlib.suppress(AmiError):
                    await node.lock(conference.room, False)
            try:
                await self.calls.rejoin(participant, role, muted=participant.muted)
            except AmiError as exc:
                log.warning("conference %s: role change refused by Asterisk: %s", conference.id, exc)
                raise StateConflict("the telephony server did not carry out the action; try again") from exc
            finally:
                if reopen:
                    with contextlib.suppress(AmiError):
                        await node.lock(conference.room, True)
        elif live and participant.state in IN_CALL_STATES:
            await self.calls.set_profile(participant, role)
        updated = await self.repo.update_participant(participant.id, role=str(role)) or participant
        await self.repo.log_event(conference.id, "participant.role", actor=actor_of(owner_id),
                                  participant_id=participant.id, detail={"role": str(role)})
        await self.records.publish("participant.role", conference, participant.id, role=str(role))
        return updated

    async def lock(self, owner_id: int | None, conference_id: int, locked: bool, actor: str | None = None) -> None:
        """Lock (no guest dials in; a chair PIN and whoever is invited still enter) or unlock a
        running conference."""
        conference = await self.records.running(owner_id, conference_id)
        try:
            await self.calls.node(conference.node_id).lock(conference.room, locked)
        except AmiError as exc:
            # no room yet (nobody joined): the stored flag is what dial-in checks
            log.info("conference %s: room not locked in Asterisk: %s", conference.id, exc)
        await self.repo.update(conference.id, locked=locked)
        kind = "conference.locked" if locked else "conference.unlocked"
        await self.repo.log_event(conference.id, kind, actor=actor or actor_of(owner_id))
        await self.records.publish(kind, conference, actor=actor or actor_of(owner_id))

    async def extend(self, owner_id: int | None, conference_id: int, minutes: int,
                     actor: str | None = None) -> Conference:
        """Move the end of a running conference by 15, 30, 45 or 60 minutes."""
        step = validate_extension(minutes)
        conference = await self.records.running(owner_id, conference_id)
        extended = await self.repo.extend(conference.id, self.records.minutes(step).total_seconds(), step,
                                          count_against_cap=True)
        if extended is None:
            current = await self.records.running(owner_id, conference_id)
            raise extension_refusal(current.extend_cap_minutes)
        await self.repo.log_event(conference.id, "conference.extended", actor=actor or actor_of(owner_id),
                                  detail={"minutes": step, "auto": False, "ends_at": extended.ends_at.isoformat()})
        await self.records.publish("conference.extended", extended, minutes=step, auto=False,
                                   ends_at=extended.ends_at.isoformat(), actor=actor or actor_of(owner_id))
        self.records.wake_scheduler()
        await self.lifecycle.announce_extension(extended, step)
        return await self.records.owned(owner_id, conference.id)

    async def end(self, owner_id: int | None, conference_id: int) -> Conference:
        """End a running conference now: everyone is hung up and the room closes."""
        conference = await self.records.running(owner_id, conference_id)
        ended = await self.lifecycle.end_conference(conference.id, reason="ended_by_" + (
            "operator" if owner_id is None else "owner"), actor=actor_of(owner_id))
        if ended is None:
            raise StateConflict("the conference is not running")
        return await self.records.owned(owner_id, conference.id)
