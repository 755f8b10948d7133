"""The call tracker's order rules (engine/services/lanes.py Lanes, engine/services/calls.py
CallService): a call's events are handled in arrival order, calls side by side; a talking change
reaches the console before its database writes, which keep the participant's order (behind a
backlog only the latest flag is written), and a leave waits for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from engine.domain.model import ParticipantState
from engine.services.lanes import Lanes
from tests.unit.fakes import Stack, build, conference, participant, until

CALL = "1700000000.5"


async def test_a_keys_work_runs_in_order_and_other_keys_do_not_wait_for_it() -> None:
    lanes = Lanes("test")
    done: list[str] = []
    release = asyncio.Event()

    def work(name: str, gate: asyncio.Event | None = None):  # noqa: ANN202
        async def run() -> None:
            if gate is not None:
                await gate.wait()
            done.append(name)
        return run

    lanes.submit("a", work("a1", release))
    lanes.submit("a", work("a2"))
    lanes.submit("b", work("b1"))
    await until(lambda: done == ["b1"])  # b does not wait for a's first item
    release.set()
    await lanes.drain()
    assert done == ["b1", "a1", "a2"] and lanes.busy == 0


async def test_a_failing_item_does_not_stop_its_lane() -> None:
    lanes = Lanes("test")
    done: list[int] = []

    async def boom() -> None:
        raise RuntimeError("bad")

    async def ok() -> None:
        done.append(1)

    lanes.submit("k", boom)
    lanes.submit("k", ok)
    await lanes.drain()
    assert done == [1]


async def test_idle_waits_for_the_work_of_one_key_only() -> None:
    lanes = Lanes("test")
    gate_a, gate_b = asyncio.Event(), asyncio.Event()

    async def wait(gate: asyncio.Event) -> None:
        await gate.wait()

    lanes.submit("a", lambda: wait(gate_a))
    lanes.submit("b", lambda: wait(gate_b))
    idle_a = asyncio.ensure_future(lanes.idle("a"))
    await asyncio.sleep(0)
    assert not idle_a.done()
    gate_a.set()
    await asyncio.wait_for(idle_a, 5)  # b still busy
    assert lanes.busy == 1
    gate_b.set()
    await lanes.drain()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    built = build(calls_per_second=0)
    await built.start()
    yield built
    await built.stop()


async def joined(stack: Stack) -> None:
    stack.repo.add(conference(), participant(1, origin="dialin", state=ParticipantState.CALLING, call_id=CALL,
                                             node_id="ast1"))
    stack.calls.states.track_call(CALL)  # the caller's channel, learned as the tracker learns it
    await stack.node.emit("ConfbridgeJoin", Uniqueid=CALL, Channel="PJSIP/pstn-00000005", Conference="veche-1",
                          Muted="no")
    assert stack.states() == {1: "connected"}


async def test_talking_reaches_the_console_before_the_write_and_the_writes_keep_their_order(stack: Stack) -> None:
    await joined(stack)
    written: list[bool] = []
    gate = asyncio.Event()
    update = stack.repo.update_participant

    async def slow_update(participant_id: int, **changes):  # noqa: ANN003, ANN202
        if "talking" in changes:
            await gate.wait()
            written.append(changes["talking"])
        return await update(participant_id, **changes)

    stack.repo.update_participant = slow_update  # type: ignore[method-assign]
    stack.node.settle.clear()  # emit returns before the writes: the console's view is what is asserted
    for on in ("on", "off", "on"):
        await stack.node.emit("ConfbridgeTalking", Uniqueid=CALL, Channel="PJSIP/pstn-00000005",
                              Conference="veche-1", TalkingStatus=on)
    await until(lambda: len([e for e in stack.published if e.kind == "participant.talking"]) == 3)
    heard = [e.data["talking"] for e in stack.published if e.kind == "participant.talking"]
    assert heard == [True, False, True] and written == []  # the console heard all three, nothing written yet
    gate.set()
    await stack.calls.settled()
    # behind a backlog only the latest change need be written; the stored flag ends as the last change
    assert written and written[-1] is True and stack.repo.participants_by_id[1].talking is True


async def test_a_leave_waits_for_the_participants_talking_writes(stack: Stack) -> None:
    await joined(stack)
    gate = asyncio.Event()
    update = stack.repo.update_participant
    order: list[str] = []

    async def slow_update(participant_id: int, **changes):  # noqa: ANN003, ANN202
        if "talking" in changes and "state" not in changes:  # the tracker's talking write, not the leave's
            await gate.wait()
            order.append("talking")
        return await update(participant_id, **changes)

    mark_left = stack.repo.mark_left

    async def left(leaves):  # noqa: ANN001, ANN202
        order.append("left")
        return await mark_left(leaves)

    stack.repo.update_participant = slow_update  # type: ignore[method-assign]
    stack.repo.mark_left = left  # type: ignore[method-assign]
    stack.node.settle.clear()
    await stack.node.emit("ConfbridgeTalking", Uniqueid=CALL, Conference="veche-1", TalkingStatus="on")
    await stack.node.emit("ConfbridgeLeave", Uniqueid=CALL, Conference="veche-1")
    await asyncio.sleep(0.01)
    assert order == []  # the leave waits behind the talking write
    gate.set()
    await stack.calls.settled()
    assert order == ["talking", "left"] and stack.states() == {1: "left"}
    assert stack.repo.participants_by_id[1].talking is False
