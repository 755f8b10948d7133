"""The invite state machine (engine/services/dialout.py DialOutService) over fakes of our own node
adapter and repositories: dial -> Originate -> outcome -> participant state, retries of busy
and unanswered calls per VECHE_RETRY_*, the watchdog of a lost outcome, and the dial-out limits."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.adapters.asterisk.contract import new_dialin_token
from engine.config import Settings
from engine.domain.dialout import retries_for, should_retry
from engine.domain.errors import Forbidden, RateLimited
from engine.domain.model import FailureReason, ParticipantState
from engine.domain.numberplan import NumberPlan
from engine.domain.planning import AccountLimits, AccountRules
from engine.services import dialout as dialout_module
from tests.unit.fakes import NODE, Stack, build, conference, count_look_ups, participant, quiet, until

NUMBER = "375291234567"


@pytest.fixture
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    settings = getattr(request, "param", {})
    built = build(**{"calls_per_second": 0, "retry_delay_seconds": 0, **settings})
    await built.start()
    yield built
    await built.stop()


async def dial_one(stack: Stack, *, pid: int = 1, number: str = NUMBER) -> str:
    """Plan one participant, dial them, and return the call id of the Originate sent."""
    conf = conference()
    stack.repo.add(conf, participant(pid, number))
    sent = len(stack.dialled())
    assert await stack.calls.dial(conf, [stack.repo.participants_by_id[pid]]) == [pid]
    await until(lambda: len(stack.dialled()) > sent)
    return stack.dialled()[-1]["channel_id"]


async def fail(stack: Stack, call_id: str, dial_status: str, cause: str) -> None:
    """The dialplan reports the callee's answer, then the Originate fails."""
    await stack.node.emit("UserEvent", UserEvent="VecheDialResult", Call=call_id, DialStatus=dial_status,
                          Cause=cause)
    await stack.node.emit("OriginateResponse", Uniqueid=call_id, Response="Failure", Reason="0")


async def test_dial_sends_one_originate_through_the_dialout_context(stack: Stack) -> None:
    call_id = await dial_one(stack)
    originate = stack.node.originates[0]
    assert originate["channel"] == f"Local/{NUMBER}@veche-dialout/n"
    assert originate["other_channel_id"] == f"{call_id}-2"
    assert originate["variables"]["VECHE_ROOM"] == "veche-1" and originate["variables"]["VECHE_CALL"] == call_id
    assert call_id.startswith("vo-") and stack.states() == {1: "calling"}
    assert [(e.kind, e.data["state"]) for e in stack.published] == [("participant.state", "calling")]


async def test_ringing_connected_then_left(stack: Stack) -> None:
    call_id = await dial_one(stack)
    await until(lambda: call_id in stack.dialout._watches)  # placed: its watchdog's timer runs
    await stack.node.emit("DialBegin", Uniqueid=f"{call_id}-2")
    await until(lambda: stack.states() == {1: "ringing"})  # stored once the burst's ringing is written
    await stack.node.emit("OriginateResponse", Uniqueid=call_id, Response="Success", Reason="4")
    await stack.node.emit("ConfbridgeJoin", Uniqueid=call_id, Channel="Local/375291234567@veche-dialout-00000001;1",
                          Conference="veche-1", Muted="no")
    assert stack.states() == {1: "connected"}
    assert call_id not in stack.dialout.attempts  # the attempt is over: no outcome, no watchdog
    assert stack.dialout._watches == {}
    await stack.node.emit("ConfbridgeLeave", Uniqueid=call_id, Conference="veche-1")
    assert stack.states() == {1: "left"}
    assert [e.data.get("state") for e in stack.published] == ["calling", "ringing", "connected", "left"]
    assert stack.repo.kinds(1) == ["participant.joined", "participant.left"]


