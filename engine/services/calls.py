"""Call tracking and call control: turns the media nodes' typed events into participant states,
and hangs up, moves and announces into calls. Dial-out lives in engine/services/dialout.py.

The tracker follows joins, leaves, mute changes, talking and hang-ups of every participant
(dial-out or dial-in) by ``participants.call_id``. It handles each call's events in arrival
order, and different calls side by side (engine/services/lanes.py), so one call's database writes
never hold up the node's event stream or another call. A call in a room is known in memory from
its join until it leaves, so its talking changes need no participant look-up in the database.
A channel's name and id are learned from the node's events only. A dial-in participant starts
with an engine-chosen token as ``call_id``, which the IVR puts on the caller's channel; the node
reports it with every event of that channel, and the first event carrying it tells the tracker
the channel's real id and name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from engine.adapters.asterisk import (
    CallEvent,
    CallHungUp,
    MediaNode,
    MediaNodes,
    Muted,
    NodeEvent,
    ParticipantJoined,
    ParticipantLeft,
    RoomStarted,
    Talking,
)
from engine.adapters.asterisk.contract import PROMPTS, ROOM_EXTRA_MEMBERS
from engine.adapters.db.conferences import ConferenceRepository, Joined, LogEntry, SlotGrant
from engine.config import Settings
from engine.domain.errors import AmiError
from engine.domain.model import Conference, FailureReason, Origin, Participant, ParticipantState, Role
from engine.domain.planning import AccountRules
from engine.domain.speech import Announcement
from engine.services.batches import Coalescer
from engine.services.dialout import DialOutService
from engine.services.lanes import Lanes
from engine.services.participant_states import IN_CALL_STATES, ParticipantStates, now_utc
from engine.services.prompts import PromptService

__all__ = ["IN_CALL_STATES", "CallService", "now_utc"]

log = logging.getLogger(__name__)

ANNOUNCE_TIMEOUT_SECONDS = 30.0  # an announcement is a few seconds; never hold an end longer
# How long a join waits for the rest of its burst while dial-outs are in flight: a burst's joins
# come a few ms apart when Asterisk is busy, each statement wakes PostgreSQL on the cores Asterisk
# needs, and the console's 'connected' may come a moment late; the call before the last one in
# flight ends the wait, and the last is written on its own at once.
JOIN_LINGER_SECONDS = 0.03
REJOIN_TIMEOUT = 10.0  # how long a call moved back into its room may take to re-enter
CAUSE_LINGER_SECONDS = 0.01  # nothing waits for a hang-up cause: it waits for the rest of its ending
GONE_KEPT = 10_000  # calls that left their room and whose hang-up has not come yet


class CallService:
    """The participant tracker for every node, and the calls' controls the conference service uses."""

    def __init__(self, settings: Settings, repo: ConferenceRepository, *, nodes: MediaNodes,
                 states: ParticipantStates, dialout: DialOutService, prompts: PromptService) -> None:
        self.settings = settings
        self.repo = repo
        self.nodes = nodes
        self.states = states
        self.dialout = dialout
        self.prompts = prompts
        self._known: dict[str, int] = {}  # call_id -> participant id of calls seen in a room
        self._in_room: dict[str, Participant] = {}  # call_id -> its participant, from its join until it leaves
        self._gone: dict[str, Participant] = {}  # call_id -> its participant as stored left, until its hang-up
        self._rejoining: dict[str, asyncio.Future] = {}  # call_id -> its re-entry (role change)
        # calls that join together (a dial-out's burst) are stored connected together: while
        # dial-outs are still being placed a join waits up to JOIN_LINGER_SECONDS for the rest of
        # its burst; the one before the last ends the wait, so the join a start's last
        # 'connected' waits for is one row, written at once beside the rest of the burst
        self._joins: Coalescer[int, Joined, Participant | None] = Coalescer(
            self.repo.mark_joined, missing=None, linger=JOIN_LINGER_SECONDS, coming=dialout.calls_in_flight)
        # the hang-up causes of calls that left their rooms together (a conference ending), in one statement
        self._causes: Coalescer[int, int, bool] = Coalescer(self._store_causes, missing=False,
                                                             linger=CAUSE_LINGER_SECONDS)
        self._lanes = Lanes("tracker")
        self._writes = Lanes("talking")  # per participant id: talking writes behind the console's news
        self._talk_seq: dict[int, int] = {}  # participant id -> number of its latest talking change
        self._talk_dirty: set[int] = set()  # participants whose stored talking flag is behind

    async def start(self) -> None:
        """Follow every node's events."""
        await self.states.track_stored_calls()
        self.nodes.subscribe(self._submit)

    async def stop(self) -> None:
        self.nodes.unsubscribe(self._submit)
        await self._lanes.close()
        await self._writes.close()
        await self._joins.close()
        await self._causes.close()
        await self.states.close()

    async def settled(self) -> None:
        """Return once every event received so far has been handled and written."""
        await self._lanes.drain()
        await self._writes.drain()

    def _submit(self, event: NodeEvent) -> None:
        """Queue the event behind the earlier events of its call (of its room, for room events)."""
        call_id = getattr(event, "call_id", None)
        key = (event.node_id, call_id) if call_id else (event.node_id, "room", getattr(event, "room", None))
        self._lanes.submit(key, lambda: self.on_event(event))

    def node(self, node_id: str | None) -> MediaNode:
        return self.nodes.node(node_id)

    # ----------------------------------------------------------------- the conference service's calls

    async def dial(self, conference: Conference, participants: Iterable[Participant], *,
                   actor: str = "engine", strict_rate: bool = True) -> list[int]:
        """Dial participants into the conference (engine/services/dialout.py)."""
        return await self.dialout.dial(conference, participants, actor=actor, strict_rate=strict_rate)

    async def claim_new(self, fields: dict[str, Any], participants: list[dict[str, Any]], events: list[LogEntry], *,
                        rules: AccountRules) -> tuple[Conference, SlotGrant]:
        """Store an immediate conference with its call slots claimed (engine/services/dialout.py)."""
        return await self.dialout.claim_new(fields, participants, events, rules=rules)

    async def dial_claimed(self, conference: Conference, grant: SlotGrant, rules: AccountRules) -> list[int]:
        return await self.dialout.dial_claimed(conference, grant, rules)

    async def calls_settled(self, conference_id: int, quiet: float, longest: float) -> None:
        """Until the conference's dial-outs in flight joined or failed, or none did for ``quiet``
        seconds, at most ``longest`` seconds."""
        await self.dialout.settled(conference_id, quiet, longest)

    def forget_attempt(self, call_id: str | None) -> None:
        self.dialout.forget_attempt(call_id)

    async def mark_failed(self, participant: Participant, owner_id: int | None, reason: FailureReason,
                          cause: int | None, *, detail: dict[str, Any] | None = None,
                          only_states: Iterable[str] = IN_CALL_STATES) -> Participant | None:
        return await self.states.mark_failed(participant, owner_id, reason, cause, detail=detail,
                                             only_states=only_states)

    async def mark_left(self, participant: Participant, cause: int | None) -> None:
        await self.states.mark_left(participant, cause)

    # ----------------------------------------------------------------- control

    async def hangup(self, participant: Participant) -> None:
        """Hang up the participant's call, wherever it is (dialling or in the room)."""
        if participant.call_id:
            await self.node(participant.node_id).hangup(participant.channel, participant.call_id)

    async def rejoin(self, participant: Participant, role: Role, muted: bool = False) -> None:
        """Move a connected participant's call back into its room in ``role`` (admin and marked
        for a chair). The call stays up; the room's leave and join of this move are not the
        participant leaving. A muted participant stays muted."""
        call_id = participant.call_id or ""
        if call_id in self._rejoining:
            raise AmiError("the participant's role is being changed; try again in a moment")
        node = self.node(participant.node_id)
        entered = asyncio.get_running_loop().create_future()
        self._rejoining[call_id] = entered
        try:
            await node.rejoin(participant.channel, role, invited=participant.origin == Origin.DIALOUT)
            try:
                await asyncio.wait_for(entered, REJOIN_TIMEOUT)
            except TimeoutError:
                raise AmiError("the participant did not re-enter the room") from None
            if muted:
                await node.mute(str(entered.result()), participant.channel, True)
        finally:
            self._rejoining.pop(call_id, None)

    async def set_profile(self, participant: Participant, role: Role) -> None:
        """A call still being set up enters the room in ``role``."""
        if not participant.call_id:
            return
        try:
            await self.node(participant.node_id).set_role(participant.call_id, role,
                                                          invited=participant.origin == Origin.DIALOUT)
        except AmiError as exc:  # the call ended meanwhile: the stored role is used next time
            log.info("participant %s: profile not set on the call: %s", participant.id, exc)

    async def announce(self, conference: Conference, prompt: str | Announcement, *, wait: bool = False) -> str:
        """Play one of the engine's fixed prompts, or an announcement composed of them, into the
        room in the conference's language (the operator's replacements first); returns the
        announcer's call id. ``wait``: return only once it played to the end, or after
        ANNOUNCE_TIMEOUT_SECONDS."""
        spoken = prompt if isinstance(prompt, Announcement) else Announcement(
            conference.language, (PROMPTS[prompt],))  # KeyError outside the list
        lang, sound = spoken.language, self.prompts.sound
        spoken = replace(spoken, sounds=tuple(sound(lang, name) for name in spoken.sounds),
                         unit=spoken.unit and sound(lang, spoken.unit),
                         number_sound=spoken.number_sound and sound(lang, spoken.number_sound))
        return await self.node(conference.node_id).play(
            conference.room, spoken, max_members=conference.max_participants + ROOM_EXTRA_MEMBERS,
            wait_seconds=ANNOUNCE_TIMEOUT_SECONDS if wait else None)

    # ----------------------------------------------------------------- tracker

    async def on_event(self, event: NodeEvent) -> None:
        """Route one node event: dial-outs in flight first, then the participant it is about."""
        if isinstance(event, ParticipantLeft | CallHungUp) and event.call_id in self._known:
            pid = self._known[event.call_id]
            await self._writes.idle(pid)  # its talk spans are closed after them
            self._talk_seq.pop(pid, None)
        if isinstance(event, ParticipantJoined) and not event.announcer:
            entered = self._rejoining.get(event.call_id)
            if entered is not None:
                if not entered.done():
                    entered.set_result(event.room)
                return
        attempt = self.dialout.attempts.get(event.call_id) if isinstance(event, ParticipantJoined) else None
        if await self.dialout.on_event(event):
            return
        if isinstance(event, RoomStarted):
            await self._room_started(event)
        elif isinstance(event, CallEvent) and not event.announcer:
            if isinstance(event, ParticipantJoined):
                dialled = attempt.participant if attempt is not None and attempt.node_id == event.node_id else None
                await self._joined(event, dialled)
            elif isinstance(event, ParticipantLeft):
                if event.call_id not in self._rejoining:
                    await self._left(event)
            elif isinstance(event, Muted):
                await self._muted(event)
            elif isinstance(event, Talking):
                await self._talking(event)
            elif isinstance(event, CallHungUp):
                await self._hung_up(event)

    async def _room_started(self, event: RoomStarted) -> None:
        """A room was created: if its conference was locked before anyone joined, lock it now."""
        conference = await self.repo.get_by_room(event.room)
        if conference is None or conference.node_id != event.node_id or not conference.locked:
            return
        try:
            await self.node(event.node_id).lock(conference.room, True)
        except AmiError as exc:
            log.warning("conference %s: could not lock the new room: %s", conference.id, exc)

    async def _joined(self, event: ParticipantJoined, dialled: Participant | None = None) -> None:
        """``dialled``: the participant of the engine's dial-out in flight for this call, known
        without a look-up."""
        participant = dialled or await self._participant_of(event)
        if participant is None:
            return
        updated = await self._joins.submit(participant.id, Joined(now_utc(), event.channel, event.muted))
        if updated is None:
            return
        self._known[event.call_id] = participant.id
        self._in_room[event.call_id] = updated
        await self.states.publish("participant.state", participant.conference_id,
                                  await self.states.owner_of(participant.conference_id), participant.id,
                                  state="connected", reason=None, cause=None)

    async def _left(self, event: ParticipantLeft) -> None:
        """A call left its room: its participant, known from the join, is stored left; its
        hang-up, which follows, then finds it here."""
        participant = self._in_room.pop(event.call_id, None)
        if participant is None or participant.node_id not in (None, event.node_id):
            participant = await self._participant_of(event)
        if participant is None or participant.state != ParticipantState.CONNECTED:
            return
        left = await self.states.mark_left(participant, None)
        if left is not None:
            self._gone[event.call_id] = left
            while len(self._gone) > GONE_KEPT:  # hang-ups lost with a link are not waited for forever
                self._gone.pop(next(iter(self._gone)))

    async def _hung_up(self, event: CallHungUp) -> None:
        if event.call_id not in self._known and not event.dialin and event.token is None:
            return
        participant = self._gone.pop(event.call_id, None) or await self._participant_of(event)
        self._known.pop(event.call_id, None)
        self._in_room.pop(event.call_id, None)
        self.states.untrack_call(event.call_id)
        if participant is None:
            return
        cause = event.cause
        if participant.state == ParticipantState.CONNECTED:
            await self.states.mark_left(participant, cause)
        elif participant.state == ParticipantState.LEFT and cause and participant.hangup_cause is None:
            await self._causes.submit(participant.id, cause)
        elif participant.state in IN_CALL_STATES:
            # a caller who hung up before reaching the room
            updated = await self.repo.update_participant(
                participant.id, only_states=IN_CALL_STATES, state=ParticipantState.LEFT,
                left_at=now_utc(), hangup_cause=cause)
            if updated is not None:
                await self.states.publish("participant.state", participant.conference_id,
                                          await self.states.owner_of(participant.conference_id), participant.id,
                                          state="left", reason=None, cause=cause)

    async def _store_causes(self, causes: dict[int, int]) -> dict[int, bool]:
        return {participant_id: True for participant_id in await self.repo.store_hangup_causes(causes)}

    async def _muted(self, event: Muted) -> None:
        participant = await self._participant_of(event)
        if participant is None or participant.muted == event.on:
            return
        await self.repo.update_participant(participant.id, muted=event.on)
        await self.states.publish("participant.muted" if event.on else "participant.unmuted",
                                  participant.conference_id, await self.states.owner_of(participant.conference_id),
                                  participant.id)

    async def _talking(self, event: Talking) -> None:
        """The console hears of a talking change at once; the talking flag and the bus's slower
        listeners (the pictures' talk spans) follow in the participant's writing lane, in order."""
        participant = self._in_room.get(event.call_id)
        if participant is None or participant.node_id not in (None, event.node_id):
            participant = await self._participant_of(event)
            if participant is not None and participant.state == ParticipantState.CONNECTED:
                self._in_room[event.call_id] = participant
        if participant is None:
            return
        changed = participant.talking != event.on
        if changed and event.call_id in self._in_room:
            self._in_room[event.call_id] = replace(participant, talking=event.on)
        rest = self.states.deliver("participant.talking", participant.conference_id,
                                   await self.states.owner_of(participant.conference_id), participant.id,
                                   talking=event.on)

        pid = participant.id
        seq = self._talk_seq[pid] = self._talk_seq.get(pid, 0) + 1

        async def write() -> None:
            # behind a backlog only the participant's latest change is written (the stored flag
            # ends the same); every change still reaches the bus's listeners, in order
            if changed:
                self._talk_dirty.add(pid)
            if pid in self._talk_dirty and self._talk_seq.get(pid) == seq:
                self._talk_dirty.discard(pid)
                await self.repo.update_participant(pid, only_states=(ParticipantState.CONNECTED,), talking=event.on)
            await rest

        self._writes.submit(pid, write)

    async def _participant_of(self, event: CallEvent) -> Participant | None:
        """The participant an event is about: by the call's id, or, for a dial-in caller whose
        channel the node has not reported yet, by the token the IVR put on the channel; then the
        channel's id and name from this event are stored as the call's identity."""
        participant = await self.states.by_call_id(event.call_id, event.node_id)
        if participant is not None:
            return participant
        if event.token is None or not event.identified:
            return None
        participant = await self.states.by_call_id(event.token, event.node_id)
        if participant is None or participant.origin != "dialin":
            return None
        learned = await self.repo.update_participant(participant.id, call_id=event.call_id, channel=event.channel,
                                                     node_id=event.node_id)
        if learned is not None:
            self.states.track_call(event.call_id)
            log.info("dial-in participant %s is channel %s (%s)", participant.id, event.channel, event.call_id)
        return learned
