"""Dial-in: the conversation with a caller who reached the access number (conference number,
then PIN), the admission rules, the brute-force guard, and handing the call to ConfBridge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from engine.adapters.db.dialin import DialinRepository
from engine.config import Settings
from engine.domain import dialin as rules
from engine.domain.dialin import PIN_LOCKOUT_EVENT, DialinPolicy, Refusal
from engine.domain.errors import LimitExceeded, NotFound, StateConflict
from engine.domain.model import Conference, ConferenceState, Role
from engine.services.bus import Bus, DomainEvent
from engine.services.calls import PARTICIPANT_VARIABLE, new_dialin_token
from engine.services.handover import NodeHandover, room_variables
from engine.services.series import SeriesService

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
    def __init__(self, settings: Settings, repo: DialinRepository, bus: Bus, rooms: SeriesService,
                 policy: DialinPolicy | None = None, handover: NodeHandover | None = None) -> None:
        self.settings = settings
        self.handover = handover  # several media nodes: the conference's node takes the admitted call
        self.rooms = rooms  # permanent rooms: one answers its number when no session is open
        self.repo = repo
        self.bus = bus
        if policy is None:
            policy = DialinPolicy(join_early_minutes=getattr(settings, "join_early_minutes", 10),
                                  withheld_block_after=settings.withheld_block_after,
                                  lockout_after=settings.pin_lockout_after,
                                  lockout_seconds=settings.pin_lockout_seconds)
            if settings.test_mode:  # tests key many wrong PINs from few numbers
                policy = replace(policy, base_delay_seconds=0.05, max_delay_seconds=0.4)
        self.policy = policy
        self.outcomes: list[DialinOutcome] = []  # the latest calls (bounded), newest last
        self._tasks: set[asyncio.Task] = set()

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
            del self.outcomes[:-1000]
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
        if await self._caller_blocked(call, caller):
            outcome.refusal = Refusal.BLOCKED
            await self._say(call, watch, *rules.REFUSAL_PROMPTS[Refusal.BLOCKED], rules.PROMPT_GOODBYE)
            return
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
                conference = await self.repo.conference_by_number(number)
                room = await self._standing_room(number, conference)
            if await self._locked_out(number):
                await self._refuse_locked_out(call, outcome, number, watch)
                return
            pin = await self._ask(call, rules.PROMPT_PIN, watch)
            if pin is None:
                outcome.wrong_entries, last_error = outcome.wrong_entries + 1, None
                continue
            if await self._locked_out(number):  # closed while this caller was keying
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

    async def _standing_room(self, number: str, conference: Conference | None) -> Conference | None:
        """The permanent room answering ``number`` when no conference with it is live."""
        if (conference is not None and conference.state in (
                ConferenceState.SCHEDULED, ConferenceState.RUNNING)):
            return None
        return await self.rooms.standing(number)

    async def _caller_blocked(self, call: DialinCall, caller: str) -> bool:
        since = datetime.now(UTC) - timedelta(seconds=self.policy.failure_window_seconds)
        by_caller, _ = await self.repo.recent_failures(caller=caller, caller_since=since, conference_number="",
                                                       number_since=since)
        if not self.policy.caller_blocked(by_caller, caller):
            return False
        await self.repo.record_failure(caller=caller, kind="blocked", conference_id=None, conference_number="",
                                       call_id=call.uniqueid)
        log.warning("dial-in: caller %s refused outright after %d wrong entries in %d s", caller, by_caller,
                    self.policy.failure_window_seconds)
        return True

    async def _locked_out(self, number: str) -> bool:
        return rules.locked_out(await self.repo.lockout_until(number), datetime.now(UTC))

    async def _refuse_locked_out(self, call: DialinCall, outcome: DialinOutcome, number: str,
                                 watch: _Stopwatch) -> None:
        outcome.refusal = Refusal.LOCKED_OUT
        log.warning("dial-in: %s refused: PIN entry on conference number %s is locked out", outcome.caller,
                    number[:20])
        await self._say(call, watch, *rules.REFUSAL_PROMPTS[Refusal.LOCKED_OUT], rules.PROMPT_GOODBYE)

    async def _wrong_entry(self, call: DialinCall, caller: str, conference: Conference | None, number: str,
                           watch: _Stopwatch) -> None:
        """Record a wrong entry, close PIN entry on the number when it saw too many, and make the
        caller wait the longer the more came recently."""
        policy = self.policy
        await self.repo.record_failure(caller=caller, kind="pin" if conference else "number",
                                       conference_id=conference.id if conference else None,
                                       conference_number=number, call_id=call.uniqueid)
        now = datetime.now(UTC)
        by_caller, by_number = await self.repo.recent_failures(
            caller=caller, caller_since=now - timedelta(seconds=policy.failure_window_seconds),
            conference_number=number, number_since=policy.counting_since(now, await self.repo.lockout_until(number)))
        if policy.lockout_due(by_number):
            await self._start_lockout(conference, number, now, by_number)
        delay = policy.delay_for(by_caller, by_number)
        log.warning("dial-in: wrong PIN from %s (conference %s, number %s); recent failures: caller %d, "
                    "number %d; waiting %.2f s", caller, conference.id if conference else None, number[:20],
                    by_caller, by_number, delay)
        if delay:
            watch.pause()
            await asyncio.sleep(delay)  # the deliberate brute-force brake
            watch.resume()

    async def _start_lockout(self, conference: Conference | None, number: str, now: datetime, failures: int) -> None:
        until = self.policy.lockout_end(now)
        started = await self.repo.start_lockout(conference_number=number,
                                                conference_id=conference.id if conference else None,
                                                now=now, until=until, failures=failures)
        if started is None:
            return  # another call (maybe on another engine) started this lock-out
        log.warning("dial-in: %d wrong PINs on conference number %s: PIN entry closed until %s", failures,
                    number[:20], until.isoformat())
        if conference is None:
            return
        # the owner's console banner and e-mail (notifier) learn it from the bus, after this call
        event = DomainEvent(kind=PIN_LOCKOUT_EVENT, conference_id=conference.id, owner_id=conference.owner_id,
                            data={"started_at": started.isoformat(), "until": until.isoformat(),
                                  "failures": failures})
        task = asyncio.create_task(self.bus.publish(event), name=f"dialin-lockout-{conference.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def pin_lockout(self, conference_id: int) -> dict[str, datetime] | None:
        """The running lock-out of a conference's PIN entry (started_at, until), for its console
        and card."""
        found = await self.repo.conference_lockout(conference_id)
        return {"started_at": found[0], "until": found[1]} if found else None

    async def _admit(self, call: DialinCall, conference: Conference, role: Role, outcome: DialinOutcome) -> None:
        node_id = await self.handover.node_for(conference) if self.handover else conference.node_id
        # The AGI headers name a channel and Uniqueid, but anyone reaching the FastAGI port can
        # write them: the call is known by a token of ours until AMI reports the channel that
        # carries it (engine/services/calls.py learns the real Uniqueid and name from the events).
        token = new_dialin_token()
        participant = await self.repo.add_caller(
            conference.id, number=outcome.caller, role=role, call_id=token, channel=None, node_id=node_id)
        outcome.participant_id = participant.id
        if self.handover and self.handover.elsewhere(call, node_id):
            await self.handover.send(call, node_id, token)  # the conference's node puts it into the room
        else:
            # the row exists before ConfBridge runs, so the tracker finds the ConfbridgeJoin's token
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

    async def stop(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)