async def test_a_call_answered_before_its_ringing_is_stored_goes_from_calling_to_connected(stack: Stack) -> None:
    call_id = await dial_one(stack)
    await stack.node.emit("DialBegin", Uniqueid=f"{call_id}-2")  # ringing waits for the rest of its burst
    await stack.node.emit("OriginateResponse", Uniqueid=call_id, Response="Success", Reason="4")
    await stack.node.emit("ConfbridgeJoin", Uniqueid=call_id, Channel="Local/375291234567@veche-dialout-00000001;1",
                          Conference="veche-1", Muted="no")
    assert stack.states() == {1: "connected"}
    await asyncio.sleep(2 * dialout_module.RING_LINGER_SECONDS)  # the ringing's write would have been done by now
    assert stack.states() == {1: "connected"}
    assert [e.data.get("state") for e in stack.published] == ["calling", "connected"]


async def test_the_late_events_of_a_call_in_its_room_need_no_look_up(stack: Stack) -> None:
    call_id = await dial_one(stack)
    looked_up = count_look_ups(stack.repo)
    await stack.node.emit("ConfbridgeJoin", Uniqueid=call_id, Channel="Local/375291234567@veche-dialout-00000001;1",
                          Conference="veche-1", Muted="no")
    # Asterisk reports the Originate's success after the join, and the dial's result when the call ends
    await stack.node.emit("OriginateResponse", Uniqueid=call_id, Response="Success", Reason="4")
    await stack.node.emit("UserEvent", UserEvent="VecheDialResult", Call=call_id, DialStatus="ANSWER", Cause="16")
    await stack.node.emit("ConfbridgeLeave", Uniqueid=call_id, Conference="veche-1")
    await stack.node.emit("Hangup", Uniqueid=call_id, Cause="16")
    assert looked_up == [] and call_id not in stack.dialout.attempts  # nothing adopted it again
    assert stack.states() == {1: "left"} and stack.repo.participants_by_id[1].hangup_cause == 16


@pytest.mark.parametrize(("status", "cause", "reason", "hangup_cause"), [
    ("BUSY", "17", FailureReason.BUSY, 17),
    ("NOANSWER", "", FailureReason.NO_ANSWER, 19),
    ("CHANUNAVAIL", "21", FailureReason.REJECTED, 21),
    ("CHANUNAVAIL", "1", FailureReason.INVALID_NUMBER, 1),
])
async def test_outcome_becomes_the_failure_reason(stack: Stack, status: str, cause: str, reason: FailureReason,
                                                  hangup_cause: int) -> None:
    call_id = await dial_one(stack)
    await fail(stack, call_id, status, cause)
    await until(lambda: stack.states() == {1: "failed"})
    failed = stack.repo.participants_by_id[1]
    assert (failed.failure_reason, failed.hangup_cause) == (reason, hangup_cause)
    assert stack.published[-1].data == {"state": "failed", "reason": str(reason), "cause": hangup_cause}
    assert len(stack.dialled()) == 1  # no retry configured


@pytest.mark.parametrize("stack", [{"retry_busy": 1}], indirect=True)
async def test_busy_is_dialled_again_once_per_retry_then_stays_failed(stack: Stack) -> None:
    first = await dial_one(stack)
    await fail(stack, first, "BUSY", "17")
    await until(lambda: len(stack.dialled()) == 2)
    second = stack.dialled()[1]["channel_id"]
    assert second != first and stack.repo.participants_by_id[1].attempts == 2
    await fail(stack, second, "BUSY", "17")
    await until(lambda: stack.states() == {1: "failed"} and quiet())
    assert len(stack.dialled()) == 2 and stack.repo.participants_by_id[1].failure_reason == FailureReason.BUSY


@pytest.mark.parametrize("stack", [{"retry_busy": 2, "retry_no_answer": 0}], indirect=True)
async def test_rejected_and_unanswered_are_final_when_only_busy_retries(stack: Stack) -> None:
    call_id = await dial_one(stack)
    await fail(stack, call_id, "CHANUNAVAIL", "21")
    await until(lambda: stack.states() == {1: "failed"} and quiet())
    call_id = await dial_one(stack, pid=2, number="375291234568")
    await fail(stack, call_id, "NOANSWER", "")
    await until(lambda: stack.states()[2] == "failed" and quiet())
    assert len(stack.dialled()) == 2


