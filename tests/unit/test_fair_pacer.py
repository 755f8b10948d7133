"""The dial-out pacer (engine/services/pacer.py Pacer): at most ``rate`` slots per second, handed
out to the waiting accounts in turn, so a long blast of one account delays another account by at
most one slot per other waiting account (asserted on the order of slots, not on wall time), and
the system-wide cap of concurrent outbound calls as a setting."""

from __future__ import annotations

import asyncio

import pytest

from engine.config import Settings
from engine.domain.errors import ConfigError
from engine.services.pacer import Pacer

FAST = 500.0  # slots per second: quick tests; the order does not depend on the rate


async def _take(pacer: Pacer, key: object, label: str, order: list[str]) -> None:
    await pacer.wait(key)
    order.append(label)


def _most_slots_of_others_while_waiting(history: list[tuple[str, object]], key: object) -> int:
    """The most slots other keys got in a row while ``key`` had someone waiting."""
    waiting, run, most = 0, 0, 0
    for kind, who in history:
        if who == key:
            if kind == "wait":
                waiting += 1
            else:
                waiting, run = waiting - 1, 0
        elif kind == "slot" and waiting:
            run += 1
            most = max(most, run)
    return most


async def test_a_blast_delays_another_account_by_at_most_one_slot() -> None:
    pacer = Pacer(FAST)
    order: list[str] = []
    blast = [asyncio.create_task(_take(pacer, "A", f"A{i}", order)) for i in range(200)]
    while len(order) < 3:  # A's blast is under way before B asks
        await asyncio.sleep(0.001)
    small = [asyncio.create_task(_take(pacer, "B", f"B{i}", order)) for i in range(3)]
    await asyncio.gather(*small)
    assert pacer.waiting("A") > 100  # B went through long before the blast ended
    assert _most_slots_of_others_while_waiting(list(pacer.history), "B") <= 1, list(pacer.history)[:20]
    await asyncio.gather(*blast)
    assert [x for x in order if x.startswith("A")] == [f"A{i}" for i in range(200)]  # A keeps its own order
    assert pacer.waiting() == 0


async def test_three_accounts_take_turns_one_slot_each() -> None:
    pacer = Pacer(FAST)
    order: list[str] = []
    tasks = [asyncio.create_task(_take(pacer, key, f"{key}{i}", order)) for key in "ABC" for i in range(4)]
    await asyncio.gather(*tasks)
    assert order == ["A0", "B0", "C0", "A1", "B1", "C1", "A2", "B2", "C2", "A3", "B3", "C3"]


async def test_the_rate_holds_across_accounts() -> None:
    rate = 50.0
    pacer = Pacer(rate)
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def take(key: str) -> None:
        await pacer.wait(key)
        times.append(loop.time())

    await asyncio.gather(*(take(key) for key in "ABCDE" for _ in range(3)))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) == 15
    assert min(gaps) >= (1 / rate) * 0.9, gaps  # never two slots closer than the interval


async def test_a_waiter_that_gives_up_frees_its_slot_for_the_next() -> None:
    pacer = Pacer(FAST)
    order: list[str] = []
    first = asyncio.create_task(_take(pacer, "A", "A0", order))
    doomed = asyncio.create_task(_take(pacer, "A", "A1", order))
    last = asyncio.create_task(_take(pacer, "A", "A2", order))
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.gather(first, last)
    assert order == ["A0", "A2"]
    assert pacer.waiting() == 0


async def test_rate_zero_means_no_pacing() -> None:
    pacer = Pacer(0)
    await asyncio.wait_for(asyncio.gather(*(pacer.wait(k) for k in range(100))), 1.0)


async def test_close_cancels_every_waiter_and_the_hand_out() -> None:
    pacer = Pacer(1.0)  # one slot per second: most wait when close comes
    tasks = [asyncio.create_task(pacer.wait(key)) for key in ("A", "A", "B", "C")]
    await asyncio.sleep(0.01)
    await pacer.close()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 3  # the first had its slot
    assert pacer.waiting() == 0


def test_the_system_cap_setting_is_read_and_checked() -> None:
    assert Settings.from_env({}).max_concurrent_calls == 200
    assert Settings.from_env({"VECHE_MAX_CONCURRENT_CALLS": "7"}).max_concurrent_calls == 7
    for bad in ("0", "-3", "many"):
        with pytest.raises(ConfigError, match="VECHE_MAX_CONCURRENT_CALLS"):
            Settings.from_env({"VECHE_MAX_CONCURRENT_CALLS": bad})
