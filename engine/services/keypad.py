"""Keypad commands pressed in a room: the ConfBridge menu hands each key to the engine (FastAGI
route "keypad"); this service finds who pressed it, acts through live control with
the actor ``keypad:<participant id>`` and speaks the answer on the caller's channel."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from engine.adapters.db.conferences import ConferenceRepository
from engine.config import Settings
from engine.domain import keypad as rules
from engine.domain.errors import VecheError
from engine.domain.keypad import KeyAction
from engine.domain.model import ConferenceState, Participant, ParticipantState, Role
from engine.services.bus import Bus, DomainEvent
from engine.services.calls import now_utc
from engine.services.live_control import LiveControl
from engine.services.prompts import PromptService
from engine.services.recording import RecordingService

log = logging.getLogger(__name__)


class KeypadCall(Protocol):
    """What the service needs of the caller's channel (the FastAGI route provides it)."""

    @property
    def uniqueid(self) -> str: ...

    async def play(self, *prompts: str) -> None: ...

    async def say_number(self, number: int) -> None: ...


@dataclass
class KeypadAnswer:
    """One key press as the engine handled it, for logs and tests: what it did and what
    Asterisk confirmed it played to the caller (an int was said as a number)."""

    key: str
    participant_id: int | None = None
    conference_id: int | None = None
    action: KeyAction | None = None
    said: list[str | int] = field(default_factory=list)
    error: str | None = None
    done: bool = False  # the answer was spoken (or the caller hung up meanwhile)


class KeypadService:
    def __init__(self, settings: Settings, repo: ConferenceRepository, *, live: LiveControl,
                 recording: RecordingService, prompts: PromptService, bus: Bus) -> None:
        self.settings = settings
        self.prompts = prompts
        self.repo = repo
        self.live = live
        self.recording = recording
        self.bus = bus
        self.answers: list[KeypadAnswer] = []  # the latest presses (bounded), newest last

    async def press(self, call: KeypadCall, key: str, node_id: str) -> KeypadAnswer:
        """Handle ``key`` pressed on the channel of ``call``; the participant is the one whose
        call id is the channel's id, on this node, connected to a running conference."""
        answer = KeypadAnswer(key=key)
        self.answers.append(answer)
        del self.answers[:-1000]
        try:
            await self._press(call, key, node_id, answer)
        finally:
            answer.done = True
        return answer

    async def _press(self, call: KeypadCall, key: str, node_id: str, answer: KeypadAnswer) -> None:
        participant = await self.repo.participant_by_call_id(call.uniqueid) if call.uniqueid else None
        if (participant is None or participant.state != ParticipantState.CONNECTED
                or (participant.node_id and participant.node_id != node_id)):
            answer.error = "no connected participant on this channel"
            log.warning("keypad %r from unknown channel %s", key, call.uniqueid)
            return
        conference = await self.repo.get(participant.conference_id)
        if conference is None or conference.state != ConferenceState.RUNNING:
            answer.error = "the conference is not running"
            return
        answer.participant_id, answer.conference_id = participant.id, conference.id
        action = rules.action_for(key, Role(participant.role))
        if action is None:
            answer.error = f"key {key!r} is not in the {participant.role}'s menu"
            await self._say(call, answer, [rules.SAY_INVALID])
            return
        answer.action = action
        actor = f"keypad:{participant.id}"
        owner = conference.owner_id
        await self.repo.log_event(conference.id, "keypad.pressed", actor=actor, participant_id=participant.id,
                                  detail={"key": f"*{key}", "action": str(action)})
        await self.bus.publish(DomainEvent(
            kind="keypad.pressed", conference_id=conference.id, owner_id=owner, participant_id=participant.id,
            data={"key": f"*{key}", "action": str(action), "actor": actor}))
        said: list[str | int]
        try:
            if action == KeyAction.MUTE_SELF:
                muted = not participant.muted
                await self.live.mute(owner, conference.id, participant.id, muted, actor=actor)
                said = [rules.SAY_MUTED if muted else rules.SAY_UNMUTED]
            elif action == KeyAction.MUTE_GUESTS:
                said = [await self._mute_guests(conference.participants, owner, conference.id, actor)]
            elif action == KeyAction.LOCK:
                await self.live.lock(owner, conference.id, not conference.locked, actor=actor)
                said = [rules.SAY_UNLOCKED if conference.locked else rules.SAY_LOCKED]
            elif action == KeyAction.COUNT:
                connected = await self.repo.count_participants(conference.id, [ParticipantState.CONNECTED])
                said = rules.count_answer(connected)
            elif action == KeyAction.EXTEND:
                try:
                    await self.live.extend(owner, conference.id, rules.EXTEND_MINUTES, actor=actor)
                    said = [rules.SAY_EXTENDED]
                except VecheError as exc:
                    answer.error = str(exc)
                    said = [rules.SAY_NOT_EXTENDED]
            elif action == KeyAction.TIME_LEFT:
                current = await self.repo.get(conference.id, with_participants=False)
                ends_at = current.ends_at if current is not None else conference.ends_at
                said = rules.time_answer(rules.minutes_left(ends_at, now_utc(), self.settings.minute_seconds),
                                         conference.language, self._phrases(conference.language))
            elif action == KeyAction.RECORD:
                recording = await self.recording.toggle(owner, conference.id, actor=actor)
                said = [rules.SAY_RECORDING if recording else rules.SAY_RECORDING_STOPPED]
            else:
                said = list(rules.menu_prompts(Role(participant.role), self._phrases(conference.language)))
        except VecheError as exc:
            answer.error = str(exc)
            log.info("keypad *%s of participant %s refused: %s", key, participant.id, exc)
            said = [rules.SAY_INVALID]
        await self._say(call, answer, said)

    async def _mute_guests(self, participants: list[Participant], owner: int | None, conference_id: int,
                           actor: str) -> str:
        """Mute every connected guest, or unmute them all when all of them are muted already."""
        guests = [p for p in participants if p.role == Role.GUEST and p.state == ParticipantState.CONNECTED]
        muted = not guests or not all(p.muted for p in guests)
        for guest in guests:
            if guest.muted != muted:
                try:
                    await self.live.mute(owner, conference_id, guest.id, muted, actor=actor)
                except VecheError as exc:  # left the room meanwhile
                    log.info("keypad mute-all: participant %s skipped: %s", guest.id, exc)
        return rules.SAY_GUESTS_MUTED if muted else rules.SAY_GUESTS_UNMUTED

    def _phrases(self, language: str) -> frozenset[str]:
        """The prompts the operator replaced in ``language`` (Veche phrases name menu keys)."""
        return self.prompts.phrases(language)

    @staticmethod
    async def _say(call: KeypadCall, answer: KeypadAnswer, parts: list[str | int]) -> None:
        """Speak ``parts``; ``answer.said`` holds those Asterisk confirmed (a sound it could not
        play, or a hang-up, ends the answer there)."""
        for part in parts:
            if isinstance(part, int):
                await call.say_number(part)
            else:
                await call.play(part)
            answer.said.append(part)

