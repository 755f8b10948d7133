"""Participant call states as the dial-out and the call tracker record them: a participant
failed or left (stored, logged and published once), and who a call id belongs to.

Who a call belongs to is asked for most events a node sends, so the answer "nobody" comes from
memory: the engine knows every call id it gives a participant (a dial-out's id when it claims the
call, a dial-in caller's channel once the tracker learned it, a call recovery found in a room)
and, at start, the ids stored for participants still in a call. A dial-in caller's token, which
the IVR put on the channel, is always looked up."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from typing import Any

from engine.adapters.asterisk.contract import is_dialin_token
from engine.adapters.db.conferences import ConferenceRepository, Left
from engine.domain.model import Conference, FailureReason, Participant, ParticipantState
from engine.services.batches import Coalescer
from engine.services.bus import Bus, DomainEvent

IN_CALL_STATES = (ParticipantState.CALLING, ParticipantState.RINGING)
# How long a leave waits for the others of its ending: the hang-ups of a conference's end reach
# the room over a few hundred milliseconds, and each waiting leave is one row less to write alone.
LEAVE_LINGER_SECONDS = 0.01


def now_utc() -> datetime:
    return datetime.now(UTC)


class ParticipantStates:
    """Records participants' call states in the conference repository and publishes them."""

    def __init__(self, repo: ConferenceRepository, bus: Bus) -> None:
        self.repo = repo
        self.bus = bus
        self._owners: dict[int, int | None] = {}  # conference id -> owner id
        self._calls: set[str] = set()  # call ids given to participants, until their call ended
        # participants who leave together (a conference ending, a node's calls dropping) are
        # stored left, with their log entries, in one statement
        self._leaves: Coalescer[int, Left, Participant | None] = Coalescer(self._store_leaves, missing=None,
                                                                           linger=LEAVE_LINGER_SECONDS)

    async def close(self) -> None:
        """Stop a leave write in flight (the engine stops)."""
        await self._leaves.close()

    async def _store_leaves(self, leaves: dict[int, Left]) -> dict[int, Participant]:
        return await self.repo.mark_left(leaves)

    def remember(self, conference: Conference) -> None:
        self._owners[conference.id] = conference.owner_id

    async def owner_of(self, conference_id: int) -> int | None:
        if conference_id not in self._owners:
            conference = await self.repo.get(conference_id, with_participants=False)
            self._owners[conference_id] = conference.owner_id if conference else None
        return self._owners[conference_id]

    def track_call(self, call_id: str | None) -> None:
        """``call_id`` is now a participant's: its events are looked up."""
        if call_id:
            self._calls.add(call_id)

    def untrack_call(self, call_id: str | None) -> None:
        """The call ``call_id`` ended: its late events are nobody's."""
        self._calls.discard(call_id or "")

    async def track_stored_calls(self) -> None:
        """Track the calls stored for participants still calling, ringing or in a room (calls a
        previous engine started, before this one follows the nodes' events)."""
        self._calls.update(await self.repo.live_call_ids())

    async def by_call_id(self, call_id: str, node_id: str) -> Participant | None:
        """The participant whose call is ``call_id`` on ``node_id``."""
        if not call_id or (call_id not in self._calls and not is_dialin_token(call_id)):
            return None
        participant = await self.repo.participant_by_call_id(call_id)
        if participant is None or (participant.node_id and participant.node_id != node_id):
            return None
        return participant

    async def mark_failed(self, participant: Participant, owner_id: int | None, reason: FailureReason,
                          cause: int | None, *, detail: dict[str, Any] | None = None,
                          only_states: Iterable[str] = IN_CALL_STATES) -> Participant | None:
        """Record a failed call (reason, cause), log and publish it; None if the participant was
        no longer in ``only_states``."""
        updated = await self.repo.update_participant(
            participant.id, only_states=only_states, state=ParticipantState.FAILED,
            failure_reason=reason, hangup_cause=cause, talking=False)
        if updated is None:
            return None
        await self.repo.log_event(participant.conference_id, "participant.failed",
                                  participant_id=participant.id,
                                  detail={"reason": str(reason), "cause": cause, **(detail or {})})
        await self.publish("participant.state", participant.conference_id, owner_id, participant.id,
                           state="failed", reason=str(reason), cause=cause)
        return updated

    async def mark_left(self, participant: Participant, cause: int | None) -> Participant | None:
        """A connected participant left the room: record, log and publish it (once); the
        participant as stored, or None when it was no longer connected on ``participant``'s call
        (the participant known from an earlier event may have moved to another call since)."""
        updated = await self._leaves.submit(participant.id,
                                            Left(now_utc(), participant.call_id, cause, {"cause": cause}))
        if updated is None:
            return None
        owner_id = await self.owner_of(participant.conference_id)
        await self.publish("participant.state", participant.conference_id, owner_id, participant.id,
                           state="left", reason=None, cause=cause)
        return updated

    def deliver(self, kind: str, conference_id: int, owner_id: int | None, participant_id: int | None = None,
                **data: Any) -> Awaitable[None]:
        """Publish now to the plain subscribers (the console); the returned awaitable runs the
        asynchronous ones (engine/services/bus.py EventBus.deliver)."""
        return self.bus.deliver(DomainEvent(kind=kind, conference_id=conference_id, owner_id=owner_id,
                                            participant_id=participant_id, data=data))

    async def publish(self, kind: str, conference_id: int, owner_id: int | None,
                      participant_id: int | None = None, **data: Any) -> None:
        await self.bus.publish(DomainEvent(kind=kind, conference_id=conference_id, owner_id=owner_id,
                                           participant_id=participant_id, data=data))
