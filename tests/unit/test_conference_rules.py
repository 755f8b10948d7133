"""The rules of the conference services over fakes of our own node adapter and repository: the
life cycle's start (once, never for a blocked account or a missed conference, auto-invite of the
planned participants), live control (mute, kick, lock, end: Asterisk's refusal is the caller's
conflict, a lock is kept even before the room exists) and the plan checks' refusals reported to
the toll-fraud guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.adapters.db.conferences import OverLimit
from engine.domain.errors import Forbidden, LimitExceeded, NotFound, StateConflict, ValidationError
from engine.domain.model import ConferencePlan, ConferenceState, FailureReason, ParticipantPlan, ParticipantState
from engine.services import conference_lifecycle
from tests.unit.fakes import Stack, conference, participant, until


def scheduled(**changes: object) -> object:
    """A conference due to start now (the real clock: the life cycle reads it)."""
    now = datetime.now(UTC)
    return conference(state=ConferenceState.SCHEDULED, starts_at=now - timedelta(seconds=1),
                      ends_at=now + timedelta(minutes=30), **changes)


def connected(pid: int) -> object:
    return participant(pid, state=ParticipantState.CONNECTED, call_id=f"1700000000.{pid}",
                       channel=f"PJSIP/pstn-0000000{pid}", node_id="ast1")


def kinds(stack: Stack) -> list[str]:
    return [event.kind for event in stack.published]


async def test_a_start_happens_once_and_dials_the_planned_participants(stack: Stack) -> None:
    stack.repo.add(scheduled(), participant(1), participant(2, "375291234568"))
    started = await stack.lifecycle.start_conference(1)
    assert started is not None and started.state == ConferenceState.RUNNING
    assert await stack.lifecycle.start_conference(1) is None  # a second engine, or a second pass
    await until(lambda: len(stack.dialled()) == 2)
    assert sorted(stack.states().values()) == ["calling", "calling"]
    assert stack.repo.kinds(1).count("conference.started") == 1
    assert kinds(stack)[0] == "conference.started"
    await stack.lifecycle.settled()  # the start's bookkeeping, once its calls stopped progressing
    assert stack.planning.records.schedule_changed.is_set()  # the scheduler recomputes its wake-up


async def test_a_starts_bookkeeping_follows_its_calls_and_a_stop_runs_it_out(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The start returns once its calls are placed; its listeners (mail, audit, metrics, the
    scheduler's wake-up) wait for the calls, and an engine stopping runs them at once."""
    monkeypatch.setattr(conference_lifecycle, "BOOKKEEPING_QUIET_SECONDS", 3600.0)
    stack.repo.add(scheduled(), participant(1))
    assert await stack.lifecycle.start_conference(1) is not None
    await until(lambda: len(stack.dialled()) == 1)
    assert not stack.planning.records.schedule_changed.is_set()  # the call is being set up
    await stack.lifecycle.stop()
    assert stack.planning.records.schedule_changed.is_set()


async def test_without_auto_invite_nobody_is_dialled_at_the_start(stack: Stack) -> None:
    stack.repo.add(scheduled(auto_invite=False), participant(1))
    assert await stack.lifecycle.start_conference(1) is not None
    assert stack.dialled() == [] and stack.states() == {1: "planned"}


async def test_a_blocked_accounts_conference_fails_instead_of_starting(stack: Stack) -> None:
    stack.repo.add(scheduled(), participant(1))
    stack.repo.blocked.add(5)
    assert await stack.lifecycle.start_conference(1) is None
    failed = stack.repo.conferences[1]
    assert (failed.state, failed.end_reason) == (ConferenceState.FAILED, "account_blocked")
    assert stack.dialled() == [] and kinds(stack) == ["conference.failed"]


async def test_a_conference_whose_end_passed_unstarted_is_missed(stack: Stack) -> None:
    now = datetime.now(UTC)
    stack.repo.add(conference(state=ConferenceState.SCHEDULED, starts_at=now - timedelta(hours=1),
                              ends_at=now - timedelta(minutes=1)), participant(1))
    assert await stack.lifecycle.start_conference(1) is None
    missed = stack.repo.conferences[1]
    assert (missed.state, missed.end_reason) == (ConferenceState.FAILED, "missed")
    assert stack.dialled() == [] and stack.repo.kinds(1) == ["conference.failed"]


async def test_mute_reaches_the_room_and_is_stored_with_its_actor(stack: Stack) -> None:
    stack.repo.add(conference(), connected(1), participant(2, "375291234568"))
    await stack.live.mute(5, 1, 1, True, actor="keypad:9")
    assert stack.node.room_actions == [("mute", "veche-1", "PJSIP/pstn-00000001", "True")]
    assert stack.repo.participants_by_id[1].muted is True
    assert [(e.kind, e.data["actor"]) for e in stack.published] == [("participant.muted", "keypad:9")]
    with pytest.raises(StateConflict):  # not in the room: nothing to mute
        await stack.live.mute(5, 1, 2, True)
    with pytest.raises(NotFound):  # another account's conference
        await stack.live.mute(6, 1, 1, False)


