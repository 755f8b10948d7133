"""Test data and waiting helpers for the conference engine: accounts straight in SQL, and
waits that wake on the engine's bus events instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from engine.domain.model import Conference
from engine.services.bus import DomainEvent


def random_phone() -> str:
    """A Belarusian account phone nobody else in the test database uses (very likely)."""
    return "37544" + "".join(secrets.choice("0123456789") for _ in range(7))


async def create_account(pool: asyncpg.Pool, *, phone: str | None = None, role: str = "customer",
                         **limits: Any) -> int:
    """Insert an account (password hash is a placeholder; these accounts never log in)."""
    columns = {"phone": phone or random_phone(), "password_hash": "test-not-a-hash", "role": role, **limits}
    names = ", ".join(columns)
    marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
    return await pool.fetchval(f"INSERT INTO accounts ({names}) VALUES ({marks}) RETURNING id",
                               *columns.values())


async def wait_until(engine: Any, check: Callable[[], Awaitable[Any]], timeout: float = 20.0,
                     what: str = "condition") -> Any:
    """Re-evaluate ``check`` whenever the engine publishes a bus event, until it returns a truthy
    value (returned) or ``timeout`` passes (AssertionError)."""
    changed = asyncio.Event()

    def on_event(event: DomainEvent) -> None:
        changed.set()

    engine.bus.subscribe(on_event)
    deadline = time.monotonic() + timeout
    try:
        while True:
            changed.clear()
            result = await check()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 1.0))
    finally:
        engine.bus.unsubscribe(on_event)


async def wait_for_bus_event(engine: Any, predicate: Callable[[DomainEvent], bool],
                             timeout: float = 20.0) -> DomainEvent:
    """The next bus event matching ``predicate`` (subscribe first, then trigger)."""
    found: asyncio.Future[DomainEvent] = asyncio.get_running_loop().create_future()

    def on_event(event: DomainEvent) -> None:
        if not found.done() and predicate(event):
            found.set_result(event)

    engine.bus.subscribe(on_event)
    try:
        return await asyncio.wait_for(found, timeout)
    finally:
        engine.bus.unsubscribe(on_event)


def states(conference: Conference) -> dict[str, str]:
    """number -> participant state, for compact assertions."""
    return {p.number: str(p.state) for p in conference.participants}
