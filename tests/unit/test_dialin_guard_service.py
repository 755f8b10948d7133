"""The dial-in conversation over fakes of our own interfaces (the call and the repository):
the prompts a caller hears for unknown, ended and not-started numbers are the same until a
correct PIN, a lock-out refuses every PIN and is announced once, withheld callers share one key."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.config import Settings
from engine.domain.dialin import PIN_LOCKOUT_EVENT, WITHHELD, DialinPolicy, Refusal
from engine.domain.model import ConferenceState
from engine.services.bus import DomainEvent, EventBus
from engine.services.dialin import DialinService
from engine.services.pin_guard import PinGuard, dialin_policy
from tests.unit.fakes import FakeCall, FakeDialinRepo, NoRooms
from tests.unit.test_dialin_rules import conference as make_conference


def service(**policy: Any) -> tuple[DialinService, FakeDialinRepo, list[DomainEvent]]:
    bus = EventBus()
    events: list[DomainEvent] = []
    bus.subscribe(events.append)
    repo = FakeDialinRepo()
    guard = PinGuard(repo, bus, DialinPolicy(base_delay_seconds=0, max_delay_seconds=0, **policy))  # type: ignore[arg-type]
    instance = DialinService(Settings(test_mode=True), repo, bus, NoRooms(), guard)  # type: ignore[arg-type]
    return instance, repo, events


async def test_unknown_ended_and_not_started_numbers_sound_the_same_until_a_correct_pin() -> None:
    dialin, repo, _ = service()
    now = datetime.now(UTC)
    repo.conferences["111111"] = make_conference(id=1, conference_number="111111", state=ConferenceState.ENDED)
    repo.conferences["222222"] = make_conference(id=2, conference_number="222222", state=ConferenceState.SCHEDULED,
                                                 starts_at=now + timedelta(hours=2), ends_at=now + timedelta(hours=3))
    heard = {}
    for number in ("111111", "222222", "333333"):
        call = FakeCall([number, "999999", "999998", "999997"])
        outcome = await dialin.answer(call)
        assert outcome.wrong_entries == 3 and outcome.refusal is None
        heard[number] = call.heard
    assert heard["111111"] == heard["222222"] == heard["333333"] == [
        "ask conf-getconfno", "ask conf-getpin", "play conf-invalidpin", "ask conf-getpin", "play conf-invalidpin",
        "ask conf-getpin", "play conf-invalidpin", "play goodbye"]
    ended, later = FakeCall(["111111", "111111"]), FakeCall(["222222", "111111"])
    assert (await dialin.answer(ended)).refusal == Refusal.ENDED
    assert (await dialin.answer(later)).refusal == Refusal.NOT_STARTED
    assert ended.heard[:2] == later.heard[:2] == ["ask conf-getconfno", "ask conf-getpin"]
    assert ended.heard[2:] != later.heard[2:]


async def test_lockout_refuses_every_pin_and_is_announced_once() -> None:
    dialin, repo, events = service(lockout_after=3, lockout_seconds=600)
    repo.conferences["123456"] = make_conference(id=7, owner_id=5)
    guesser = FakeCall(["123456", "000001", "000002", "000003"], caller_number="375290000001")
    assert (await dialin.answer(guesser)).wrong_entries == 3
    await dialin.published()
    assert [(e.kind, e.conference_id, e.owner_id, e.data["failures"]) for e in events] == [
        (PIN_LOCKOUT_EVENT, 7, 5, 3)]
    chair = FakeCall(["123456", "111111"], caller_number="375290000002")
    assert (await dialin.answer(chair)).refusal == Refusal.LOCKED_OUT
    assert chair.heard == ["ask conf-getconfno", "play please-try-call-later", "play goodbye"]
    # an unknown number is locked out the same way (and tells nobody)
    unknown = FakeCall(["654321", "1", "2", "3"], caller_number="375290000003")
    await dialin.answer(unknown)
    late = FakeCall(["654321", "1"], caller_number="375290000004")
    assert (await dialin.answer(late)).refusal == Refusal.LOCKED_OUT and late.heard == chair.heard
    assert len(events) == 1
    # after the cool-down the right PIN gets in, and old guesses do not start the next lock-out
    passed = timedelta(seconds=601)  # the cool-down is over: move everything that happened back
    for failure in repo.failures_log:
        failure["at"] -= passed
    repo.lockouts = {number: (start - passed, until - passed, count)
                     for number, (start, until, count) in repo.lockouts.items()}
    assert (await dialin.answer(FakeCall(["123456", "000004", "111111"],
                                         caller_number="375290000005"))).participant_id == 99


async def test_withheld_callers_share_one_counter() -> None:
    dialin, repo, _ = service(withheld_block_after=2, caller_block_after=10)
    repo.conferences["123456"] = make_conference()
    first = await dialin.answer(FakeCall(["123456", "000001", "000002", "000003"], caller_number=""))
    assert first.caller == WITHHELD and first.wrong_entries == 3
    blocked = FakeCall(["123456", "111111"], caller_number="anonymous")
    assert (await dialin.answer(blocked)).refusal == Refusal.BLOCKED
    assert blocked.heard == ["play please-try-call-later", "play goodbye"]
    numbered = await dialin.answer(FakeCall(["123456", "111111"], caller_number="375291111111"))
    assert numbered.participant_id == 99


def test_policy_comes_from_the_settings() -> None:
    settings = replace(Settings(test_mode=True), pin_lockout_after=7, pin_lockout_seconds=60, withheld_block_after=3)
    policy = dialin_policy(settings)
    assert (policy.lockout_after, policy.lockout_seconds, policy.withheld_block_after) == (7, 60, 3)
