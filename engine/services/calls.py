"""Dial-out and call tracking: turns Originates and Asterisk's events into participant states.

Dial-out: every participant is dialled ``Local/<number>@veche-dialout/n`` (number plan checked
again right before the Originate) with a ChannelId the engine chooses; the outcome arrives as
OriginateResponse (Uniqueid == ChannelId), UserEvent VecheDialResult (Call == ChannelId) and
Hangup. State machine: planned -> calling -> ringing -> connected -> left, or failed(reason,
cause). The tracker follows ConfbridgeJoin/Leave/Mute/Unmute/Talking/Hangup of every participant
(dial-out or dial-in) by ``participants.call_id``.

A channel's name and Uniqueid are learned from AMI events only. A dial-in participant starts with
an engine-chosen token as ``call_id``, which the IVR puts on the caller's channel as the variable
``VECHE_PARTICIPANT``; manager.conf reports it in every event of that channel (``channelvars``),
and the first event carrying it tells the tracker the channel's real Uniqueid and name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from engine.adapters.ami import AmiAdapter, AmiEvent, is_channel
from engine.adapters.db.call_slots import CallSlotRepository, SlotGrant, SlotRequest
from engine.adapters.db.conferences import ConferenceRepository
from engine.config import Settings
from engine.domain.dialout import should_retry
from engine.domain.errors import AmiError, Forbidden, RateLimited, ValidationError
from engine.domain.model import Conference, FailureReason, Origin, Participant, ParticipantState, Role
from engine.domain.numberplan import NumberPlan
from engine.domain.speech import Announcement
from engine.services.bus import Bus, DomainEvent
from engine.services.operator import LimitGuard, NumberPlans
from engine.services.prompts import PromptService

log = logging.getLogger(__name__)

TRACKED_EVENTS = ("OriginateResponse", "UserEvent", "DialBegin", "Hangup", "ConfbridgeStart", "ConfbridgeJoin",
                  "ConfbridgeLeave", "ConfbridgeMute", "ConfbridgeUnmute", "ConfbridgeTalking")
DIALABLE_STATES = (ParticipantState.PLANNED, ParticipantState.FAILED, ParticipantState.LEFT)
IN_CALL_STATES = (ParticipantState.CALLING, ParticipantState.RINGING)
PROFILES = {Role.CHAIR: "veche_chair", Role.GUEST: "veche_guest"}
# A dial-in guest of a permanent room with "guests wait for the chair" (wait_marked).
WAITING_GUEST_PROFILE = "veche_guest_wait"
# Whoever the owner or chair invites enters even a locked room (see asterisk-config/confbridge.conf).
INVITED_PROFILES = {Role.CHAIR: "veche_chair", Role.GUEST: "veche_guest_invited"}
# The fixed prompts the engine may play into a room (key -> Asterisk sound name).
PROMPTS = {"deadline_warning": "beep", "extended": "conf-extended", "ending": "confbridge-conf-end",
           "recording": "conf-now-recording"}
ANNOUNCER_PREFIX = "an-"
ANNOUNCE_TIMEOUT_SECONDS = 30.0  # an announcement is a few seconds; never hold an end longer
ROOM_EXTRA_MEMBERS = 2  # room seats beyond the participants: the announcer and the recorder
DIALOUT_PREFIX = "vo-"
DIALIN_PREFIX = "vi-"
PARTICIPANT_VARIABLE = "VECHE_PARTICIPANT"  # also in manager.conf channelvars
OUTCOME_GRACE_SECONDS = 2.0
WATCHDOG_EXTRA_SECONDS = 20.0
REJOIN_TIMEOUT = 10.0  # how long a channel moved back into its room may take to re-enter
# What the event log says about a participant a dial-out limit left out.
LIMIT_WHY = {"max_dialouts_per_minute": "rate_limited", "max_concurrent_calls": "account_call_limit",
             "system_concurrent_calls": "system_call_limit"}
DEFAULT_CAUSES = {FailureReason.BUSY: 17, FailureReason.NO_ANSWER: 19, FailureReason.CONGESTION: 34,
                  FailureReason.REJECTED: 21, FailureReason.INVALID_NUMBER: 28}


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_dialin_token() -> str:
    """The ``call_id`` of a dial-in participant until AMI reports its channel's Uniqueid."""
    return f"{DIALIN_PREFIX}{secrets.token_hex(8)}"


