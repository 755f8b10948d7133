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
    meanwhile (a later write made it moot). ``coming`` says how many more items are on their
    way: a write waits for company only while more than one is, so the item before the last ends
    the wait, and the last is written alone and at once, beside a write still in flight if need
    be (its keys are not in that write). The write that a burst's last item waits for is then one
    row, not the whole burst. At most one such write runs beside the writer's: items that come
    while both run (calls joining with no dial-out in flight) go into the writer's next write."""

    def __init__(self, write: Callable[[dict[Key, Item]], Awaitable[dict[Key, Result]]], missing: Result, *,
                 linger: float = 0.0, coming: Callable[[], int] | None = None) -> None:
        self._write = write
        self._missing = missing
        self._linger = linger
        self._coming = coming
        self._waiting: dict[Key, tuple[Item, asyncio.Future[Result]]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._lingering: asyncio.Future[None] | None = None  # set while a write waits for company
        self._writing: set[Key] = set()  # the keys of the writes in flight
        self._asides: set[asyncio.Task[None]] = set()  # last items written beside the writer's write

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
        elif self._coming is not None:
            still_coming = self._coming()
            if self._lingering is not None:
                if still_coming <= 1 and not self._lingering.done():
                    self._lingering.set_result(None)
            elif still_coming == 0 and self._writing and not self._asides:
                self._write_aside()
        return await asyncio.shield(queued[1])

    def _lingers(self) -> bool:
        return bool(self._linger) and (self._coming is None or self._coming() > 1)

    def _write_aside(self) -> None:
        """Write what waits, except keys in the write in flight, at once in a task of its own."""
        batch = {key: queued for key, queued in self._waiting.items() if key not in self._writing}
        if not batch:
            return
        for key in batch:
            del self._waiting[key]
        task = asyncio.get_running_loop().create_task(self._write_batch(batch), name="coalesced-write-aside")
        self._asides.add(task)
        task.add_done_callback(self._asides.discard)

    async def _drain(self) -> None:
        try:
            while self._waiting:
                if self._lingers():
                    self._lingering = asyncio.get_running_loop().create_future()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._lingering, self._linger)
                    self._lingering = None
                    if not self._waiting:
                        break
                batch = {key: queued for key, queued in self._waiting.items() if key not in self._writing}
                if not batch:  # each waits for an aside write of its key to finish first
                    await asyncio.wait(self._asides)
                    continue
                for key in batch:
                    del self._waiting[key]
                await self._write_batch(batch)
        finally:
            self._writer = None

    async def _write_batch(self, batch: dict[Key, tuple[Item, asyncio.Future[Result]]]) -> None:
        self._writing.update(batch)
        try:
            results = await self._write({key: item for key, (item, _) in batch.items()})
        except asyncio.CancelledError:
            for _, waiter in batch.values():
                waiter.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every waiting submitter sees the failure
            for _, waiter in batch.values():
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        finally:
            self._writing.difference_update(batch)
        for key, (_, waiter) in batch.items():
            if not waiter.done():
                waiter.set_result(results.get(key, self._missing))

    async def close(self) -> None:
        """Stop the writes in flight (their submitters see them cancelled)."""
        for task in (self._writer, *self._asides):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for _, waiter in self._waiting.values():
            waiter.cancel()
        self._waiting.clear()
