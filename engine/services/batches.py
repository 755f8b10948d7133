"""Writes that arrive together go to the database together: a dial-out's burst makes its calls
ring and join within milliseconds of each other, and one statement for all of them costs the
shared cores far less than one each (the engine and Asterisk compete for the same CPUs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Key, Item, Result]):
    """One write in flight at a time; the items submitted meanwhile go into the next one.
    ``write`` gets {key: item} and returns {key: result} (a key left out gets ``missing``). An
    item submitted again while its key waits keeps its first submission's place and result.
    Without ``linger`` a write starts as soon as nothing is in flight: the first item of a burst
    is written at once, and the rest, arriving while that write runs, goes into the next one.
    With it, each write first waits that long for more items, and an item may be withdrawn
    meanwhile (a later write made it moot). ``linger_while`` says whether more items are on their
    way: only then does a write wait, and an item submitted once it says no ends the wait (the
    last item of a burst is not held back for company that will not come)."""

    def __init__(self, write: Callable[[dict[Key, Item]], Awaitable[dict[Key, Result]]], missing: Result, *,
                 linger: float = 0.0, linger_while: Callable[[], bool] | None = None) -> None:
        self._write = write
        self._missing = missing
        self._linger = linger
        self._linger_while = linger_while
        self._waiting: dict[Key, tuple[Item, asyncio.Future[Result]]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._lingering: asyncio.Future[None] | None = None  # set while a write waits for company

    def waiting(self, key: Key) -> bool:
        """Whether ``key`` waits for a write that has not finished."""
        return key in self._waiting

    def withdraw(self, key: Key) -> bool:
        """Drop ``key`` if it still waits for its write (its submitter gets ``missing``); False
        when it does not wait or its write has begun."""
        queued = self._waiting.pop(key, None)
        if queued is None:
            return False
        if not queued[1].done():
            queued[1].set_result(self._missing)
        return True

    async def submit(self, key: Key, item: Item) -> Result:
        """The result of writing ``item``, once the write that took it is done."""
        queued = self._waiting.get(key)
        if queued is None:
            queued = self._waiting[key] = (item, asyncio.get_running_loop().create_future())
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain(), name="coalesced-write")
        elif self._lingering is not None and not self._lingering.done() and not self._more_coming():
            self._lingering.set_result(None)
        return await asyncio.shield(queued[1])

    def _more_coming(self) -> bool:
        return self._linger_while is None or self._linger_while()

    async def _drain(self) -> None:
        try:
            while self._waiting:
                if self._linger and self._more_coming():
                    self._lingering = asyncio.get_running_loop().create_future()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._lingering, self._linger)
                    self._lingering = None
                    if not self._waiting:
                        break
                batch, self._waiting = self._waiting, {}
                try:
                    results = await self._write({key: item for key, (item, _) in batch.items()})
                except Exception as exc:  # noqa: BLE001 - every waiting submitter sees the failure
                    for _, waiter in batch.values():
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                for key, (_, waiter) in batch.items():
                    if not waiter.done():
                        waiter.set_result(results.get(key, self._missing))
        finally:
            self._writer = None

    async def close(self) -> None:
        """Stop a write in flight (its submitters see it cancelled)."""
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        for _, waiter in self._waiting.values():
            waiter.cancel()
        self._waiting.clear()
