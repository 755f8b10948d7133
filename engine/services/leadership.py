"""Exactly one active engine of a pair on one PostgreSQL: the active engine holds the leader
lease (engine/adapters/db/lease.py) and renews it; the standby asks for it until it lapses, and
then starts exactly as a crash-only restart does (engine/app.py Engine.start).

An active engine that cannot renew its lease before it lapses (a pause, a lost database) is
deposed: its fencing token is dropped at once, so its dial-out claims fail even before the
database says so, and the process ends (``python -m engine run`` exits), to come back as the
standby under its supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from engine.adapters.db.lease import Fence, LeaseHolder
from engine.config import Settings

log = logging.getLogger(__name__)


class LeaseStore(Protocol):
    async def acquire(self, holder: str, seconds: float) -> int | None: ...
    async def renew(self, token: int, seconds: float) -> bool: ...
    async def release(self, token: int) -> None: ...
    async def current(self) -> LeaseHolder | None: ...


class Leadership:
    """The lease of one engine (``settings.engine_id``): ``acquire`` waits until this engine is
    the active one, a background task renews the lease every ``lease_renew_seconds``, ``release``
    gives it back. ``on_change(active)`` callbacks hear every change (the metrics gauge)."""

    def __init__(self, settings: Settings, store: LeaseStore, fence: Fence, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.store = store
        self.fence = fence
        self.clock = clock
        self.deposed = asyncio.Event()
        self.took_over_at: float | None = None  # clock() when this engine became active
        self._valid_until = 0.0  # clock() by which the lease surely lapsed unless renewed
        self._renewer: asyncio.Task | None = None
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def engine_id(self) -> str:
        return self.settings.engine_id

    @property
    def active(self) -> bool:
        return self.fence.token is not None

    def on_change(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)
        listener(self.active)

    def _announce(self) -> None:
        for listener in self._listeners:
            listener(self.active)

    async def try_acquire(self) -> bool:
        """One attempt to become active; True when this engine holds the lease now."""
        sent = self.clock()
        token = await self.store.acquire(self.engine_id, self.settings.lease_seconds)
        if token is None:
            return False
        self.fence.token = token
        self._set_valid_until(sent + self.settings.lease_seconds)
        self.took_over_at = self.clock()
        self.deposed.clear()
        log.warning("engine %s is the active engine (fencing token %s)", self.engine_id, token)
        self._renewer = asyncio.create_task(self._renew_loop(), name="lease-renew")
        self._announce()
        return True

    async def acquire(self) -> None:
        """Wait until this engine holds the lease (at once when it is free, or lapsed, or was
        this engine's own before a crash), asking every ``lease_renew_seconds``."""
        announced = False
        while True:
            try:
                if await self.try_acquire():
                    return
                if not announced:
                    holder = await self.store.current()
                    log.warning("engine %s is the standby: %s holds the leader lease", self.engine_id,
                                holder.holder if holder else "another engine")
                    announced = True
            except Exception as exc:  # noqa: BLE001 - the standby keeps asking through a database outage
                log.warning("engine %s cannot reach PostgreSQL for the lease: %s", self.engine_id, exc)
            await asyncio.sleep(self.settings.lease_renew_seconds)

    async def _renew_loop(self) -> None:
        token = self.fence.token
        assert token is not None
        while True:
            await asyncio.sleep(self.settings.lease_renew_seconds)
            sent = self.clock()
            try:
                renewed = await asyncio.wait_for(self.store.renew(token, self.settings.lease_seconds),
                                                 max(0.1, self._valid_until - sent))
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried until the lease lapses
                log.warning("engine %s could not renew its lease: %s", self.engine_id, exc)
                renewed = False
                if self.clock() < self._valid_until:
                    continue
            if renewed:
                self._set_valid_until(sent + self.settings.lease_seconds)
                continue
            self._depose()
            return

    def _set_valid_until(self, until: float) -> None:
        """Until when the lease is surely this engine's, on ``clock`` and on the fence's monotonic clock."""
        self._valid_until = until
        self.fence.valid_until = time.monotonic() + (until - self.clock())

    def _depose(self) -> None:
        log.error("engine %s lost the leader lease (token %s): it stops acting", self.engine_id, self.fence.token)
        self.fence.token = None
        self.deposed.set()
        self._announce()

    async def release(self) -> None:
        """Stop renewing and give the lease back, so the standby takes over without waiting."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._renewer
            self._renewer = None
        token, self.fence.token = self.fence.token, None
        if token is not None:
            with contextlib.suppress(Exception):
                await self.store.release(token)
            self._announce()
