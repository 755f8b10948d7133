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
from engine.domain.dialin import DialinPolicy, Refusal
from engine.domain.model import Conference, Role
from engine.services.bus import Bus, DomainEvent
from engine.services.calls import PROFILES  # the ConfBridge user profile of each role, as dial-out uses

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

    async def get_data(self, prompt: str, timeout_ms: int = 6000, max_digits: int = 12) -> str | None: ...

    async def play(self, *prompts: str) -> None: ...

    async def set_variable(self, name: str, value: str) -> None: ...


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
    def __init__(self, settings: Settings, repo: DialinRepository, bus: Bus,
                 policy: DialinPolicy | None = None) -> None:
        self.settings = settings
        self.repo = repo
        self.bus = bus
        if policy is None:
            policy = DialinPolicy(join_early_minutes=getattr(settings, "join_early_minutes", 10))
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
        conference: Conference | None = None
        last_error: str | None = None  # the prompt of the latest wrong entry (None after a silence)
        first_entry = call.first_entry  # the conference number the dialplan's Read() heard, if any
        if await self._caller_blocked(call, caller):
            outcome.refusal = Refusal.BLOCKED
            await self._say(call, watch, *rules.REFUSAL_PROMPTS[Refusal.BLOCKED], rules.PROMPT_GOODBYE)
            return
        while outcome.wrong_entries < policy.max_wrong_entries:
            if conference is None:
                number = first_entry or await self._ask(call, rules.PROMPT_CONFERENCE_NUMBER, watch)
                first_entry = None
                if number is None:
                    outcome.wrong_entries, last_error = outcome.wrong_entries + 1, None
                    continue
                conference = await self.repo.conference_by_number(number) if number.isdigit() else None
                if conference is None:
                    outcome.wrong_entries, last_error = outcome.wrong_entries + 1, rules.PROMPT_UNKNOWN_NUMBER
                    await self._wrong_entry(call, caller, "number", None, number, watch)
                    if outcome.wrong_entries < policy.max_wrong_entries:
                        await self._say(call, watch, last_error)
                    continue
            pin = await self._ask(call, rules.PROMPT_PIN, watch)
            role = rules.role_for_pin(conference, pin)
            if role is None:
                outcome.wrong_entries += 1
                last_error = None if pin is None else rules.PROMPT_WRONG_PIN
                if last_error is not None:
                    await self._wrong_entry(call, caller, "pin", conference.id, conference.conference_number,
                                            watch)
                    if outcome.wrong_entries < policy.max_wrong_entries:
                        await self._say(call, watch, last_error)
                continue
            outcome.conference_id, outcome.role = conference.id, role
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

    async def _caller_blocked(self, call: DialinCall, caller: str) -> bool:
        if caller == "00":
            return False  # withheld numbers share one key; the per-conference delay still applies
        since = datetime.now(UTC) - timedelta(seconds=self.policy.failure_window_seconds)
        by_caller, _ = await self.repo.recent_failures(caller=caller, conference_id=None, since=since)
        if not self.policy.caller_blocked(by_caller):
            return False
        await self.repo.record_failure(caller=caller, kind="blocked", conference_id=None, conference_number="",
                                       call_id=call.uniqueid)
        log.warning("dial-in: caller %s refused outright after %d wrong entries in %d s", caller, by_caller,
                    self.policy.failure_window_seconds)
        return True

    async def _wrong_entry(self, call: DialinCall, caller: str, kind: str, conference_id: int | None,
                           number: str, watch: _Stopwatch) -> None:
        """Record a wrong entry and make the caller wait the longer the more came recently."""
        await self.repo.record_failure(caller=caller, kind=kind, conference_id=conference_id,
                                       conference_number=number, call_id=call.uniqueid)
        since = datetime.now(UTC) - timedelta(seconds=self.policy.failure_window_seconds)
        by_caller, by_conference = await self.repo.recent_failures(
            caller=caller, conference_id=conference_id, since=since)
        delay = self.policy.delay_for(by_caller, by_conference)
        log.warning("dial-in: wrong %s from %s (conference %s, number %s); recent failures: caller %d, "
                    "conference %d; waiting %.2f s", kind, caller, conference_id, number[:20], by_caller,
                    by_conference, delay)
        if delay:
            watch.pause()
            await asyncio.sleep(delay)  # the deliberate brute-force brake
            watch.resume()

    async def _admit(self, call: DialinCall, conference: Conference, role: Role, outcome: DialinOutcome) -> None:
        node_id = self.settings.node_id
        participant = await self.repo.add_caller(
            conference.id, number=outcome.caller, role=role, call_id=call.uniqueid, channel=call.channel,
            node_id=node_id)
        outcome.participant_id = participant.id
        # the row exists before ConfBridge runs, so the tracker finds the ConfbridgeJoin's Uniqueid
        await call.set_variable("VECHE_PROFILE", PROFILES[role])
        # one seat more than planned, for the quiet announcer channel that plays the deadline warning
        await call.set_variable("VECHE_MAX_MEMBERS", str(conference.max_participants + 1))
        await call.set_variable("VECHE_ROOM", conference.room)
        log.info("dial-in: %s joins conference %s as %s (participant %s)", outcome.caller, conference.id, role,
                 participant.id)
        # the listeners (console stream, notifier) run after the AGI session: the caller does
        # not wait for them to enter the room
        event = DomainEvent(kind="participant.added", conference_id=conference.id, owner_id=conference.owner_id,
                            participant_id=participant.id, data={"origin": "dialin", "role": str(role)})
        task = asyncio.create_task(self.bus.publish(event), name=f"dialin-publish-{participant.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)

