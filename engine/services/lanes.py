"""Work in arrival order per key and concurrently between keys: the call tracker handles each
call's events in order without one call's database writes holding up every other call's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

Work = Callable[[], Awaitable[None]]


class Lanes:
    """One queue per key; a key's work runs one item after another in submission order, the keys
    run side by side. An item that fails is logged and the lane goes on with the next."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queues: dict[Hashable, deque[Work]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, key: Hashable, work: Work) -> None:
        """Queue ``work`` behind the earlier work of ``key``."""
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(work)
            return
        self._queues[key] = deque((work,))
        task = asyncio.get_running_loop().create_task(self._run(key), name=f"{self.name}-lane")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self, key: Hashable) -> None:
        """Return once the work of ``key`` submitted so far is done."""
        if key not in self._queues:
            return
        done = asyncio.get_running_loop().create_future()

        async def mark() -> None:
            done.set_result(None)

        self.submit(key, mark)
        await done

    @property
    def busy(self) -> int:
        """How many keys have work queued or running."""
        return len(self._queues)

    async def _run(self, key: Hashable) -> None:
        queue = self._queues[key]
        try:
            while queue:
                work = queue.popleft()
                try:
                    await work()
                except Exception:  # noqa: BLE001 - one bad item must not stop the lane
                    log.exception("%s: work of %r failed", self.name, key)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]

    async def drain(self) -> None:
        """Return once every lane is empty (work submitted meanwhile included)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the queued and running work."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._queues.clear()