def is_dialin_token(value: str | None) -> bool:
    return bool(value) and len(value) == len(DIALIN_PREFIX) + 16 and value.startswith(DIALIN_PREFIX) \
        and all(c in "0123456789abcdef" for c in value[len(DIALIN_PREFIX):])


def failure_from(dial_status: str | None, dial_cause: int | None, originate_reason: str | None,
                 hangup_cause: int | None) -> tuple[FailureReason, int | None]:
    """Why a dial-out failed and its hangup cause, from what Asterisk reported. The Originate
    Reason alone does not tell busy from rejected, so the dialplan's DialStatus comes first."""
    cause = dial_cause or hangup_cause or None
    if dial_status == "BUSY":
        reason = FailureReason.BUSY
    elif dial_status == "NOANSWER":
        reason = FailureReason.NO_ANSWER
    elif dial_status == "CONGESTION":
        reason = FailureReason.CONGESTION
    elif dial_status == "CHANUNAVAIL":
        reason = {21: FailureReason.REJECTED, 1: FailureReason.INVALID_NUMBER,
                  28: FailureReason.INVALID_NUMBER}.get(cause or 0, FailureReason.CONGESTION)
    elif dial_status == "CANCEL":
        reason = FailureReason.CANCELLED
    elif originate_reason == "3":
        reason = FailureReason.NO_ANSWER
    elif originate_reason == "5" or hangup_cause == 17:
        reason = FailureReason.BUSY
    elif originate_reason == "8" or hangup_cause == 34:
        reason = FailureReason.CONGESTION
    elif hangup_cause in (1, 28):
        reason = FailureReason.INVALID_NUMBER
    elif hangup_cause == 21:
        reason = FailureReason.REJECTED
    else:
        reason = FailureReason.ERROR
    return reason, cause or DEFAULT_CAUSES.get(reason)


@dataclass
class DialAttempt:
    """One Originate in flight, until its outcome is known."""

    call_id: str
    participant_id: int
    conference_id: int
    owner_id: int | None
    node_id: str
    answered: bool = False
    originate_reason: str | None = None
    dial_status: str | None = None
    dial_cause: int | None = None
    hangup_cause: int | None = None
    outcome: asyncio.Event = field(default_factory=asyncio.Event)  # the dialplan's result came
    resolved: asyncio.Event = field(default_factory=asyncio.Event)  # joined the room or failed
    finished: bool = False


