"""Dial-in: the conversation with a caller who reached the access number (conference number,
then PIN), the admission rules, and handing the call to ConfBridge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from engine.adapters.asterisk.contract import PARTICIPANT_VARIABLE, new_dialin_token
from engine.adapters.db.dialin import DialinRepository
from engine.config import Settings
from engine.domain import dialin as rules
from engine.domain.dialin import DialinPolicy, Refusal
from engine.domain.errors import LimitExceeded, NotFound, StateConflict
from engine.domain.model import Conference, ConferenceState, Role
from engine.services.bus import Bus, DomainEvent
from engine.services.handover import NodeHandover, room_variables
from engine.services.permanent_rooms import PermanentRooms
from engine.services.pin_guard import PinGuard

log = logging.getLogger(__name__)


class DialinCall(Protocol):
    """What the service needs of a call (engine.agi.AgiCall provides it)."""

    @property
    def caller_number(self) -> str: ...

    @property
    def channel(self) -> str: ...

    @property
    def uniqueid(self) -> str: ...

    @property
    def first_entry(self) -> str | None:
        """Digits keyed while the dialplan played the first prompt (None: nothing usable)."""

    @property
    def node_id(self) -> str | None:
        """The media node the call is on (None: not said)."""

    async def get_data(self, prompt: str, timeout_ms: int = 6000, max_digits: int = 12) -> str | None: ...

    async def play(self, *prompts: str) -> None: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def set_language(self, language: str) -> None: ...


@dataclass
class DialinOutcome:
    """How one dial-in call ended, for logs, tests and the benchmark."""

    caller: str
    conference_id: int | None = None
    participant_id: int | None = None
    role: Role | None = None
    refusal: Refusal | None = None
    wrong_entries: int = 0
    # seconds the engine itself spent (database and decisions), not waiting for the caller
    engine_seconds: float = 0.0
    total_seconds: float = 0.0


@dataclass
class _Stopwatch:
    spent: float = 0.0
    _since: float = field(default_factory=time.perf_counter)

    def pause(self) -> None:
        self.spent += time.perf_counter() - self._since

    def resume(self) -> None:
        self._since = time.perf_counter()


class DialinService:
    """The conversation and the admission of dial-in calls; wrong entries, waits and lock-outs
    are the guard's (engine/services/pin_guard.py)."""

    def __init__(self, settings: Settings, repo: DialinRepository, bus: Bus, rooms: PermanentRooms,
                 guard: PinGuard, handover: NodeHandover | None = None) -> None:
        self.settings = settings
        self.handover = handover  # several media nodes: the conference's node takes the admitted call
        self.rooms = rooms  # permanent rooms: one answers its number when no session is open
        self.repo = repo
        self.bus = bus
        self.guard = guard
        self.outcomes: list[DialinOutcome] = []  # the latest calls (bounded), newest last
        self.outcomes_kept = 1000  # the bound of ``outcomes`` (a benchmark raises it)
        self._tasks: set[asyncio.Task] = set()

    @property
    def policy(self) -> DialinPolicy:
        """The dial-in policy, shared with the guard."""
        return self.guard.policy

    async def answer(self, call: DialinCall) -> DialinOutcome:
        """Run the IVR for one call. On success the call's VECHE_ROOM / VECHE_PROFILE /
        VECHE_MAX_MEMBERS are set (the dialplan then runs ConfBridge); otherwise they stay empty
        and the dialplan hangs up."""
        started = time.perf_counter()
        caller = rules.caller_number(call.caller_number)
        outcome = DialinOutcome(caller=caller)
        watch = _Stopwatch()
        try:
            await self._converse(call, outcome, watch)
        finally:
            watch.pause()
            outcome.engine_seconds = watch.spent
            outcome.total_seconds = time.perf_counter() - started
            self.outcomes.append(outcome)
            del self.outcomes[:-self.outcomes_kept]
        return outcome

    async def _ask(self, call: DialinCall, prompt: str, watch: _Stopwatch) -> str | None:
        watch.pause()
        try:
            return await call.get_data(prompt, self.policy.digits_timeout_ms, self.policy.max_digits)
        finally:
            watch.resume()

    async def _say(self, call: DialinCall, watch: _Stopwatch, *prompts: str) -> None:
        watch.pause()
        try:
            await call.play(*prompts)
        finally:
            watch.resume()

    async def _converse(self, call: DialinCall, outcome: DialinOutcome, watch: _Stopwatch) -> None:
        policy = self.policy
        caller = outcome.caller
        number: str | None = None  # the conference number keyed; the rest of the call is about it
        conference: Conference | None = None  # None also when no such conference exists
        room: Conference | None = None  # a permanent room not in session, answering the number
        last_error: str | None = None  # the prompt of the latest wrong entry (None after a silence)
        first_entry = call.first_entry  # the conference number the dialplan's Read() heard, if any
        # That number is looked up while the caller is checked: a caller keying the PIN at once
        # loses the digits that arrive before the PIN's GET DATA (AGI drops them between commands).
        known = asyncio.ensure_future(self._number_facts(first_entry)) \
            if first_entry and rules.is_conference_number(first_entry) else None
        try:
            blocked = await self.guard.caller_blocked(caller, call.uniqueid)
        except BaseException:
            if known is not None:
                known.cancel()
            raise
        if blocked:
            if known is not None:
                known.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await known
            outcome.refusal = Refusal.BLOCKED
            await self._say(call, watch, *rules.REFUSAL_PROMPTS[Refusal.BLOCKED], rules.PROMPT_GOODBYE)
            return
        locked: bool | None = None  # the lock-out, when looked up with the number on this pass
        while outcome.wrong_entries < policy.max_wrong_entries:
            if number is None:
                entry = first_entry or await self._ask(call, rules.PROMPT_CONFERENCE_NUMBER, watch)
                first_entry = None
                if not rules.is_conference_number(entry):
                    outcome.wrong_entries, last_error = outcome.wrong_entries + 1, None
                    continue
                number = entry
                # Whether it exists is not told before a correct PIN: an unknown number is asked
                # for the PIN and answered like a wrong PIN (prompts, delays, lock-out).
                looked_up, known = (known or self._number_facts(number)), None
                conference, room, locked = await looked_up
            if locked if locked is not None else await self.guard.locked_out(number):
                await self._refuse_locked_out(call, outcome, number, watch)
                return
            locked = None
            pin = await self._ask(call, rules.PROMPT_PIN, watch)
            if pin is None:
                outcome.wrong_entries, last_error = outcome.wrong_entries + 1, None
                continue
            if await self.guard.locked_out(number):  # closed while this caller was keying
                await self._refuse_locked_out(call, outcome, number, watch)
                return
            target = room or conference
            role = rules.role_for_pin(target, pin) if target is not None else None
            if target is None or role is None:
                outcome.wrong_entries, last_error = outcome.wrong_entries + 1, rules.PROMPT_WRONG_PIN
                await self._wrong_entry(call, caller, conference, number, watch)
                if outcome.wrong_entries < policy.max_wrong_entries:
                    await self._say(call, watch, last_error)
                continue
            if room is not None:
                try:
                    conference = await self.rooms.open_session(room.series_id)
                except (LimitExceeded, StateConflict, NotFound) as exc:
                    outcome.refusal = Refusal.FULL
                    log.info("dial-in: %s refused from room %s: %s", caller, room.series_id, exc)
                    await self._say(call, watch, *rules.REFUSAL_PROMPTS[Refusal.FULL], rules.PROMPT_GOODBYE)
                    return
            outcome.conference_id, outcome.role = conference.id, role
            # known only after a correct PIN: from here the caller hears the conference's language
            await call.set_language(conference.language)
            refusal = rules.admission(conference, role, datetime.now(UTC),
                                      await self.repo.seats_taken(conference.id), policy)
            if refusal is not None:
                outcome.refusal = refusal
                log.info("dial-in: %s refused from conference %s as %s: %s", caller, conference.id, role, refusal)
                await self._say(call, watch, *rules.REFUSAL_PROMPTS[refusal], rules.PROMPT_GOODBYE)
                return
            await self._admit(call, conference, role, outcome)
            return
        log.info("dial-in: %s made %d wrong entries, hanging up", caller, outcome.wrong_entries)
        await self._say(call, watch, *([last_error] if last_error else []), rules.PROMPT_GOODBYE)

    async def _number_facts(self, number: str) -> tuple[Conference | None, Conference | None, bool]:
        """The conference keyed, the permanent room answering its number when no conference with
        it is live, and whether PIN entry on the number is locked out: looked up together."""
        conference, locked = await asyncio.gather(self.repo.conference_by_number(number),
                                                 self.guard.locked_out(number))
        return conference, await self._standing_room(number, conference), locked

    async def _standing_room(self, number: str, conference: Conference | None) -> Conference | None:
        """The permanent room answering ``number`` when no conference with it is live."""
        if (conference is not None and conference.state in (
                ConferenceState.SCHEDULED, ConferenceState.RUNNING)):
            return None
        return await self.rooms.standing(number)

    async def _refuse_locked_out(self, call: DialinCall, outcome: DialinOutcome, number: str,
                                 watch: _Stopwatch) -> None:
        outcome.refusal = Refusal.LOCKED_OUT
        log.warning("dial-in: %s refused: PIN entry on conference number %s is locked out", outcome.caller,
                    number[:20])
        await self._say(call, watch, *rules.REFUSAL_PROMPTS[Refusal.LOCKED_OUT], rules.PROMPT_GOODBYE)

    async def _wrong_entry(self, call: DialinCall, caller: str, conference: Conference | None, number: str,
                           watch: _Stopwatch) -> None:
        """Tell the guard, then make the caller wait as long as it says."""
        delay = await self.guard.wrong_entry(caller, conference, number, call.uniqueid)
        if delay:
            watch.pause()
            await asyncio.sleep(delay)  # the deliberate brute-force brake
            watch.resume()

    async def _admit(self, call: DialinCall, conference: Conference, role: Role, outcome: DialinOutcome) -> None:
        node_id = await self.handover.node_for(conference) if self.handover else conference.node_id
        # The AGI headers name a channel, but anyone reaching the FastAGI port can write them: the
        # call is known by a token of ours until the media node reports the channel that carries
        # it (engine/services/calls.py learns the channel from the node's events).
        token = new_dialin_token()
        participant = await self.repo.add_caller(
            conference.id, number=outcome.caller, role=role, call_id=token, channel=None, node_id=node_id)
        outcome.participant_id = participant.id
        if self.handover and self.handover.elsewhere(call, node_id):
            await self.handover.send(call, node_id, token)  # the conference's node puts it into the room
        else:
            # the row exists before the caller enters the room, so the tracker finds the token on joining
            await call.set_variable(PARTICIPANT_VARIABLE, token)
            for name, value in room_variables(conference, role).items():
                await call.set_variable(name, value)
        log.info("dial-in: %s joins conference %s as %s (participant %s, node %s)", outcome.caller, conference.id,
                 role, participant.id, node_id)
        # the listeners (console stream, notifier) run after the AGI session: the caller does
        # not wait for them to enter the room
        event = DomainEvent(kind="participant.added", conference_id=conference.id, owner_id=conference.owner_id,
                            participant_id=participant.id, data={"origin": "dialin", "role": str(role)})
        task = asyncio.create_task(self.bus.publish(event), name=f"dialin-publish-{participant.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def published(self) -> None:
        """Wait until the events of the calls answered so far are on the bus."""
        await asyncio.gather(*self._tasks)
        await self.guard.published()

    async def stop(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        await self.guard.stop()

