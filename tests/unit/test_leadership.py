"""The leader lease's rules over a fake lease store with a hand-moved clock: a standby waits
while the lease is live and takes it when it lapses; the active engine renews it; an engine that
cannot renew in time is deposed and drops its fencing token at once; a clean stop gives it back."""

from __future__ import annotations

import asyncio

import pytest

from engine.adapters.db.lease import LEASE_NAME, Fence, LeaseHolder
from engine.config import Settings
from engine.domain.errors import ConfigError, NotActiveEngine
from engine.services.leadership import Leadership


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLeaseStore:
    """The lease row's rules (engine/adapters/db/lease.py) on the fake clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.holder: str | None = None
        self.token = 0
        self.expires = 0.0
        self.failing = False  # the database cannot be reached
        self.released: list[int] = []

    async def acquire(self, holder: str, seconds: float) -> int | None:
        if self.failing:
            raise OSError("connection refused")
        if self.holder is not None and self.expires > self.clock() and self.holder != holder:
            return None
        self.holder, self.token, self.expires = holder, self.token + 1, self.clock() + seconds
        return self.token

    async def renew(self, token: int, seconds: float) -> bool:
        if self.failing:
            raise OSError("connection refused")
        if token != self.token or self.expires <= self.clock():
            return False
        self.expires = self.clock() + seconds
        return True

    async def release(self, token: int) -> None:
        if token == self.token:
            self.expires = self.clock()
            self.released.append(token)

    async def current(self) -> LeaseHolder | None:
        return None

    async def check(self, token: int | None) -> None:
        """What dialout_grant asks PostgreSQL of Fence.lease inside a dial-out claim."""
        if token is None or token != self.token or self.expires <= self.clock():
            raise NotActiveEngine("stale")


SETTINGS = Settings(lease_seconds=5.0, lease_renew_seconds=0.01)


def engine(store: FakeLeaseStore, clock: Clock, engine_id: str) -> Leadership:
    return Leadership(SETTINGS.with_(engine_id=engine_id), store, Fence(enabled=True), clock=clock)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.02)


async def test_the_standby_waits_while_the_lease_is_live_and_takes_it_when_it_lapses() -> None:
    clock = Clock()
    store = FakeLeaseStore(clock)
    first, second = engine(store, clock, "engine-1"), engine(store, clock, "engine-2")
    await first.acquire()
    assert first.active and first.fence.token == 1
    waiting = asyncio.create_task(second.acquire())
    await settle()
    assert not waiting.done() and not second.active  # the active engine keeps renewing
    first._renewer.cancel()  # the active engine dies (kill -9): nobody renews
    await settle()
    assert not waiting.done()
    clock.now += 5.0  # the lease lapses
    await asyncio.wait_for(waiting, 1)
    assert second.active and second.fence.token == 2
    await store.check(second.fence.token)
    with pytest.raises(NotActiveEngine):
        await store.check(1)  # the old token claims nothing
    await second.release()


async def test_an_engine_that_cannot_renew_in_time_is_deposed() -> None:
    clock = Clock()
    store = FakeLeaseStore(clock)
    leader = engine(store, clock, "engine-1")
    changes: list[bool] = []
    await leader.acquire()
    leader.on_change(changes.append)
    store.failing = True
    await settle()
    assert leader.active  # a failed renewal is retried while the lease may still be live
    clock.now += 5.0
    await asyncio.wait_for(leader.deposed.wait(), 1)
    assert not leader.active and leader.fence.token is None  # dropped at once, before the database says so
    assert changes == [True, False]


async def test_a_lease_taken_by_the_other_engine_deposes_the_old_one() -> None:
    clock = Clock()
    store = FakeLeaseStore(clock)
    paused = engine(store, clock, "engine-1")
    await paused.acquire()
    paused._renewer.cancel()  # paused (SIGSTOP): it renews nothing
    clock.now += 6.0
    other = engine(store, clock, "engine-2")
    await other.acquire()
    with pytest.raises(NotActiveEngine):
        await store.check(paused.fence.token)  # woken up, its dial-out claims fail
    paused._renewer = asyncio.create_task(paused._renew_loop())  # and its next renewal deposes it
    await asyncio.wait_for(paused.deposed.wait(), 1)
    assert not paused.active and other.active
    await other.release()


async def test_a_clean_stop_gives_the_lease_back() -> None:
    clock = Clock()
    store = FakeLeaseStore(clock)
    leader = engine(store, clock, "engine-1")
    await leader.acquire()
    await leader.release()
    assert store.released == [1] and not leader.active
    follower = engine(store, clock, "engine-2")
    await asyncio.wait_for(follower.acquire(), 1)  # at once, without waiting for the lapse
    assert follower.fence.token == 2
    await follower.release()


async def test_the_standby_keeps_asking_through_a_database_outage() -> None:
    clock = Clock()
    store = FakeLeaseStore(clock)
    store.failing = True
    standby = engine(store, clock, "engine-1")
    waiting = asyncio.create_task(standby.acquire())
    await settle()
    assert not waiting.done()
    store.failing = False
    await asyncio.wait_for(waiting, 1)
    await standby.release()


def test_a_fence_without_a_lease_lets_every_claim_pass() -> None:
    assert Fence(enabled=False).lease() == (None, None)  # dialout_grant checks no lease
    standby = Fence(enabled=True)
    assert standby.lease() == (LEASE_NAME, None)  # a standby holds no token: no lease row matches
    assert isinstance(standby.refusal(), NotActiveEngine)


@pytest.mark.parametrize(("env", "fragment"), [
    ({"VECHE_LEASE_SECONDS": "3", "VECHE_LEASE_RENEW_SECONDS": "2"}, "at least twice"),
    ({"VECHE_LEASE_RENEW_SECONDS": "0"}, "at least twice"),
    ({"VECHE_ENGINE_ID": "engine 1"}, "VECHE_ENGINE_ID"),
    ({"VECHE_AGI_ADDRESSES": "10.0.0.5"}, "host:port"),
])
def test_pair_settings_are_checked(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env(env)


def test_the_dialplan_tries_every_engine_in_turn(tmp_path) -> None:
    from engine.stack import render_asterisk_config

    settings = Settings.from_env({"VECHE_ENGINE_ID": "engine-1",
                                  "VECHE_AGI_ADDRESSES": "10.0.0.5:4573,10.0.0.6:4573", "VECHE_AGI_SECRET": "s" * 32})
    dialplan = (render_asterisk_config(settings, tmp_path) / "extensions.conf").read_text()
    dialin = dialplan[dialplan.index("[veche-dialin]"):dialplan.index("[veche-trunk]")]
    assert "VECHE_AGI = agi://10.0.0.5:4573" in dialplan
    assert dialin.index("AGI(${VECHE_AGI}/dialin") < dialin.index('"${AGISTATUS}" != "FAILURE"') \
        < dialin.index("AGI(agi://10.0.0.6:4573/dialin?node=ast1,${VECHE_AGI_SECRET},${VECHE_FIRST})")
    assert "AGI(agi://10.0.0.6:4573/keypad?node=ast1,${VECHE_AGI_SECRET})" in dialplan


async def test_an_engine_paused_between_claim_and_originate_sends_nothing() -> None:
    """The claim took the slot with a live token, but the lease lapsed before the pacer let the
    Originate go (the process was paused): the Originate is not sent; the other engine dials."""
    import time

    from tests.unit.fakes import build, conference, participant, quiet, until

    stack = build(calls_per_second=0, retry_delay_seconds=0)
    stack.slots.fence = Fence(enabled=True)
    stack.slots.fence.token, stack.slots.fence.valid_until = 7, time.monotonic() - 0.1  # lapsed
    await stack.start()
    try:
        conf = conference()
        stack.repo.add(conf, participant(1, "375291234567"), participant(2, "375291234568"))
        assert await stack.calls.dial(conf, [stack.repo.participants_by_id[1]]) == [1]
        await until(quiet)
        assert stack.dialled() == [] and stack.dialout.originates == 0
        stack.slots.fence.valid_until = time.monotonic() + 60  # a live lease dials
        assert await stack.calls.dial(conf, [stack.repo.participants_by_id[2]]) == [2]
        await until(lambda: len(stack.dialled()) == 1)
    finally:
        await stack.stop()


async def test_a_scheduler_whose_lease_lapsed_starts_and_ends_nothing() -> None:
    """Woken from a pause past its lease, the scheduler acts on nothing due before the engine
    notices it was deposed; with the lease live it acts as usual."""
    from datetime import UTC, datetime, timedelta

    from engine.services.scheduler import Scheduler
    from tests.unit.fakes import build, conference

    stack = build(calls_per_second=0)
    stack.repo.add(conference(id=1, ends_at=datetime.now(UTC) - timedelta(seconds=1)))  # its end has come
    lease_live = False
    scheduler = Scheduler(stack.settings, stack.lifecycle, active=lambda: lease_live)
    assert await scheduler.run_due() == 0 and stack.repo.kinds(1) == []
    lease_live = True
    assert await scheduler.run_due() == 1
    await scheduler.stop()