async def test_the_event_of_another_call_changes_nothing(stack: Stack) -> None:
    await dial_one(stack)
    await fail(stack, "vo-0000000000000000", "BUSY", "17")
    await stack.node.emit("ConfbridgeJoin", Uniqueid="1700000000.9", Channel="PJSIP/x-00000001",
                          Conference="veche-1", Muted="no")
    assert stack.states() == {1: "calling"}


@pytest.mark.parametrize("stack", [{"ring_timeout": 0}], indirect=True)
async def test_watchdog_fails_a_call_whose_outcome_was_lost(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dialout_module, "WATCHDOG_EXTRA_SECONDS", 0.02)
    call_id = await dial_one(stack)
    stack.node.live_channels.add(call_id)  # still up: the watchdog keeps waiting
    await until(lambda: stack.node.getvars >= 3)  # three watchdog rounds found the channel alive
    assert stack.states() == {1: "calling"}
    stack.node.live_channels.clear()  # the channel is gone and nobody told us how
    await until(lambda: stack.states() == {1: "failed"})
    assert stack.repo.participants_by_id[1].failure_reason == FailureReason.ERROR
    assert call_id not in stack.dialout.attempts


async def test_a_number_outside_the_plan_fails_without_an_originate(stack: Stack) -> None:
    conf = conference()
    stack.repo.add(conf, participant(1, "375902000000"))  # a blocked prefix of the default plan
    assert await stack.calls.dial(conf, [stack.repo.participants_by_id[1]]) == []
    assert stack.node.originates == [] and stack.states() == {1: "failed"}
    assert stack.repo.participants_by_id[1].failure_reason == FailureReason.INVALID_NUMBER


async def test_only_planned_failed_or_left_dialout_participants_are_dialled(stack: Stack) -> None:
    conf = conference()
    stack.repo.add(conf, participant(1, state=ParticipantState.CONNECTED),
                   participant(2, origin="dialin", state=ParticipantState.PLANNED))
    assert await stack.calls.dial(conf, list(stack.repo.participants_by_id.values())) == []
    assert stack.node.originates == []


async def test_a_blocked_account_dials_nobody(stack: Stack) -> None:
    conf = conference()
    stack.repo.add(conf, participant(1))
    stack.repo.blocked.add(conf.owner_id)
    with pytest.raises(Forbidden):
        await stack.calls.dial(conf, [stack.repo.participants_by_id[1]])
    assert stack.node.originates == []


async def test_strict_dial_over_the_limit_dials_nobody_and_names_the_limit(stack: Stack) -> None:
    conf = conference()
    stack.repo.add(conf, participant(1), participant(2, "375291234568"))
    stack.slots.room = 1
    with pytest.raises(RateLimited, match="outbound calls at the same time"):
        await stack.calls.dial(conf, list(stack.repo.participants_by_id.values()))
    assert stack.node.originates == [] and stack.states() == {1: "planned", 2: "planned"}
    assert stack.guard.hits == [(conf.owner_id, "max_concurrent_calls")]


async def test_lenient_dial_over_the_limit_dials_what_fits_and_fails_the_rest(stack: Stack) -> None:
    conf = conference()
    stack.repo.add(conf, participant(1), participant(2, "375291234568"))
    stack.slots.room, stack.slots.bound_by = 1, "max_dialouts_per_minute"
    assert await stack.calls.dial(conf, list(stack.repo.participants_by_id.values()), strict_rate=False) == [1]
    await until(lambda: len(stack.dialled()) == 1)
    assert stack.states() == {1: "calling", 2: "failed"}
    assert ("participant.failed" in stack.repo.kinds(1)
            and stack.repo.events[-1][2] == {"reason": "error", "cause": None, "why": "rate_limited"})


async def test_the_system_cap_is_not_an_account_alert(stack: Stack) -> None:
    conf = conference()
    stack.repo.add(conf, participant(1))
    stack.slots.room, stack.slots.bound_by = 0, "system_concurrent_calls"
    with pytest.raises(RateLimited, match="no free outbound line"):
        await stack.calls.dial(conf, [stack.repo.participants_by_id[1]])
    assert stack.guard.hits == []


