"""The conference rows as the conference services share them: the owner's look-ups, the bus,
the scheduler's wake-up and the conference clock, in one place for planning, live control and the
life cycle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from engine.adapters.db.conferences import ConferenceRepository
from engine.config import Settings
from engine.domain.errors import NotFound, StateConflict
from engine.domain.model import Conference, ConferenceState, Participant, state_refusal
from engine.services.bus import Bus, DomainEvent


def actor_of(owner_id: int | None) -> str:
    """How the event log names who acted."""
    return "operator" if owner_id is None else f"account:{owner_id}"


class ConferenceRecords:
    """Reads a conference for its owner, publishes what happened to it and wakes the scheduler.
    ``schedule_changed`` is set whenever a start, warning or end time may have moved, so the
    scheduler recomputes its next wake-up."""

    def __init__(self, settings: Settings, repo: ConferenceRepository, bus: Bus,
                 schedule_changed: asyncio.Event) -> None:
        self.settings = settings
        self.repo = repo
        self.bus = bus
        self.schedule_changed = schedule_changed

    def minutes(self, minutes: float) -> timedelta:
        """A conference duration in wall-clock time (tests shrink ``minute_seconds``)."""
        return timedelta(seconds=minutes * self.settings.minute_seconds)

    def wake_scheduler(self) -> None:
        self.schedule_changed.set()

    async def publish(self, kind: str, conference: Conference, participant_id: int | None = None,
                      **data: Any) -> None:
        await self.deliver(kind, conference, participant_id, **data)

    def deliver(self, kind: str, conference: Conference, participant_id: int | None = None,
                **data: Any) -> Awaitable[None]:
        """Publish now to the plain subscribers (the console); the returned awaitable runs the
        asynchronous ones (mail, audit, metrics: EventBus.deliver)."""
        return self.bus.deliver(DomainEvent(kind=kind, conference_id=conference.id, owner_id=conference.owner_id,
                                            participant_id=participant_id, data=data))

    async def owned(self, owner_id: int | None, conference_id: int, with_participants: bool = True) -> Conference:
        """The conference when ``owner_id`` owns it (None: the operator, who sees every one)."""
        conference = await self.repo.get(conference_id, owner_id, with_participants=with_participants)
        if conference is None:
            raise NotFound("no such conference")
        return conference

    async def running(self, owner_id: int | None, conference_id: int) -> Conference:
        conference = await self.owned(owner_id, conference_id)
        if conference.state != ConferenceState.RUNNING:
            raise StateConflict(state_refusal(conference.state))
        return conference

    @staticmethod
    def participant_of(conference: Conference, participant_id: int) -> Participant:
        for participant in conference.participants:
            if participant.id == participant_id:
                return participant
        raise NotFound("no such participant in this conference")
