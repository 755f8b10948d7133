"""Writes that arrive together go together (engine/services/batches.py Coalescer): one write in
flight, the items submitted meanwhile in the next one, each submitter gets its own result."""

from __future__ import annotations

import asyncio

import pytest

from engine.services.batches import Coalescer


async def test_items_submitted_while_a_write_is_in_flight_go_into_the_next_one() -> None:
    writes: list[list[int]] = []
    gate = asyncio.Event()

    async def write(batch: dict[int, str]) -> dict[int, str]:
        writes.append(sorted(batch))
        if len(writes) == 1:
            await gate.wait()
        return {key: item.upper() for key, item in batch.items() if key != 3}

    coalescer: Coalescer[int, str, str | None] = Coalescer(write, missing=None)
    first = asyncio.ensure_future(coalescer.submit(1, "a"))
    await asyncio.sleep(0.01)  # the first write is in flight
    rest = [asyncio.ensure_future(coalescer.submit(key, item)) for key, item in ((2, "b"), (3, "c"), (4, "d"))]
    await asyncio.sleep(0.01)
    assert coalescer.waiting(2) and not coalescer.waiting(1)
    gate.set()
    assert await first == "A"
    assert await asyncio.gather(*rest) == ["B", None, "D"]  # 3 was left out of the result: missing
    assert writes == [[1], [2, 3, 4]]


async def test_a_failed_write_fails_each_of_its_submitters_and_the_next_write_goes_on() -> None:
    calls = 0

    async def write(batch: dict[str, None]) -> dict[str, bool]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database gone")
        return dict.fromkeys(batch, True)

    coalescer: Coalescer[str, None, bool] = Coalescer(write, missing=False)
    failing = [asyncio.ensure_future(coalescer.submit(room, None)) for room in ("r1", "r2")]
    for outcome in await asyncio.gather(*failing, return_exceptions=True):
        assert isinstance(outcome, RuntimeError)
    assert await coalescer.submit("r1", None) is True
    await coalescer.close()


async def test_a_cancelled_submitter_does_not_cancel_the_write_of_the_others() -> None:
    gate = asyncio.Event()

    async def write(batch: dict[int, None]) -> dict[int, int]:
        await gate.wait()
        return {key: key * 10 for key in batch}

    coalescer: Coalescer[int, None, int] = Coalescer(write, missing=0)
    impatient = asyncio.ensure_future(coalescer.submit(1, None))
    patient = asyncio.ensure_future(coalescer.submit(2, None))
    await asyncio.sleep(0.01)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    gate.set()
    assert await patient == 20


async def test_a_lingering_write_takes_the_whole_burst_and_leaves_out_what_was_withdrawn() -> None:
    writes: list[list[int]] = []

    async def write(batch: dict[int, None]) -> dict[int, bool]:
        writes.append(sorted(batch))
        return dict.fromkeys(batch, True)

    coalescer: Coalescer[int, None, bool] = Coalescer(write, missing=False, linger=0.05)
    burst = [asyncio.ensure_future(coalescer.submit(key, None)) for key in (1, 2, 3)]
    await asyncio.sleep(0)  # all three wait; the write lingers
    assert coalescer.withdraw(2) and not coalescer.withdraw(2)
    assert await asyncio.gather(*burst) == [True, False, True]  # the withdrawn one gets ``missing``
    assert writes == [[1, 3]]
    alone = asyncio.ensure_future(coalescer.submit(4, None))
    await asyncio.sleep(0)
    assert coalescer.withdraw(4)
    assert await alone is False
    await asyncio.sleep(0.1)
    assert writes == [[1, 3]]  # nothing left to write: no empty write


async def test_a_write_lingers_while_more_than_one_is_coming_and_the_last_item_is_written_alone_at_once() -> None:
    started: list[list[int]] = []
    gates = {1: asyncio.Event(), 6: asyncio.Event()}  # writes held in flight, by their first key
    coming = 3

    async def write(batch: dict[int, None]) -> dict[int, bool]:
        started.append(sorted(batch))
        gate = gates.get(min(batch))
        if gate is not None:
            await gate.wait()
        return dict.fromkeys(batch, True)

    async def turns() -> None:  # what a few loop turns settle (no timer in this test can)
        for _ in range(20):
            await asyncio.sleep(0)

    # a linger far longer than the test may take: only the items can end it in time
    coalescer: Coalescer[int, None, bool] = Coalescer(write, missing=False, linger=600.0, coming=lambda: coming)
    first = asyncio.ensure_future(coalescer.submit(1, None))
    await turns()  # the write waits for company: more are coming
    coming = 2
    second = asyncio.ensure_future(coalescer.submit(2, None))
    await turns()
    assert coalescer.waiting(1) and coalescer.waiting(2) and started == []
    coming = 1  # the item before the last ends the wait
    third = asyncio.ensure_future(coalescer.submit(3, None))
    await turns()
    assert started == [[1, 2, 3]]
    coming = 0  # the last is written at once, beside the burst's write, and does not wait for it
    assert await asyncio.wait_for(coalescer.submit(4, None), 10) is True
    assert started == [[1, 2, 3], [4]] and not first.done()
    await turns()
    # at most one write beside the writer's: while both run, an item waits
    beside = asyncio.ensure_future(coalescer.submit(6, None))
    await turns()
    later = asyncio.ensure_future(coalescer.submit(7, None))
    await turns()
    assert started == [[1, 2, 3], [4], [6]] and coalescer.waiting(7)
    gates[6].set()
    assert await asyncio.wait_for(beside, 10) is True
    await turns()
    # a key whose write is in flight is not written beside it; the next item goes beside the
    # writer's write again, with what waited
    again = asyncio.ensure_future(coalescer.submit(2, None))
    assert await asyncio.wait_for(later, 10) is True
    assert started == [[1, 2, 3], [4], [6], [7]] and coalescer.waiting(2)
    gates[1].set()
    assert await asyncio.wait_for(asyncio.gather(first, second, third, again), 10) == [True] * 4
    assert started == [[1, 2, 3], [4], [6], [7], [2]]
    # nothing more coming: the next item is written at once, without the linger
    assert await asyncio.wait_for(coalescer.submit(5, None), 10) is True
    assert started[-1] == [5]


async def test_closing_cancels_the_submitters_of_the_writes_in_flight() -> None:
    async def write(batch: dict[int, None]) -> dict[int, bool]:
        await asyncio.Event().wait()
        return {}

    coalescer: Coalescer[int, None, bool] = Coalescer(write, missing=False)
    waiter = asyncio.ensure_future(coalescer.submit(1, None))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await coalescer.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiter, 10)