class Pacer:
    """Spaces out actions to at most ``rate`` per second, fairly between queues: every key (an
    account) has its own first-come queue and the keys with someone waiting take turns, one
    slot each. A newcomer joins the end of the current round, so one account's long blast
    delays another account's first action by at most one slot per other waiting account."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._queues: dict[Hashable, deque[asyncio.Future[None]]] = {}
        self._turns: deque[Hashable] = deque()  # keys with a waiter, in the order they get a slot
        self._runner: asyncio.Task[None] | None = None
        # ("wait", key) when someone asks, ("slot", key) when a slot is given: the order tells
        # how long each account waited, in slots (observability and tests)
        self.history: deque[tuple[str, Hashable]] = deque(maxlen=10000)

    def waiting(self, key: Hashable | None = None) -> int:
        """How many wait for a slot (of one key, or in all)."""
        if key is not None:
            return len(self._queues.get(key, ()))
        return sum(len(queue) for queue in self._queues.values())

    async def wait(self, key: Hashable = None) -> None:
        """Return when it is the caller's slot (``key`` names the caller's queue)."""
        if self.interval <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._turns.append(key)
        queue.append(waiter)
        self.history.append(("wait", key))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._hand_out(), name="pacer")
        await waiter

    async def close(self) -> None:
        """Stop handing out slots (the engine stops): every waiter is cancelled."""
        for queue in self._queues.values():
            for waiter in queue:
                waiter.cancel()
        self._queues.clear()
        self._turns.clear()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def _hand_out(self) -> None:
        """Give the slots out, one key per slot in turn, until no one waits."""
        loop = asyncio.get_running_loop()
        while self._turns:
            now = loop.time()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                continue
            key = self._turns.popleft()
            queue = self._queues[key]
            waiter = queue.popleft()
            if queue:
                self._turns.append(key)
            else:
                del self._queues[key]
            if waiter.done():
                continue  # its caller gave up waiting: the slot goes to the next one
            waiter.set_result(None)
            self.history.append(("slot", key))
            self._next = max(now, self._next) + self.interval


class CallService:
    """Dial-out (invite state machine) and the participant tracker for every node."""

    def __init__(self, settings: Settings, repo: ConferenceRepository, slots: CallSlotRepository, *,
                 nodes: Mapping[str, AmiAdapter], bus: Bus, plans: NumberPlans, guard: LimitGuard,
                 prompts: PromptService) -> None:
        self.settings = settings
        self.prompts = prompts
        self.repo = repo
        self.slots = slots
        self.nodes = nodes
        self.bus = bus
        self.plans = plans
        self.guard = guard
        self.pacer = Pacer(self.settings.calls_per_second)
        self.attempts: dict[str, DialAttempt] = {}
        self.originates = 0  # Originate actions sent for participants (observability and tests)
        self.originated: deque[tuple[int | None, int]] = deque(maxlen=10000)  # (owner, participant), in order
        self.max_concurrent_calls = self.settings.max_concurrent_calls  # system-wide cap
        self._known: dict[str, int] = {}  # call_id -> participant id of calls seen in a room
        self._conference_info: dict[int, tuple[int | None, str]] = {}  # id -> (owner_id, room)
        self._tasks: set[asyncio.Task] = set()
        self._rejoining: dict[str, asyncio.Future] = {}  # call_id -> its re-entry (role change)

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        """Subscribe the tracker to every node's AMI events."""
        for adapter in self.nodes.values():
            adapter.subscribe(self.on_event, TRACKED_EVENTS)

    async def stop(self) -> None:
        for adapter in self.nodes.values():
            adapter.unsubscribe(self.on_event)
        for task in list(self._tasks):
            task.cancel()
        await self.pacer.close()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def node(self, node_id: str | None) -> AmiAdapter:
        return self.nodes.get(node_id or self.settings.node_id) or self.nodes[self.settings.node_id]

    # ----------------------------------------------------------------- dial-out

    async def dial(self, conference: Conference, participants: Iterable[Participant], *,
                   actor: str = "engine", strict_rate: bool = True) -> list[int]:
        """Dial the given participants into the conference's room, paced by ``calls_per_second``
        (accounts take turns at the pacer); returns the ids queued. Participants already in a call
        are skipped. Each dial-out takes a slot within the account's dial-outs per minute and
        concurrent outbound calls and the system's concurrent outbound calls, atomically in
        PostgreSQL (engine/adapters/db/call_slots.py). ``strict_rate`` raises RateLimited when
        not all fit (nothing dialled); otherwise the excess participants fail with reason 'error'
        and the limit named in the event log."""
        number_plan = await self.plans.for_account(conference.owner_id)
        wanted = []
        for participant in participants:
            if participant.state not in DIALABLE_STATES or participant.origin != "dialout":
                continue
            if not number_plan.is_allowed(participant.number):  # the plan changed after planning
                await self.mark_failed(participant, conference.owner_id, FailureReason.INVALID_NUMBER, None,
                                       detail={"why": "outside the number plan"}, only_states=DIALABLE_STATES)
                continue
            wanted.append(participant)
        if not wanted:
            return []
        limits = await self.repo.account_limits(conference.owner_id)
        if limits is not None and limits["blocked"]:
            raise Forbidden("the account is blocked")
        requests = [SlotRequest(p.id, f"{DIALOUT_PREFIX}{secrets.token_hex(8)}", p.attempts + 1,
                                conference.node_id, p.number) for p in wanted]
        grant = await self.slots.claim(conference.owner_id, conference.id, requests,
                                       system_cap=self.max_concurrent_calls, from_states=DIALABLE_STATES,
                                       actor=actor, all_or_nothing=strict_rate)
        if grant.bound_by is not None:
            detail = f"{len(wanted)} wanted, {grant.room} left"
            if grant.bound_by != "system_concurrent_calls":
                self.guard.hit(conference.owner_id, grant.bound_by, detail)
            log.info("conference %s: dial-outs limited by %s (%s)", conference.id, grant.bound_by, detail)
            if strict_rate:
                raise self._limit_refusal(grant)
        self._conference_info[conference.id] = (conference.owner_id, conference.room)
        claimed = {p.id: p for p in grant.claimed}
        queued = []
        for participant, request in zip(wanted, requests, strict=True):
            updated = claimed.get(participant.id)
            if updated is None:
                if grant.bound_by is not None:
                    await self.mark_failed(participant, conference.owner_id, FailureReason.ERROR, None,
                                           detail={"why": LIMIT_WHY[grant.bound_by]}, only_states=DIALABLE_STATES)
                continue
            attempt = DialAttempt(request.call_id, participant.id, conference.id, conference.owner_id,
                                  conference.node_id)
            self.attempts[request.call_id] = attempt
            await self._publish("participant.state", conference.id, conference.owner_id, participant.id,
                                state="calling", reason=None, cause=None)
            self._spawn(self._originate(conference, updated, attempt, number_plan), f"dial-{participant.id}")
            queued.append(participant.id)
        return queued

    @staticmethod
    def _limit_refusal(grant: SlotGrant) -> RateLimited:
        """The refusal a customer reads when a dial-out limit left no room."""
        allowed = grant.limits.get(grant.bound_by or "", 0)
        if grant.bound_by == "max_dialouts_per_minute":
            return RateLimited("at most %(allowed)d dial-outs per minute; %(room)d left now",
                               allowed=allowed, room=grant.room)
        if grant.bound_by == "max_concurrent_calls":
            return RateLimited("your account allows at most %(allowed)d outbound calls at the same time; "
                               "%(room)d free now", allowed=allowed, room=grant.room)
        return RateLimited("the system has no free outbound line now; try again when a call ends")

    async def _originate(self, conference: Conference, participant: Participant, attempt: DialAttempt,
                         number_plan: NumberPlan) -> None:
        await self.pacer.wait(conference.owner_id)
        if self.attempts.get(attempt.call_id) is not attempt:
            return  # cancelled while waiting for its slot (conference ended, participant kicked)
        if not self.slots.fence.holds():  # the leader lease lapsed since the claim: the other engine dials
            self.attempts.pop(attempt.call_id, None)
            return
        try:
            number = number_plan.validate(participant.number, "number")  # checked again right before use
            variables = {"VECHE_ROOM": conference.room, "VECHE_PROFILE": INVITED_PROFILES[participant.role],
                         "VECHE_CALL": attempt.call_id, "VECHE_LANG": conference.language,
                         "VECHE_MAX_MEMBERS": str(conference.max_participants + ROOM_EXTRA_MEMBERS)}
            self.originates += 1
            self.originated.append((conference.owner_id, participant.id))
            await self.node(conference.node_id).originate(
                channel_id=attempt.call_id, other_channel_id=f"{attempt.call_id}-2",
                channel=f"Local/{number}@veche-dialout/n", context="veche-room", exten="join",
                variables=variables, timeout_ms=(self.settings.ring_timeout + 5) * 1000,
                caller_id=self.settings.access_number)
            self._spawn(self._watchdog(attempt), f"watchdog-{attempt.call_id}")
        except (AmiError, ValidationError) as exc:
            log.warning("dial-out of participant %s failed: %s", participant.id, exc)
            self.attempts.pop(attempt.call_id, None)
            reason = FailureReason.INVALID_NUMBER if isinstance(exc, ValidationError) else FailureReason.ERROR
            await self.mark_failed(participant, attempt.owner_id, reason, None, detail={"error": str(exc)},
                                   only_states=IN_CALL_STATES)

    async def _watchdog(self, attempt: DialAttempt) -> None:
        """An attempt whose outcome never arrived (events lost with the AMI link) must not stay
        'calling' forever: once its time is well over and its channel is gone, it failed."""
        limit = self.settings.ring_timeout + WATCHDOG_EXTRA_SECONDS
        while self.attempts.get(attempt.call_id) is attempt:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(attempt.resolved.wait(), limit)
            if self.attempts.get(attempt.call_id) is not attempt or attempt.resolved.is_set():
                return
            try:
                await self.node(attempt.node_id).getvar(attempt.call_id, "UNIQUEID")
                continue  # the channel still exists (answered, in the room or on its way)
            except AmiError:
                pass  # no such channel: the call is over and we missed how
            log.warning("dial-out %s: no outcome seen, channel gone; marking it failed", attempt.call_id)
            await self._finish_attempt(attempt, wait_for_detail=False)
            return

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
        await self._publish("participant.state", participant.conference_id, owner_id, participant.id,
                            state="failed", reason=str(reason), cause=cause)
        return updated

    async def _finish_attempt(self, attempt: DialAttempt, wait_for_detail: bool) -> None:
        """The Originate failed: record why, once, after the dialplan's result had a chance to come."""
        if attempt.finished:
            return
        if wait_for_detail and attempt.dial_status is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(attempt.outcome.wait(), OUTCOME_GRACE_SECONDS)
        if attempt.finished:
            return
        attempt.finished = True
        attempt.resolved.set()
        self.attempts.pop(attempt.call_id, None)
        reason, cause = failure_from(attempt.dial_status, attempt.dial_cause, attempt.originate_reason,
                                     attempt.hangup_cause)
        participant = await self.repo.get_participant(attempt.participant_id)
        if participant is None or participant.call_id != attempt.call_id:
            return
        failed = await self.mark_failed(participant, attempt.owner_id, reason, cause,
                                  detail={"dial_status": attempt.dial_status,
                                          "originate_reason": attempt.originate_reason})
        if failed is not None:
            await self._maybe_retry(failed, reason)

    async def _maybe_retry(self, participant: Participant, reason: FailureReason) -> None:
        if not should_retry(reason, participant.attempts, self.settings.retry_busy, self.settings.retry_no_answer):
            return

        async def later() -> None:
            await asyncio.sleep(self.settings.retry_delay_seconds)
            conference = await self.repo.get(participant.conference_id, with_participants=False)
            current = await self.repo.get_participant(participant.id)
            if conference is None or current is None or conference.state != "running":
                return
            if current.state == ParticipantState.FAILED and current.call_id == participant.call_id:
                await self.dial(conference, [current], actor="engine:retry", strict_rate=False)

        self._spawn(later(), f"retry-{participant.id}")

    def forget_attempt(self, call_id: str | None) -> None:
        """Stop following a dial-out (its conference ended or it was cancelled): no outcome,
        no retry, and an Originate still waiting for its slot is not sent."""
        attempt = self.attempts.pop(call_id or "", None)
        if attempt is not None:
            attempt.finished = True
            attempt.resolved.set()

    async def hangup(self, participant: Participant) -> None:
        """Hang up the participant's call, wherever it is (dialling or in the room)."""
        if not participant.call_id:
            return
        adapter = self.node(participant.node_id)
        # a dial-in token names no channel yet: that call's channel was never reported by AMI
        targets = [t for t in (participant.channel, participant.call_id) if t and is_channel(t)
                   and not is_dialin_token(t)]
        for target in targets:
            try:
                await adapter.hangup(target)
                return
            except AmiError as exc:
                log.debug("hangup %s: %s", target, exc)

    async def rejoin(self, participant: Participant, role: Role, muted: bool = False) -> None:
        """Move a connected participant's channel back into its room with the user profile of
        ``role`` (admin and marked for a chair). The call stays up; the room's leave and join
        of this move are not the participant leaving. A muted participant stays muted."""
        call_id = participant.call_id or ""
        if call_id in self._rejoining:
            raise AmiError("the participant's role is being changed; try again in a moment")
        adapter = self.node(participant.node_id)
        entered = asyncio.get_running_loop().create_future()
        self._rejoining[call_id] = entered
        try:
            await adapter.confbridge_rejoin(participant.channel or "", self._profile(participant, role))
            try:
                await asyncio.wait_for(entered, REJOIN_TIMEOUT)
            except TimeoutError:
                raise AmiError("the participant did not re-enter the room") from None
            if muted:
                await adapter.confbridge_mute(str(entered.result()), participant.channel or "", True)
        finally:
            self._rejoining.pop(call_id, None)

    @staticmethod
    def _profile(participant: Participant, role: Role) -> str:
        """The ConfBridge user profile a participant enters with in ``role``."""
        return (INVITED_PROFILES if participant.origin == Origin.DIALOUT else PROFILES)[role]

    async def set_profile(self, participant: Participant, role: Role) -> None:
        """A call still being set up enters the room with the user profile of ``role``."""
        if not participant.call_id:
            return
        try:
            await self.node(participant.node_id).setvar(participant.call_id, "VECHE_PROFILE",
                                                        self._profile(participant, role))
        except AmiError as exc:  # the call ended meanwhile: the stored role is used next time
            log.info("participant %s: profile not set on the call: %s", participant.id, exc)

    async def announce(self, conference: Conference, prompt: str | Announcement, *, wait: bool = False) -> str:
        """Play one of the engine's fixed prompts, or an announcement composed of them, into the
        room through a quiet announcer channel speaking the conference's language; returns the
        announcer's channel id. ``wait``: return only once the announcer has hung up (played
        to the end), or after ANNOUNCE_TIMEOUT_SECONDS."""
        if isinstance(prompt, Announcement):
            spoken = prompt
        else:
            spoken = Announcement(conference.language, (PROMPTS[prompt],))  # KeyError outside the list
        prompts = self.prompts  # the operator's replacements, played from the prompts directory
        lang = spoken.language
        spoken = replace(spoken, sounds=tuple(prompts.sound(lang, name) for name in spoken.sounds),
                         unit=spoken.unit and prompts.sound(lang, spoken.unit),
                         number_sound=spoken.number_sound and prompts.sound(lang, spoken.number_sound))
        call_id = f"{ANNOUNCER_PREFIX}{secrets.token_hex(8)}"
        adapter = self.node(conference.node_id)
        finished = asyncio.get_running_loop().create_future()

        def on_hangup(event: AmiEvent) -> None:
            if event.get("Uniqueid") in (call_id, f"{call_id}-2") and not finished.done():
                finished.set_result(event)

        if wait:
            adapter.subscribe(on_hangup, ("Hangup",))
        try:
            await adapter.originate(
                channel_id=call_id, other_channel_id=f"{call_id}-2", channel="Local/play@veche-announce/n",
                context="veche-room", exten="join",
                variables={"VECHE_ROOM": conference.room, "VECHE_PROFILE": "veche_announcer",
                           "VECHE_LANG": spoken.language, "VECHE_SOUND": spoken.sounds[0],
                           "VECHE_SOUND2": spoken.sounds[1] if len(spoken.sounds) > 1 else "",
                           "VECHE_NUMBER": "" if spoken.number is None else str(spoken.number),
                           "VECHE_UNIT": spoken.unit or "", "VECHE_CALL": call_id,
                           "VECHE_NUMBER_SOUND": spoken.number_sound or "",
                           "VECHE_MAX_MEMBERS": str(conference.max_participants + ROOM_EXTRA_MEMBERS)},
                timeout_ms=10000)
            if wait:
                try:
                    await asyncio.wait_for(finished, ANNOUNCE_TIMEOUT_SECONDS)
                except TimeoutError:
                    log.warning("conference %s: announcer %s did not finish within %.0f s", conference.id,
                                call_id, ANNOUNCE_TIMEOUT_SECONDS)
        finally:
            if wait:
                adapter.unsubscribe(on_hangup)
        return call_id

    # ----------------------------------------------------------------- tracker

    async def on_event(self, event: AmiEvent) -> None:
        """Route one AMI event to the handler of its kind."""
        handler = getattr(self, f"_on_{event.name}", None)
        if handler is not None:
            await handler(event)

    async def _attempt_for(self, call_id: str, node_id: str) -> DialAttempt | None:
        """The attempt in flight for ``call_id``; after an engine restart, a dial-out the previous
        engine started (still calling in the database) is adopted so its outcome is not lost."""
        attempt = self.attempts.get(call_id)
        if attempt is not None:
            return attempt if attempt.node_id == node_id else None
        if not call_id.startswith(DIALOUT_PREFIX) or call_id.endswith("-2"):
            return None
        participant = await self._participant(call_id, node_id)
        if participant is None or participant.state not in IN_CALL_STATES:
            return None
        owner_id, _ = await self._info(participant.conference_id)
        attempt = DialAttempt(call_id, participant.id, participant.conference_id, owner_id, node_id)
        self.attempts[call_id] = attempt
        self._spawn(self._watchdog(attempt), f"watchdog-{call_id}")
        log.info("adopted dial-out %s of participant %s (started by a previous engine)", call_id, participant.id)
        return attempt

    async def _on_OriginateResponse(self, event: AmiEvent) -> None:  # noqa: N802
        attempt = await self._attempt_for(event.get("Uniqueid"), event.node_id)
        if attempt is None:
            return
        attempt.originate_reason = event.get("Reason")
        if event.get("Response") == "Success":
            attempt.answered = True
            return
        self._spawn(self._finish_attempt(attempt, wait_for_detail=True), f"outcome-{attempt.call_id}")

    async def _on_UserEvent(self, event: AmiEvent) -> None:  # noqa: N802
        if event.get("UserEvent") != "VecheDialResult":
            return
        attempt = await self._attempt_for(event.get("Call"), event.node_id)
        if attempt is None:
            return
        attempt.dial_status = event.get("DialStatus") or None
        with contextlib.suppress(ValueError):
            attempt.dial_cause = int(event.get("Cause") or 0) or None
        attempt.outcome.set()

    async def _on_DialBegin(self, event: AmiEvent) -> None:  # noqa: N802
        uid = event.get("Uniqueid")
        attempt = self.attempts.get(uid[:-2]) if uid.endswith("-2") else None
        if attempt is None or attempt.node_id != event.node_id:
            return
        updated = await self.repo.update_participant(
            attempt.participant_id, only_states=(ParticipantState.CALLING,), state=ParticipantState.RINGING)
        if updated is not None:
            await self._publish("participant.state", attempt.conference_id, attempt.owner_id,
                                attempt.participant_id, state="ringing", reason=None, cause=None)

    async def _on_Hangup(self, event: AmiEvent) -> None:  # noqa: N802
        uid = event.get("Uniqueid")
        cause = None
        with contextlib.suppress(ValueError):
            cause = int(event.get("Cause") or 0) or None
        if uid.endswith("-2") and uid[:-2] in self.attempts:
            attempt = self.attempts[uid[:-2]]
            attempt.hangup_cause = attempt.hangup_cause or cause
            return
        attempt = self.attempts.get(uid)
        if attempt is not None:
            attempt.hangup_cause = attempt.hangup_cause or cause
            if attempt.answered:  # answered but never reached the room
                self._spawn(self._finish_attempt(attempt, wait_for_detail=False), f"outcome-{uid}")
            return
        if uid not in self._known and event.get("Context") != "veche-dialin" \
                and not is_dialin_token(event.channel_variable(PARTICIPANT_VARIABLE)):
            return
        participant = await self._participant_of(event)
        self._known.pop(uid, None)
        if participant is None:
            return
        if participant.state == ParticipantState.CONNECTED:
            await self.mark_left(participant, cause)
        elif participant.state == ParticipantState.LEFT and cause and participant.hangup_cause is None:
            await self.repo.update_participant(participant.id, hangup_cause=cause)
        elif participant.state in IN_CALL_STATES:
            # a caller who hung up before reaching the room
            updated = await self.repo.update_participant(
                participant.id, only_states=IN_CALL_STATES, state=ParticipantState.LEFT,
                left_at=now_utc(), hangup_cause=cause)
            if updated is not None:
                owner_id, _ = await self._info(participant.conference_id)
                await self._publish("participant.state", participant.conference_id, owner_id, participant.id,
                                    state="left", reason=None, cause=cause)

    async def _on_ConfbridgeStart(self, event: AmiEvent) -> None:  # noqa: N802
        """A room was created: if its conference was locked before anyone joined, lock it now."""
        conference = await self.repo.get_by_room(event.get("Conference"))
        if conference is None or conference.node_id != event.node_id or not conference.locked:
            return
        try:
            await self.node(event.node_id).confbridge_lock(conference.room, True)
        except AmiError as exc:
            log.warning("conference %s: could not lock the new room: %s", conference.id, exc)

    async def _on_ConfbridgeJoin(self, event: AmiEvent) -> None:  # noqa: N802
        uid = event.get("Uniqueid")
        if uid.startswith(ANNOUNCER_PREFIX):
            return
        entered = self._rejoining.get(uid)
        if entered is not None:
            if not entered.done():
                entered.set_result(event.get("Conference"))
            return
        attempt = self.attempts.pop(uid, None)
        if attempt is not None:
            attempt.finished = True
            attempt.resolved.set()
        participant = await self._participant_of(event)
        if participant is None:
            return
        muted = event.get("Muted").lower() == "yes"
        channel = event.get("Channel")
        updated = await self.repo.update_participant(
            participant.id, state=ParticipantState.CONNECTED, joined_at=now_utc(), left_at=None,
            channel=channel if is_channel(channel) else participant.channel, failure_reason=None, muted=muted)
        if updated is None:
            return
        self._known[uid] = participant.id
        await self.repo.log_event(participant.conference_id, "participant.joined", participant_id=participant.id,
                                  detail={"number": participant.number, "origin": str(participant.origin),
                                          "role": str(participant.role)})
        owner_id, _ = await self._info(participant.conference_id)
        await self._publish("participant.state", participant.conference_id, owner_id, participant.id,
                            state="connected", reason=None, cause=None)

    async def _on_ConfbridgeLeave(self, event: AmiEvent) -> None:  # noqa: N802
        uid = event.get("Uniqueid")
        if uid.startswith(ANNOUNCER_PREFIX) or uid in self._rejoining:
            return
        participant = await self._participant_of(event)
        if participant is not None and participant.state == ParticipantState.CONNECTED:
            await self.mark_left(participant, None)

    async def mark_left(self, participant: Participant, cause: int | None) -> None:
        """A connected participant left the room: record, log and publish it (once)."""
        updated = await self.repo.mark_left(participant.id, now_utc())
        if updated is None:
            return
        if cause is not None:
            await self.repo.update_participant(participant.id, hangup_cause=cause)
        await self.repo.log_event(participant.conference_id, "participant.left", participant_id=participant.id,
                                  detail={"connected_seconds": updated.connected_seconds, "cause": cause})
        owner_id, _ = await self._info(participant.conference_id)
        await self._publish("participant.state", participant.conference_id, owner_id, participant.id,
                            state="left", reason=None, cause=cause)

    async def _on_mute_change(self, event: AmiEvent, muted: bool) -> None:
        uid = event.get("Uniqueid")
        if uid.startswith(ANNOUNCER_PREFIX):
            return
        participant = await self._participant_of(event)
        if participant is None or participant.muted == muted:
            return
        await self.repo.update_participant(participant.id, muted=muted)
        owner_id, _ = await self._info(participant.conference_id)
        await self._publish("participant.muted" if muted else "participant.unmuted", participant.conference_id,
                            owner_id, participant.id)

    async def _on_ConfbridgeMute(self, event: AmiEvent) -> None:  # noqa: N802
        await self._on_mute_change(event, True)

    async def _on_ConfbridgeUnmute(self, event: AmiEvent) -> None:  # noqa: N802
        await self._on_mute_change(event, False)

    async def _on_ConfbridgeTalking(self, event: AmiEvent) -> None:  # noqa: N802
        uid = event.get("Uniqueid")
        if uid.startswith(ANNOUNCER_PREFIX):
            return
        participant = await self._participant_of(event)
        if participant is None:
            return
        talking = event.get("TalkingStatus").lower() == "on"
        if participant.talking != talking:
            await self.repo.update_participant(participant.id, talking=talking)
        owner_id, _ = await self._info(participant.conference_id)
        await self._publish("participant.talking", participant.conference_id, owner_id, participant.id,
                            talking=talking)

    async def _participant_of(self, event: AmiEvent) -> Participant | None:
        """The participant an event is about: by the channel's Uniqueid, or, for a dial-in
        caller whose channel AMI has not reported yet, by the token the IVR put on the channel;
        then the channel's Uniqueid and name from this event are stored as the call's identity."""
        uid = event.get("Uniqueid")
        participant = await self._participant(uid, event.node_id)
        if participant is not None:
            return participant
        token = event.channel_variable(PARTICIPANT_VARIABLE)
        if not is_dialin_token(token) or not is_channel(uid):
            return None
        participant = await self._participant(token or "", event.node_id)
        if participant is None or participant.origin != "dialin":
            return None
        channel = event.get("Channel")
        learned = await self.repo.update_participant(
            participant.id, call_id=uid, channel=channel if is_channel(channel) else None,
            node_id=event.node_id)
        if learned is not None:
            log.info("dial-in participant %s is channel %s (%s)", participant.id, channel, uid)
        return learned

    async def _participant(self, call_id: str, node_id: str) -> Participant | None:
        if not call_id:
            return None
        participant = await self.repo.participant_by_call_id(call_id)
        if participant is None or (participant.node_id and participant.node_id != node_id):
            return None
        return participant

    async def _info(self, conference_id: int) -> tuple[int | None, str]:
        info = self._conference_info.get(conference_id)
        if info is None:
            conference = await self.repo.get(conference_id, with_participants=False)
            info = (conference.owner_id, conference.room) if conference else (None, "")
            self._conference_info[conference_id] = info
        return info

    async def _publish(self, kind: str, conference_id: int, owner_id: int | None,
                       participant_id: int | None = None, **data: Any) -> None:
        await self.bus.publish(DomainEvent(kind=kind, conference_id=conference_id, owner_id=owner_id,
                                           participant_id=participant_id, data=data))

