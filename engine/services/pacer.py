"""The dial-out pacer: dials spaced out to the configured calls per second, fairly
between accounts."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Hashable


class Pacer:
    """Spaces out actions to at most ``rate`` per second, fairly between queues: every key (an
    account) has its own first-come queue and the keys with someone waiting take turns, one
    slot each. A newcomer joins the end of the current round, so one account's long blast
    delays another account's first action by at most one slot per other waiting account."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._queues: dict[Hashable, deque[asyncio.Future[None]]] = {}
        self._turns: deque[Hashable] = deque()  # keys with a waiter, in the order they get a slot
        self._runner: asyncio.Task[None] | None = None
        # ("wait", key) when someone asks, ("slot", key) when a slot is given: the order tells
        # how long each account waited, in slots (observability and tests)
        self.history: deque[tuple[str, Hashable]] = deque(maxlen=10000)

    def waiting(self, key: Hashable | None = None) -> int:
        """How many wait for a slot (of one key, or in all)."""
        if key is not None:
            return len(self._queues.get(key, ()))
        return sum(len(queue) for queue in self._queues.values())

    async def wait(self, key: Hashable = None) -> None:
        """Return when it is the caller's slot (``key`` names the caller's queue)."""
        if self.interval <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._turns.append(key)
        queue.append(waiter)
        self.history.append(("wait", key))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._hand_out(), name="pacer")
        await waiter

    async def close(self) -> None:
        """Stop handing out slots (the engine stops): every waiter is cancelled."""
        for queue in self._queues.values():
            for waiter in queue:
                waiter.cancel()
        self._queues.clear()
        self._turns.clear()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def _hand_out(self) -> None:
        """Give the slots out, one key per slot in turn, until no one waits."""
        loop = asyncio.get_running_loop()
        while self._turns:
            now = loop.time()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                continue
            key = self._turns.popleft()
            queue = self._queues[key]
            waiter = queue.popleft()
            if queue:
                self._turns.append(key)
            else:
                del self._queues[key]
            if waiter.done():
                continue  # its caller gave up waiting: the slot goes to the next one
            waiter.set_result(None)
            self.history.append(("slot", key))
            self._next = max(now, self._next) + self.interval