def test_retry_rule() -> None:
    assert retries_for(FailureReason.BUSY, 2, 1) == 2 and retries_for(FailureReason.NO_ANSWER, 2, 1) == 1
    for final in (FailureReason.REJECTED, FailureReason.INVALID_NUMBER, FailureReason.CONGESTION,
                  FailureReason.ERROR, FailureReason.CANCELLED):
        assert retries_for(final, 5, 5) == 0 and not should_retry(final, 1, 5, 5)
    assert should_retry(FailureReason.BUSY, 1, 1, 0) and not should_retry(FailureReason.BUSY, 2, 1, 0)
    assert not should_retry(FailureReason.NO_ANSWER, 1, 1, 0)


async def test_a_room_locked_before_anyone_joined_is_locked_when_asterisk_creates_it(stack: Stack) -> None:
    stack.repo.add(conference(locked=True))
    stack.repo.add(conference(id=2, room="veche-2"))
    await stack.node.emit("ConfbridgeStart", Conference="veche-1")
    await stack.node.emit("ConfbridgeStart", Conference="veche-2")
    assert stack.node.locks == [("veche-1", True)]


async def test_a_dial_in_caller_is_known_by_its_token_until_the_first_event_names_the_channel(stack: Stack) -> None:
    token = new_dialin_token()
    stack.repo.add(conference(), participant(1, origin="dialin", state=ParticipantState.CALLING, call_id=token))
    await stack.node.emit("ConfbridgeJoin", Uniqueid="1700000000.7", Channel="PJSIP/pstn-00000007",
                          Conference="veche-1", Muted="yes", ChanVariable=f"VECHE_PARTICIPANT={token}")
    joined = stack.repo.participants_by_id[1]
    assert (joined.state, joined.call_id, joined.channel, joined.muted) == (
        "connected", "1700000000.7", "PJSIP/pstn-00000007", True)
    await stack.node.emit("Hangup", Uniqueid="1700000000.7", Cause="16")
    assert stack.states() == {1: "left"} and stack.repo.participants_by_id[1].hangup_cause == 16


async def test_a_token_of_our_own_shape_on_a_foreign_channel_is_not_believed(stack: Stack) -> None:
    token = new_dialin_token()
    stack.repo.add(conference(), participant(1, state=ParticipantState.CALLING, call_id=token))  # a dial-out
    await stack.node.emit("ConfbridgeJoin", Uniqueid="1700000000.8", Channel="PJSIP/pstn-00000008",
                          Conference="veche-1", Muted="no", ChanVariable=f"VECHE_PARTICIPANT={token}")
    assert stack.states() == {1: "calling"} and stack.repo.participants_by_id[1].call_id == token


