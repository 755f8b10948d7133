"""The deadline rules (engine/services/conference_lifecycle.py warn/deadline and
live_control.py extend) over fakes of our own node adapter and repository: the warning is played
once and only to someone, auto-extension goes by its step up to the cap and then the conference
ends, an end hangs everyone up, and the scheduler runs each due warning and end once and starts
what is due in one decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.domain.errors import LimitExceeded, ValidationError
from engine.domain.model import ConferenceState, FailureReason, ParticipantState
from engine.services.scheduler import Scheduler
from tests.unit.fakes import Stack, conference, participant, until

ANNOUNCER = "Local/play@veche-announce/n"


def announcements(stack: Stack) -> list[dict]:
    return [o for o in stack.node.originates if o["channel"] == ANNOUNCER]


def connected(pid: int) -> object:
    return participant(pid, state=ParticipantState.CONNECTED, call_id=f"1700000000.{pid}",
                       channel=f"PJSIP/pstn-0000000{pid}", node_id="ast1")


async def test_the_warning_is_played_once(stack: Stack) -> None:
    conf = conference()
    stack.repo.add(conf, connected(1))
    await stack.lifecycle.warn(conf)
    await stack.lifecycle.warn(conf)  # a second scheduler pass, or a second engine
    assert len(announcements(stack)) == 1
    assert stack.repo.kinds(1) == ["conference.warned"]
    assert [e.kind for e in stack.published] == ["conference.warned"]
    assert announcements(stack)[0]["variables"]["VECHE_ROOM"] == conf.room


async def test_an_empty_room_is_not_warned_and_no_announcer_creates_it(stack: Stack) -> None:
    conf = conference()
    stack.repo.add(conf, participant(1, state=ParticipantState.LEFT))
    await stack.lifecycle.warn(conf)
    assert stack.node.originates == [] and stack.repo.kinds(1) == []
    assert 1 in stack.repo.warned  # marked all the same: not retried on every pass


async def test_auto_extension_goes_by_its_step_up_to_the_cap_then_ends(stack: Stack) -> None:
    conf = conference(auto_extend_minutes=15, extend_cap_minutes=30)
    stack.repo.add(conf, connected(1))
    ends = [conf.ends_at]
    for _ in range(2):
        extended = await stack.lifecycle.deadline(stack.repo.conferences[1])
        assert extended is not None and extended.state == ConferenceState.RUNNING
        ends.append(extended.ends_at)
    assert [b - a for a, b in zip(ends, ends[1:], strict=False)] == [timedelta(minutes=15)] * 2
    assert stack.repo.conferences[1].extended_minutes == 30
    ended = await stack.lifecycle.deadline(stack.repo.conferences[1])  # the cap is reached
    assert ended is not None and ended.state == ConferenceState.ENDED and ended.end_reason == "deadline"
    assert stack.repo.kinds(1) == ["conference.extended", "conference.extended", "conference.extend_refused",
                                   "participant.left", "conference.ended"]
    assert stack.states() == {1: "left"}
    assert [e.data.get("auto") for e in stack.published if e.kind == "conference.extended"] == [True, True]


async def test_an_extension_clears_the_warning_so_the_new_end_is_warned(stack: Stack) -> None:
    conf = conference(auto_extend_minutes=15)
    stack.repo.add(conf, connected(1))
    await stack.lifecycle.warn(conf)
    await stack.lifecycle.deadline(stack.repo.conferences[1])
    await stack.lifecycle.warn(stack.repo.conferences[1])
    assert stack.repo.kinds(1).count("conference.warned") == 2


async def test_no_auto_extension_for_an_empty_room(stack: Stack) -> None:
    conf = conference(auto_extend_minutes=15)
    stack.repo.add(conf, participant(1, state=ParticipantState.LEFT))
    ended = await stack.lifecycle.deadline(conf)
    assert ended is not None and ended.state == ConferenceState.ENDED
    assert "conference.extended" not in stack.repo.kinds(1) and stack.node.originates == []


async def test_the_end_hangs_up_the_room_and_cancels_calls_in_progress(stack: Stack) -> None:
    conf = conference()
    stack.repo.add(conf, connected(1), participant(2, "375291234568", state=ParticipantState.RINGING,
                                                   call_id="vo-00000000000000aa", node_id="ast1"))
    ended = await stack.lifecycle.deadline(conf)
    assert ended is not None and ended.state == ConferenceState.ENDED
    assert len(announcements(stack)) == 1  # the ending is announced (and awaited) before the hang-up
    assert "vo-00000000000000aa" in stack.node.hangups
    assert stack.states() == {1: "left", 2: "failed"}
    assert stack.repo.participants_by_id[2].failure_reason == FailureReason.CANCELLED
    assert await stack.lifecycle.deadline(conf) is None  # over already: nothing happens twice
    assert stack.repo.kinds(1).count("conference.ended") == 1


async def test_a_manual_extension_takes_a_listed_step_and_respects_the_cap(stack: Stack) -> None:
    conf = conference(extend_cap_minutes=30)
    stack.repo.add(conf, connected(1))
    with pytest.raises(ValidationError):
        await stack.live.extend(conf.owner_id, 1, 20)
    extended = await stack.live.extend(conf.owner_id, 1, 30)
    assert extended.ends_at == conf.ends_at + timedelta(minutes=30)
    with pytest.raises(LimitExceeded):
        await stack.live.extend(conf.owner_id, 1, 15)
    assert stack.repo.conferences[1].extended_minutes == 30


async def test_the_scheduler_warns_and_ends_what_is_due_once_each(stack: Stack) -> None:
    now = datetime.now(UTC)
    stack.repo.add(conference(id=1, ends_at=now + timedelta(seconds=60)), connected(1))  # within the warning
    stack.repo.add(conference(id=2, room="veche-2", ends_at=now - timedelta(seconds=1)))  # its end has come
    stack.repo.add(conference(id=3, room="veche-3", ends_at=now + timedelta(hours=1)))  # nothing due
    scheduler = Scheduler(stack.settings, stack.lifecycle)
    assert await scheduler.run_due() == 2
    assert await scheduler.run_due() == 0  # both jobs still in flight: not started twice
    await until(lambda: stack.repo.kinds(1) == ["conference.warned"] and "conference.ended" in stack.repo.kinds(2))
    assert stack.repo.conferences[2].state == ConferenceState.ENDED
    assert stack.repo.conferences[3].state == ConferenceState.RUNNING and stack.repo.kinds(3) == []
    await scheduler.stop()
    assert await Scheduler(stack.settings, stack.lifecycle).run_due() == 0  # warned once, ended once


async def test_the_scheduler_starts_every_due_conference_in_one_decision(stack: Stack) -> None:
    now = datetime.now(UTC)
    due = dict(state=ConferenceState.SCHEDULED, starts_at=now - timedelta(seconds=1), ends_at=now + timedelta(hours=1),
               auto_invite=False)
    stack.repo.add(conference(id=1, **due))
    stack.repo.add(conference(id=2, room="veche-2", **due))
    stack.repo.add(conference(id=3, room="veche-3", owner_id=9, **due))  # its account is blocked
    stack.repo.add(conference(id=4, room="veche-4", **{**due, "starts_at": now - timedelta(hours=2),
                                                       "ends_at": now - timedelta(hours=1)}))  # missed
    stack.repo.add(conference(id=5, room="veche-5", **{**due, "starts_at": now + timedelta(hours=1),
                                                       "ends_at": now + timedelta(hours=2)}))  # not yet
    stack.repo.blocked.add(9)
    scheduler = Scheduler(stack.settings, stack.lifecycle)
    assert await scheduler.run_due() == 4
    await until(lambda: all(stack.repo.kinds(c) for c in (1, 2, 3, 4)))
    for cid in (1, 2):
        started = stack.repo.conferences[cid]
        assert started.state == ConferenceState.RUNNING and started.started_at >= started.starts_at
        assert stack.repo.kinds(cid) == ["conference.started"]
    assert stack.repo.conferences[1].started_at == stack.repo.conferences[2].started_at  # one decision
    assert stack.repo.conferences[3].state == ConferenceState.FAILED
    assert stack.repo.conferences[3].end_reason == "account_blocked"
    assert stack.repo.conferences[4].state == ConferenceState.FAILED
    assert stack.repo.conferences[4].end_reason == "missed"
    assert stack.repo.conferences[5].state == ConferenceState.SCHEDULED and stack.repo.kinds(5) == []
    await scheduler.stop()
