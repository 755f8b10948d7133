"""The periodic chore of a service (purging rows that expired): done once at start and then every
interval, surviving a database hiccup, cancelled at stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Housekeeper:
    def __init__(self, name: str, interval_seconds: float, chore: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval_seconds = interval_seconds
        self.chore = chore
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.chore()
        self._task = asyncio.create_task(self._forever(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await self.chore()
            except Exception:  # a database hiccup: try again next round
                log.exception("%s failed", self.name)