async def test_a_start_waits_for_its_calls_while_they_progress(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """DialOutService.settled: each quiet period in which calls joined or failed is followed by
    another; one without progress ends the wait, as does the last call resolved."""
    for pid in (1, 2, 3):
        await dial_one(stack, pid=pid, number=f"37529123456{pid}")
    conference_id = stack.repo.participants_by_id[1].conference_id
    attempts = stack.dialout.attempts
    assert sum(a.conference_id == conference_id for a in attempts.values()) == 3
    periods = []
    quiet, sleep = 0.123, asyncio.sleep  # the quiet periods are told apart from other waits by length

    async def one_call_resolves_per_period(seconds: float) -> None:
        if seconds != quiet:
            return await sleep(seconds)
        periods.append(seconds)
        attempts.pop(next(k for k, a in attempts.items() if a.conference_id == conference_id))
        return None

    monkeypatch.setattr(dialout_module.asyncio, "sleep", one_call_resolves_per_period)
    await stack.dialout.settled(conference_id, quiet=quiet, longest=3600)
    assert periods == [quiet] * 3  # until the last one

    for pid in (4, 5):
        await dial_one(stack, pid=pid, number=f"37529123456{pid}")
    periods.clear()

    async def nothing_resolves(seconds: float) -> None:
        if seconds != quiet:
            return await sleep(seconds)
        periods.append(seconds)
        return None

    monkeypatch.setattr(dialout_module.asyncio, "sleep", nothing_resolves)
    conference_id = stack.repo.participants_by_id[5].conference_id
    await stack.dialout.settled(conference_id, quiet=quiet, longest=3600)
    assert periods == [quiet]  # callees left ringing: one quiet period


RULES = AccountRules(AccountLimits(10, 5, 100), NumberPlan.from_settings(Settings(test_mode=True)), "en")


def start_fields() -> dict[str, Any]:
    """The columns of an immediate conference as planning hands them to its claim."""
    planned = conference(immediate=True, room="veche-2", language="en")
    return {f.name: getattr(planned, f.name) for f in dataclasses.fields(planned)
            if f.name not in ("id", "extended_minutes", "locked", "participants")}


def invited(*numbers: str) -> list[dict[str, Any]]:
    return [{"number": n, "name": "", "email": None, "role": "guest", "node_id": NODE} for n in numbers]


def watch_prepared(stack: Stack) -> list[str]:
    """The call ids of the Originates the node's link prepares, in order."""
    prepared: list[str] = []
    original = stack.node.prepare_originate

    def preparing(**action: Any) -> dict[str, Any]:
        prepared.append(action["channel_id"])
        return original(**action)

    stack.node.prepare_originate = preparing  # type: ignore[method-assign]
    return prepared


async def test_an_unpaced_start_writes_its_dials_while_its_claim_is_stored_and_sends_only_the_claimed(
        stack: Stack) -> None:
    """Every call of the start is durable before the first is sent; the Originates are prepared
    while the claim's statement runs, and those the limits let through leave once it returned."""
    stack.slots.stored, stack.slots.room = asyncio.Event(), 2
    prepared = watch_prepared(stack)
    claiming = asyncio.ensure_future(stack.dialout.claim_new(
        start_fields(), invited(NUMBER, "375291234568", "375291234569"), [], rules=RULES))
    await until(lambda: len(prepared) == 3)
    assert stack.dialled() == []  # the claim is not stored yet
    stack.slots.stored.set()
    started, grant = await claiming
    # sent together the moment the claim returned, each followed before any event can come
    assert [o["channel_id"] for o in stack.dialled()] == [p.call_id for p in grant.claimed] == prepared[:2]
    assert stack.node.sends_now == 1
    assert all(p.call_id in stack.dialout.attempts for p in grant.claimed)
    assert await stack.dialout.dial_claimed(started, grant, RULES) == [p.id for p in grant.claimed]
    assert stack.dialout.originates == 2 and stack.dialout._launched == {}
    await until(lambda: stack.repo.participants_by_id[3].state == ParticipantState.FAILED)


async def test_a_start_whose_placed_calls_were_forgotten_never_dials_them_twice(stack: Stack) -> None:
    started, grant = await stack.dialout.claim_new(start_fields(), invited(NUMBER, "375291234568"), [], rules=RULES)
    assert len(stack.dialled()) == 2
    stack.dialout._launched.clear()  # as when more starts than LAUNCHED_STARTS_KEPT never reached dial_claimed
    assert await stack.dialout.dial_claimed(started, grant, RULES) == [p.id for p in grant.claimed]
    await asyncio.sleep(0.01)
    assert len(stack.dialled()) == 2 and stack.dialout.originates == 2


@pytest.mark.parametrize("stack", [{"calls_per_second": 50}], indirect=True)
async def test_a_paced_start_checks_and_writes_each_dial_at_its_turn(stack: Stack) -> None:
    stack.slots.stored = asyncio.Event()
    prepared = watch_prepared(stack)
    claiming = asyncio.ensure_future(stack.dialout.claim_new(start_fields(), invited(NUMBER, "375291234568"), [],
                                                             rules=RULES))
    await asyncio.sleep(0.01)
    assert prepared == []
    stack.slots.stored.set()
    started, grant = await claiming
    await stack.dialout.dial_claimed(started, grant, RULES)
    await until(lambda: len(stack.dialled()) == 2)
    assert prepared == [p.call_id for p in grant.claimed]
