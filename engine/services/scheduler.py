"""Scheduler: starts conferences at their time, plays the deadline warning and applies the
deadline (auto-extend or end), always reading the database so a restart loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from engine.config import Settings
from engine.services.calls import now_utc
from engine.services.conference_lifecycle import ConferenceLifecycle

log = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 30.0  # re-read the database at least this often (other writers, clock changes)
IN_FLIGHT_RECHECK_SECONDS = 1.0


class Scheduler:
    """One loop per engine, for the conferences of every media node (a conference is placed on
    its node when it starts). Starting and ending are compare-and-set in SQL, so two engines
    never do either twice."""

    def __init__(self, settings: Settings, lifecycle: ConferenceLifecycle, *,
                 active: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.lifecycle = lifecycle
        self.active = active  # False once this engine's leader lease may have lapsed (Fence.holds)
        self.repo = lifecycle.repo
        self._wake = lifecycle.records.schedule_changed
        self._task: asyncio.Task | None = None
        self._inflight: dict[tuple[str, int], asyncio.Task] = {}
        self.node_ids = [node.node_id for node in settings.media_nodes]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            while not self._task.done():  # Python 3.11's wait_for can swallow a cancel: repeat it
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=1.0)
            self._task = None
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def wake(self) -> None:
        """Something changed (planned, updated, extended, ended): recompute the next due time."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            spawned = 0
            passed_at = now_utc()  # the pass below sees everything due by then
            try:
                spawned = await self.run_due()
                dues = [await self.repo.next_due(node_id, self.settings.warning_seconds) for node_id in self.node_ids]
                next_due = min((due for due in dues if due is not None), default=None)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                log.exception("scheduler pass failed")
                next_due = None
            delay = MAX_SLEEP_SECONDS
            if next_due is not None and next_due <= passed_at and not spawned:
                delay = IN_FLIGHT_RECHECK_SECONDS  # what was due is being handled; its end wakes us
            elif next_due is not None:
                # due since the pass began (a timer may fire a little early): another pass at once
                delay = min(delay, max(0.0, (next_due - now_utc()).total_seconds()))
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def run_due(self) -> int:
        """Start, warn and end whatever is due now on every media node. The due starts of a node are
        decided in one statement (with several nodes each start is placed on its own, one by one);
        what follows each start, each warning and each end runs in its own task (so one slow end
        never delays another start); returns how many jobs were started."""
        if not self.active():  # paused past its lease: the other engine of the pair acts now
            return 0
        now = now_utc()
        jobs: list[tuple[tuple[str, int], Any, Any]] = []
        for node_id in self.node_ids:
            started = await self.lifecycle.start_due(node_id)  # the decision, for all of them at once
            jobs += [(("start", c.id), self.lifecycle.after_start, c) for c in started]
            # what is still due was missed, belongs to a blocked account or waits for its placement
            jobs += [(("start", c.id), self.lifecycle.start_conference, c.id)
                     for c in await self.repo.due_starts(node_id, now)]
            jobs += [(("warn", c.id), self.lifecycle.warn, c)
                     for c in await self.repo.due_warnings(node_id, now, self.settings.warning_seconds)]
            jobs += [(("end", c.id), self.lifecycle.deadline, c) for c in await self.repo.due_ends(node_id, now)]
        spawned = 0
        for key, function, argument in jobs:
            if key in self._inflight:
                continue
            task = asyncio.create_task(self._job(key, function, argument), name=f"scheduler-{key[0]}-{key[1]}")
            self._inflight[key] = task
            spawned += 1
        return spawned

    async def _job(self, key: tuple[str, int], function: Any, argument: Any) -> None:
        try:
            await function(argument)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged; the next pass retries what is still due
            log.exception("scheduled %s of conference %s failed", *key)
        finally:
            self._inflight.pop(key, None)
            self.wake()

