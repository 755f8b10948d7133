"""Dial-out: the invite state machine. Claims call slots within the limits, paces the dials
fairly between accounts, asks the media node to dial each participant (number plan checked again
right before), follows each attempt's outcome (answered, or failed with a reason and cause),
retries busy and unanswered calls, and fails an attempt whose outcome was lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.adapters.asterisk import (
    CallHungUp,
    CallPlaced,
    DialOutcome,
    MediaNodes,
    NodeEvent,
    ParticipantJoined,
    PreparedDial,
    Ringing,
)
from engine.adapters.asterisk.contract import ROOM_EXTRA_MEMBERS, failure_from, is_dialout_id, new_dialout_id
from engine.adapters.db.conferences import CallSlotRepository, ConferenceRepository, LogEntry, SlotGrant, SlotRequest
from engine.config import Settings
from engine.domain.dialout import LIMIT_WHY, limit_refusal, should_retry
from engine.domain.errors import AmiError, Forbidden, ValidationError
from engine.domain.model import Conference, FailureReason, Participant, ParticipantState, Role
from engine.domain.numberplan import NumberPlan
from engine.domain.planning import AccountRules
from engine.services.batches import Coalescer
from engine.services.housekeeping import Housekeeper
from engine.services.limit_guard import LimitGuard
from engine.services.numberplans import NumberPlans
from engine.services.pacer import Pacer
from engine.services.participant_states import IN_CALL_STATES, ParticipantStates

log = logging.getLogger(__name__)

DIALABLE_STATES = (ParticipantState.PLANNED, ParticipantState.FAILED, ParticipantState.LEFT)
OUTCOME_GRACE_SECONDS = 2.0
WATCHDOG_EXTRA_SECONDS = 20.0
# How long a ringing state waits for the rest of its burst before it is stored: ringing is news
# for the console only (a phone rings for seconds), and a callee who answers within it is stored
# connected without it.
RING_LINGER_SECONDS = 0.1
JOINED_CALLS_KEPT = 10_000  # dial-outs remembered in their rooms, awaiting their hang-ups
LAUNCHED_STARTS_KEPT = 100  # starts whose placed calls wait for dial_claimed (one each, for a moment)
COUNTS_PURGE_SECONDS = 60.0  # the per-minute limit's old dial-out counts are deleted this often


@dataclass
class DialAttempt:
    """One dial in flight, until its outcome is known."""

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
    finished: bool = False  # joined the room, failed or forgotten
    participant: Participant | None = None  # as the claim stored it (who the call is for)


class DialOutService:
    """Dials participants into their conference's room on its media node and follows each dial."""

    def __init__(self, settings: Settings, repo: ConferenceRepository, slots: CallSlotRepository, *,
                 nodes: MediaNodes, states: ParticipantStates, plans: NumberPlans, guard: LimitGuard) -> None:
        self.settings = settings
        self.repo = repo
        self.slots = slots
        self.nodes = nodes
        self.states = states
        self.plans = plans
        self.guard = guard
        self.pacer = Pacer(self.settings.calls_per_second)
        self.attempts: dict[str, DialAttempt] = {}
        # dial-outs that reached their rooms, until their calls end: their late events (an
        # OriginateResponse after the join, the dial's result at the end of the call) are about
        # no attempt, and knowing that takes no look-up
        self._joined_calls: set[str] = set()
        self.originates = 0  # dials sent for participants (observability and tests)
        self.originated: deque[tuple[int | None, int]] = deque(maxlen=10000)  # (owner, participant), in order
        self.max_concurrent_calls = self.settings.max_concurrent_calls  # system-wide cap
        self._tasks: set[asyncio.Task] = set()
        self._watches: dict[str, asyncio.TimerHandle] = {}  # call id -> its watchdog's timer (_watch)
        # conference id -> the calls claim_new placed, until dial_claimed tells of them
        self._launched: dict[int, list[tuple[Participant, DialAttempt]]] = {}
        # Calls that start ringing together (a dial-out's burst) are stored ringing in one
        # statement, after RING_LINGER_SECONDS; a call that joins meanwhile is not stored ringing
        # at all (connected supersedes it).
        self._ring_writes: Coalescer[int, None, bool] = Coalescer(self._write_ringing, missing=False,
                                                                   linger=RING_LINGER_SECONDS)
        self._housekeeper = Housekeeper("dialout-counts-purge", COUNTS_PURGE_SECONDS, self.purge_counts)

    async def purge_counts(self) -> int:
        """Delete the dial-out counts the per-minute limit no longer reads; the number deleted."""
        return await self.slots.purge_counts()

    async def start(self) -> None:
        """Purge the old dial-out counts now and every COUNTS_PURGE_SECONDS."""
        await self._housekeeper.start()

    async def stop(self) -> None:
        await self._housekeeper.stop()
        for handle in self._watches.values():
            handle.cancel()
        self._watches.clear()
        for task in list(self._tasks):
            task.cancel()
        await self._ring_writes.close()
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

    async def dial(self, conference: Conference, participants: Iterable[Participant], *,
                   actor: str = "engine", strict_rate: bool = True) -> list[int]:
        """Dial the given participants into the conference's room, paced by ``calls_per_second``
        (accounts take turns at the pacer); returns the ids queued. Participants already in a call
        are skipped. Each dial-out takes a slot within the account's dial-outs per minute and
        concurrent outbound calls and the system's concurrent outbound calls, atomically in
        PostgreSQL (engine/adapters/db/conferences.py). ``strict_rate`` raises RateLimited when
        not all fit (nothing dialled); otherwise the excess participants fail with reason 'error'
        and the limit named in the event log."""
        limits = await self.repo.account_limits(conference.owner_id)
        number_plan = self.plans.of_account(limits)
        wanted = []
        for participant in participants:
            if participant.state not in DIALABLE_STATES or participant.origin != "dialout":
                continue
            if not number_plan.is_allowed(participant.number):  # the plan changed after planning
                await self.states.mark_failed(participant, conference.owner_id, FailureReason.INVALID_NUMBER, None,
                                              detail={"why": "outside the number plan"}, only_states=DIALABLE_STATES)
                continue
            wanted.append(participant)
        if not wanted:
            return []
        if limits is not None and limits["blocked"]:
            raise Forbidden("the account is blocked")
        requests = [SlotRequest(p.id, new_dialout_id(), p.attempts + 1, conference.node_id, p.number)
                    for p in wanted]
        grant = await self.slots.claim(conference.owner_id, conference.id, requests,
                                       system_cap=self.max_concurrent_calls, from_states=DIALABLE_STATES,
                                       actor=actor, all_or_nothing=strict_rate)
        return await self._dispatch(conference, wanted, grant, number_plan, strict_rate=strict_rate)

    async def claim_new(self, fields: dict[str, Any], participants: list[dict[str, Any]], events: list[LogEntry], *,
                        rules: AccountRules, actor: str = "engine") -> tuple[Conference, SlotGrant]:
        """Store an immediate conference, running, and claim a slot for each of its participants
        within the limits, in one transaction (CallSlotRepository.open_and_claim): every call it
        will make is durable before the first is sent. Unpaced, the dials are prepared while
        PostgreSQL runs the statement and leave the moment it returns, before the start's
        bookkeeping; ``dial_claimed`` then tells of them and fails what the limits left out.
        Raises as ConferenceRepository.insert_conference does; Forbidden for a blocked account;
        StaleRules when ``rules`` changed since they were read."""
        if rules.blocked:
            raise Forbidden("the account is blocked")
        call_ids = [new_dialout_id() for _ in participants]
        claim = asyncio.ensure_future(self.slots.open_and_claim(
            fields, participants, events, call_ids=call_ids, system_cap=self.max_concurrent_calls, actor=actor,
            rules_stamp=rules.stamp))
        try:
            await asyncio.sleep(0)  # the claim's statement leaves in this turn
            try:
                prepared = self._prepare(fields, participants, call_ids, rules.number_plan)
            except Exception:  # noqa: BLE001 - the claim goes on; its dials go the usual way
                log.exception("dial-out: the dials of a start could not be prepared")
                prepared = {}
            conference, grant = await claim
        except BaseException:
            claim.cancel()
            raise
        if len(self._launched) >= LAUNCHED_STARTS_KEPT:  # starts that never reached dial_claimed
            self._launched.clear()
        self._launched[conference.id] = self._launch(conference, grant, rules.number_plan, prepared)
        return conference, grant

    def _prepare(self, fields: dict[str, Any], participants: list[dict[str, Any]], call_ids: list[str],
                 number_plan: NumberPlan) -> dict[str, PreparedDial]:
        """The dials of a start, by call id, checked and written out while its claim is being
        stored, when dials are unpaced. Their numbers pass the number plan of the account rules
        the claim finds current (or it stores nothing), and the claim also finds the leader lease
        held; a dial that cannot be prepared goes the usual way, which records why it failed."""
        if self.pacer.interval > 0 or not call_ids:
            return {}
        node = self.nodes.node(fields["node_id"])
        prepared: dict[str, PreparedDial] = {}
        for call_id, participant in zip(call_ids, participants, strict=True):
            try:
                prepared[call_id] = node.prepare_dial(
                    call_id, number_plan.validate(participant["number"], "number"),
                    role=Role(participant.get("role", Role.GUEST)),
                    **self._dial_options(fields["room"], fields["language"], fields["max_participants"]))
            except (AmiError, ValidationError, KeyError, ValueError):
                continue
        return prepared

    def calls_in_flight(self) -> int:
        """How many dial-outs are still being placed (neither in their rooms nor ended)."""
        return len(self.attempts)

    async def settled(self, conference_id: int, quiet: float, longest: float) -> None:
        """Wait while the conference's dial-outs in flight progress, looking every ``quiet``
        seconds: until all have joined their room or failed, or none did in the last period
        (callees left ringing), or ``longest`` seconds passed."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + longest
        in_flight = self._in_flight(conference_id)
        while in_flight and loop.time() < give_up:
            await asyncio.sleep(min(quiet, give_up - loop.time()))
            before, in_flight = in_flight, self._in_flight(conference_id)
            if in_flight >= before:
                return

    def _in_flight(self, conference_id: int) -> int:
        return sum(1 for a in self.attempts.values() if a.conference_id == conference_id)

    async def dial_claimed(self, conference: Conference, grant: SlotGrant, rules: AccountRules) -> list[int]:
        """Dial what ``claim_new`` claimed (the rest fail with the limit named); returns the ids."""
        wanted = [p for p in conference.participants if p.origin == "dialout"]
        return await self._dispatch(conference, wanted, grant, rules.number_plan, strict_rate=False)

    async def _dispatch(self, conference: Conference, wanted: list[Participant], grant: SlotGrant,
                        number_plan: NumberPlan, *, strict_rate: bool) -> list[int]:
        """After a claim: each claimed call is placed and followed (unless claim_new did so
        already), the console hears of each ('calling') once the unpaced Originates are on their
        way, then the bus's asynchronous listeners run while Asterisk places the calls; the
        participants the limits left out fail (or, ``strict_rate``, the whole request is refused)."""
        if grant.bound_by is not None:
            detail = f"{len(wanted)} wanted, {grant.room} left"
            if grant.bound_by != "system_concurrent_calls":
                self.guard.hit(conference.owner_id, grant.bound_by, detail)
            log.info("conference %s: dial-outs limited by %s (%s)", conference.id, grant.bound_by, detail)
            if strict_rate:
                raise limit_refusal(grant.bound_by, grant.limits.get(grant.bound_by, 0), grant.room)
        dials = self._launched.pop(conference.id, None)
        if dials is None:
            dials = self._launch(conference, grant, number_plan, {})
        # Two turns of the loop before the console hears of any call: prepared dials left in
        # _launch, any other takes its first step in the first turn, and the link writes what
        # one turn handed it at the start of the next (one write for the whole burst), so after
        # the second the Originates are with Asterisk, and telling 100 'calling' states
        # (3-5 ms) no longer holds them back. Nothing a dial does can be told before its
        # 'calling': an outcome comes from Asterisk or the database, later still.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        listeners = [self.states.deliver("participant.state", conference.id, conference.owner_id, updated.id,
                                         state="calling", reason=None, cause=None) for updated, _ in dials]
        for listening in listeners:
            await listening
        if grant.bound_by is not None:
            claimed = {p.id for p in grant.claimed}
            for participant in wanted:
                if participant.id not in claimed:
                    await self.states.mark_failed(participant, conference.owner_id, FailureReason.ERROR, None,
                                                  detail={"why": LIMIT_WHY[grant.bound_by]},
                                                  only_states=DIALABLE_STATES)
        return [updated.id for updated, _ in dials]

    def _launch(self, conference: Conference, grant: SlotGrant, number_plan: NumberPlan,
                 prepared: dict[str, PreparedDial]) -> list[tuple[Participant, DialAttempt]]:
        """Place and follow each claimed call: the dials prepared during the claim leave the
        socket together, now; any other takes its turn at the pacer in its task. A call already
        followed is never placed again (its call id is dialled once)."""
        fresh = [participant for participant in grant.claimed if participant.call_id not in self.attempts]
        placed = {participant.call_id: self._place_prepared(conference, participant,
                                                            prepared.get(participant.call_id or ""))
                  for participant in fresh}
        if any(placed.values()):
            self.nodes.node(conference.node_id).send_now()
        self.states.remember(conference)
        dials: list[tuple[Participant, DialAttempt]] = []
        for updated in grant.claimed:
            if updated.call_id not in placed:
                dials.append((updated, self.attempts[updated.call_id or ""]))
                continue
            attempt = DialAttempt(updated.call_id or "", updated.id, conference.id, conference.owner_id,
                                  conference.node_id, participant=updated)
            self.attempts[attempt.call_id] = attempt
            self.states.track_call(attempt.call_id)
            dials.append((updated, attempt))
            self._spawn(self._dial_one(conference, updated, attempt, number_plan, placed[updated.call_id]),
                        f"dial-{updated.id}")
        return dials

    def _place_prepared(self, conference: Conference, participant: Participant,
                        prepared: PreparedDial | None) -> Awaitable[None] | None:
        """Send a dial prepared during its claim, now; its acceptance to await, or None when
        there is none or the lease or the node's link was lost since (the dial then goes the
        usual way, which finds that out and records it)."""
        if prepared is None or not self.slots.fence.holds():
            return None
        try:
            placed = self.nodes.node(conference.node_id).start_dial(prepared)
        except AmiError:
            return None
        self._count_originate(conference, participant)
        return placed

    def _dial_options(self, room: str, language: str, max_participants: int) -> dict[str, Any]:
        """What every dial of a conference carries besides its call, number and role."""
        return {"room": room, "language": language, "max_members": max_participants + ROOM_EXTRA_MEMBERS,
                "ring_seconds": self.settings.ring_timeout, "caller_id": self.settings.access_number}

    def _count_originate(self, conference: Conference, participant: Participant) -> None:
        self.originates += 1
        self.originated.append((conference.owner_id, participant.id))

    async def _dial_one(self, conference: Conference, participant: Participant, attempt: DialAttempt,
                        number_plan: NumberPlan, placed: Awaitable[None] | None = None) -> None:
        """Dial one participant after its turn at the pacer, or, ``placed``, follow the prepared
        dial already sent for it; a dial the node refused fails its participant."""
        if placed is None:
            await self.pacer.wait(conference.owner_id)
            if self.attempts.get(attempt.call_id) is not attempt:
                return  # cancelled while waiting for its slot (conference ended, participant kicked)
            if not self.slots.fence.holds():  # the leader lease lapsed since the claim: the other engine dials
                self.attempts.pop(attempt.call_id, None)
                return
        try:
            if placed is None:
                number = number_plan.validate(participant.number, "number")  # checked again right before use
                self._count_originate(conference, participant)
                placed = self.nodes.node(conference.node_id).dial(
                    attempt.call_id, number, role=participant.role,
                    **self._dial_options(conference.room, conference.language, conference.max_participants))
            await placed
            self._watch(attempt)
        except (AmiError, ValidationError) as exc:
            log.warning("dial-out of participant %s failed: %s", participant.id, exc)
            self.attempts.pop(attempt.call_id, None)
            reason = FailureReason.INVALID_NUMBER if isinstance(exc, ValidationError) else FailureReason.ERROR
            await self.states.mark_failed(participant, attempt.owner_id, reason, None, detail={"error": str(exc)},
                                          only_states=IN_CALL_STATES)

    def _watch(self, attempt: DialAttempt) -> None:
        """An attempt whose outcome never arrived (events lost with the AMI link) must not stay
        'calling' forever: once its time is well over, its call is looked for, and if the call is
        gone the attempt failed. A timer per call, not a task: a burst puts hundreds in flight at
        once, and their waiting costs nothing while Asterisk places them."""
        handle = asyncio.get_running_loop().call_later(self.settings.ring_timeout + WATCHDOG_EXTRA_SECONDS,
                                                       self._watch_due, attempt)
        earlier = self._watches.pop(attempt.call_id, None)
        if earlier is not None:
            earlier.cancel()
        self._watches[attempt.call_id] = handle

    def _watch_due(self, attempt: DialAttempt) -> None:
        self._watches.pop(attempt.call_id, None)
        if self.attempts.get(attempt.call_id) is attempt and not attempt.finished:
            self._spawn(self._look_for_call(attempt), f"watchdog-{attempt.call_id}")

    def _resolve(self, attempt: DialAttempt) -> None:
        """The attempt is over (joined, failed or forgotten): its watchdog has nothing to watch."""
        attempt.finished = True
        handle = self._watches.pop(attempt.call_id, None)
        if handle is not None:
            handle.cancel()

    async def _look_for_call(self, attempt: DialAttempt) -> None:
        if await self.nodes.node(attempt.node_id).call_alive(attempt.call_id):
            if self.attempts.get(attempt.call_id) is attempt and not attempt.finished:
                self._watch(attempt)  # answered, in the room or on its way
            return
        if self.attempts.get(attempt.call_id) is not attempt or attempt.finished:
            return
        log.warning("dial-out %s: no outcome seen, call gone; marking it failed", attempt.call_id)
        await self._finish_attempt(attempt, wait_for_detail=False)

    async def _finish_attempt(self, attempt: DialAttempt, wait_for_detail: bool) -> None:
        """The dial failed: record why, once, after the dialplan's result had a chance to come."""
        if attempt.finished:
            return
        if wait_for_detail and attempt.dial_status is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(attempt.outcome.wait(), OUTCOME_GRACE_SECONDS)
        if attempt.finished:
            return
        self._resolve(attempt)
        self.attempts.pop(attempt.call_id, None)
        self.states.untrack_call(attempt.call_id)
        reason, cause = failure_from(attempt.dial_status, attempt.dial_cause, attempt.originate_reason,
                                     attempt.hangup_cause)
        participant = await self.repo.get_participant(attempt.participant_id)
        if participant is None or participant.call_id != attempt.call_id:
            return
        failed = await self.states.mark_failed(participant, attempt.owner_id, reason, cause,
                                               detail={"dial_status": attempt.dial_status,
                                                       "originate_reason": attempt.originate_reason})
        if failed is not None:
            self._maybe_retry(failed, reason)

    def _maybe_retry(self, participant: Participant, reason: FailureReason) -> None:
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
        no retry, and a dial still waiting for its slot is not sent."""
        attempt = self.attempts.pop(call_id or "", None)
        if attempt is not None:
            self._resolve(attempt)

    # ----------------------------------------------------------------- outcomes

    async def on_event(self, event: NodeEvent) -> bool:
        """Follow the attempts in flight; True when the event was about an attempt only (the
        call tracker has nothing more to do with it)."""
        if isinstance(event, CallPlaced):
            attempt = await self._attempt_for(event.call_id, event.node_id)
            if attempt is not None:
                attempt.originate_reason = event.reason
                if event.answered:
                    attempt.answered = True
                else:
                    self._spawn(self._finish_attempt(attempt, wait_for_detail=True), f"outcome-{attempt.call_id}")
            return True
        if isinstance(event, DialOutcome):
            attempt = await self._attempt_for(event.call_id, event.node_id)
            if attempt is not None:
                attempt.dial_status = event.status
                attempt.dial_cause = event.cause
                attempt.outcome.set()
            return True
        if isinstance(event, Ringing):
            attempt = self.attempts.get(event.call_id)
            if attempt is not None and attempt.node_id == event.node_id:
                # its write lingers for the burst: the call's later events (its join) must not wait
                self._spawn(self._ringing(attempt), f"ringing-{event.call_id}")
            return True
        if isinstance(event, CallHungUp):
            if not event.far_leg:
                self._joined_calls.discard(event.call_id)
            return self._hung_up(event)
        if isinstance(event, ParticipantJoined):
            attempt = self.attempts.pop(event.call_id, None)
            if attempt is not None:
                self._ring_writes.withdraw(attempt.participant_id)
                self._resolve(attempt)
                if len(self._joined_calls) >= JOINED_CALLS_KEPT:  # hang-ups lost with a link: start afresh
                    self._joined_calls.clear()
                self._joined_calls.add(event.call_id)
        return False

    async def _attempt_for(self, call_id: str, node_id: str) -> DialAttempt | None:
        """The attempt in flight for ``call_id``; after an engine restart, a dial-out the previous
        engine started (still calling in the database) is adopted so its outcome is not lost."""
        attempt = self.attempts.get(call_id)
        if attempt is not None:
            return attempt if attempt.node_id == node_id else None
        if not is_dialout_id(call_id) or call_id in self._joined_calls:
            return None
        participant = await self.states.by_call_id(call_id, node_id)
        if participant is None or participant.state not in IN_CALL_STATES:
            return None
        owner_id = await self.states.owner_of(participant.conference_id)
        attempt = DialAttempt(call_id, participant.id, participant.conference_id, owner_id, node_id)
        self.attempts[call_id] = attempt
        self._watch(attempt)
        log.info("adopted dial-out %s of participant %s (started by a previous engine)", call_id, participant.id)
        return attempt

    async def _ringing(self, attempt: DialAttempt) -> None:
        """Store and tell that the call rings, unless it joined meanwhile (connected supersedes
        ringing, so the console never hears ringing after connected)."""
        if await self._mark_ringing(attempt.participant_id) and not attempt.finished:
            await self.states.publish("participant.state", attempt.conference_id, attempt.owner_id,
                                      attempt.participant_id, state="ringing", reason=None, cause=None)

    async def _mark_ringing(self, participant_id: int) -> bool:
        """Store that the participant's call rings (when it is still calling); False when it was
        not calling or its ring is already on its way (its first ring is the one told)."""
        if self._ring_writes.waiting(participant_id):
            return False
        return await self._ring_writes.submit(participant_id, None)

    async def _write_ringing(self, batch: dict[int, None]) -> dict[int, bool]:
        moved = await self.repo.mark_ringing(list(batch))
        return {participant_id: True for participant_id in moved}

    def _hung_up(self, event: CallHungUp) -> bool:
        attempt = self.attempts.get(event.call_id)
        if event.far_leg:
            if attempt is not None:
                attempt.hangup_cause = attempt.hangup_cause or event.cause
            return True
        if attempt is None:
            return False
        attempt.hangup_cause = attempt.hangup_cause or event.cause
        if attempt.answered:  # answered but never reached the room
            self._spawn(self._finish_attempt(attempt, wait_for_detail=False), f"outcome-{event.call_id}")
        return True