async def test_asterisks_refusal_is_a_conflict_and_nothing_is_stored(stack: Stack) -> None:
    stack.repo.add(conference(), connected(1))
    stack.node.refuse_room_actions = True
    with pytest.raises(StateConflict):
        await stack.live.mute(5, 1, 1, True)
    with pytest.raises(StateConflict):
        await stack.live.kick(5, 1, 1)
    assert stack.repo.participants_by_id[1].muted is False and stack.states() == {1: "connected"}
    assert stack.published == [] and stack.repo.kinds(1) == []


async def test_a_lock_is_kept_even_before_the_room_exists(stack: Stack) -> None:
    stack.repo.add(conference())
    stack.node.refuse_room_actions = True  # nobody joined yet: ConfBridge knows no such room
    await stack.live.lock(5, 1, True)
    assert stack.repo.conferences[1].locked is True and kinds(stack) == ["conference.locked"]
    stack.node.refuse_room_actions = False
    await stack.live.lock(5, 1, False)
    assert stack.node.locks == [("veche-1", False)] and stack.repo.conferences[1].locked is False


async def test_a_kick_leaves_the_room_or_stops_the_call_in_progress(stack: Stack) -> None:
    stack.repo.add(conference(), connected(1), participant(2, "375291234568", state=ParticipantState.RINGING,
                                                           call_id="vo-00000000000000bb", node_id="ast1"))
    await stack.live.kick(5, 1, 1)
    assert stack.node.room_actions == [("kick", "veche-1", "PJSIP/pstn-00000001")]
    await stack.live.kick(5, 1, 2)
    assert "vo-00000000000000bb" in stack.node.hangups
    assert stack.states() == {1: "left", 2: "failed"}
    assert stack.repo.participants_by_id[2].failure_reason == FailureReason.CANCELLED
    assert stack.repo.kinds(1).count("participant.kicked") == 2


async def test_an_end_names_who_ended_and_only_a_running_conference_ends(stack: Stack) -> None:
    stack.repo.add(conference(), connected(1))
    stack.repo.add(conference(id=2, room="veche-2"))
    ended = await stack.live.end(5, 1)
    assert (ended.state, ended.end_reason) == (ConferenceState.ENDED, "ended_by_owner")
    assert stack.states() == {1: "left"}
    by_operator = await stack.live.end(None, 2)
    assert by_operator.end_reason == "ended_by_operator"
    with pytest.raises(StateConflict):
        await stack.live.end(5, 1)


async def test_the_plan_checks_report_every_refusal_to_the_guard(stack: Stack) -> None:
    checks = stack.planning.checks
    rules = await checks.rules(5)
    with pytest.raises(ValidationError):
        await checks.checked_plan(5, ConferencePlan(subject="s", start=None, duration_minutes=30, max_participants=5,
                                                    participants=(ParticipantPlan("0"),)), rules)
    with pytest.raises(LimitExceeded):
        await checks.checked_plan(5, ConferencePlan(subject="s", start=None, duration_minutes=30,
                                                    max_participants=rules.limits.max_participants + 1), rules)
    refusal = checks.concurrency_refused(5, OverLimit("max_concurrent_conferences", allowed=3, current=3))
    assert isinstance(refusal, LimitExceeded)
    assert stack.guard.hits == [(5, "number_plan"), (5, "max_participants"), (5, "max_concurrent_conferences")]
    stack.repo.blocked.add(5)
    with pytest.raises(Forbidden):
        await checks.limits(5)


async def test_a_participant_outside_the_number_plan_is_refused_and_reported(stack: Stack) -> None:
    stack.repo.add(conference())
    with pytest.raises(ValidationError) as refused:
        await stack.live.add_participant(5, 1, ParticipantPlan("0"))
    assert refused.value.field == "participant.number"
    assert stack.guard.hits == [(5, "number_plan")] and stack.published == []


async def test_a_plan_checked_against_the_rules_as_read_is_refused_only_by_the_rules_as_they_are(stack: Stack) -> None:
    """checked_as_read (for a write that checks the rules' stamp) uses the rules last read when
    they pass the plan, and reads them again when they refuse it: a limit raised since does not
    refuse, and only a refusal by the current rules reaches the guard."""
    checks = stack.planning.checks
    await checks.rules(5)
    reads = stack.repo.limit_reads

    def plan(participants: int) -> ConferencePlan:
        return ConferencePlan(subject="s", start=None, duration_minutes=30, max_participants=participants,
                              participants=tuple(ParticipantPlan(f"37529{i:07d}") for i in range(participants)))

    checked, rules = await checks.checked_as_read(5, plan(3))
    assert len(checked.participants) == 3 and stack.repo.limit_reads == reads  # the kept rules passed it
    stack.repo.limits["max_participants"] = 20
    checked, rules = await checks.checked_as_read(5, plan(15))
    assert rules.limits.max_participants == 20 and stack.repo.limit_reads == reads + 1
    assert stack.guard.hits == []
    stack.repo.limits["max_participants"] = 22
    with pytest.raises(LimitExceeded):  # the kept rules (20) refuse it, and so do the current ones
        await checks.checked_as_read(5, plan(25))
    assert stack.guard.hits == [(5, "max_participants")] and stack.repo.limit_reads == reads + 2
