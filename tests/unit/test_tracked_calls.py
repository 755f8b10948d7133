"""Who a call belongs to (engine/services/participant_states.py): the events of a call no
participant was given are nobody's without a database look-up; calls stored before the start, a
dial-in caller's token is looked up, and a call in its room is known until it hangs up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from engine.domain.model import ParticipantState
from tests.unit.fakes import Stack, build, conference, count_look_ups, participant

TOKEN = "vi-0123456789abcdef"


@pytest.fixture
async def counted() -> AsyncIterator[tuple[Stack, list[str]]]:
    stack = build(calls_per_second=0)
    looked_up = count_look_ups(stack.repo)
    stack.repo.add(conference(), participant(1, origin="dialout", state=ParticipantState.RINGING,
                                             call_id="vo-0123456789abcdef", node_id="ast1"))
    await stack.start()
    yield stack, looked_up
    await stack.stop()


async def test_the_events_of_a_call_nobody_was_given_need_no_look_up(counted: tuple[Stack, list[str]]) -> None:
    stack, looked_up = counted
    for name in ("ConfbridgeJoin", "ConfbridgeTalking", "ConfbridgeLeave", "Hangup"):
        await stack.node.emit(name, Uniqueid="1700000000.77", Channel="PJSIP/other-00000009",
                              Conference="veche-1", TalkingStatus="on", Muted="no", Cause="16")
    assert looked_up == []


async def test_a_call_stored_before_the_start_is_followed(counted: tuple[Stack, list[str]]) -> None:
    stack, looked_up = counted
    await stack.node.emit("ConfbridgeJoin", Uniqueid="vo-0123456789abcdef", Conference="veche-1", Muted="no",
                          Channel="Local/375291234567@veche-dialout-0000000a;1")
    assert looked_up == ["vo-0123456789abcdef"] and stack.states() == {1: "connected"}


async def test_a_dial_in_token_is_looked_up_and_the_learned_channel_is_followed(
        counted: tuple[Stack, list[str]]) -> None:
    stack, looked_up = counted
    stack.repo.add(conference(), participant(2, origin="dialin", state=ParticipantState.CALLING, call_id=TOKEN,
                                             node_id="ast1"))
    channel = {"Channel": "PJSIP/pstn-00000005", "ChanVariable": f"VECHE_PARTICIPANT={TOKEN}"}
    await stack.node.emit("ConfbridgeJoin", Uniqueid="1700000000.5", Conference="veche-1", Muted="no", **channel)
    assert stack.states()[2] == "connected"
    looked_up.clear()
    await stack.node.emit("ConfbridgeLeave", Uniqueid="1700000000.5", Conference="veche-1", **channel)
    await stack.node.emit("Hangup", Uniqueid="1700000000.5", Cause="16", **channel)
    # the participant is known from its join: its leave and its hang-up need no look-up
    assert looked_up == [] and stack.states()[2] == "left"
    assert stack.repo.participants_by_id[2].hangup_cause == 16
    await stack.node.emit("ConfbridgeTalking", Uniqueid="1700000000.5", Conference="veche-1", TalkingStatus="on",
                          Channel="PJSIP/pstn-00000005")
    assert looked_up == []  # the call ended: its late events are nobody's


async def test_a_late_leave_of_a_call_the_participant_has_moved_off_leaves_it_connected(
        counted: tuple[Stack, list[str]]) -> None:
    stack, _ = counted
    await stack.node.emit("ConfbridgeJoin", Uniqueid="vo-0123456789abcdef", Conference="veche-1", Muted="no",
                          Channel="Local/375291234567@veche-dialout-0000000a;1")
    assert stack.states() == {1: "connected"}
    # the participant moved to another call (its node failed and it was dialled from another)
    moved = stack.repo.participants_by_id[1] = replace(stack.repo.participants_by_id[1], call_id="vo-fedcba9876543210",
                                                       node_id="ast2")
    await stack.node.emit("ConfbridgeLeave", Uniqueid="vo-0123456789abcdef", Conference="veche-1")
    await stack.node.emit("Hangup", Uniqueid="vo-0123456789abcdef", Cause="16")
    assert stack.repo.participants_by_id[1] == moved and "participant.left" not in stack.repo.kinds(1)
