"""In-process publish/subscribe of domain events, so the console's live stream, the notifier
and metrics learn what the services did without the services knowing them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from engine.logging import log_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DomainEvent:
    """``kind`` examples: conference.scheduled, conference.updated, conference.cancelled,
    conference.started, conference.extended, conference.locked, conference.unlocked,
    conference.ended, participant.added, participant.state (state, reason), participant.muted,
    participant.unmuted, participant.kicked, participant.talking, conference.pin_lockout (started_at,
    until, failures)."""

    kind: str
    conference_id: int
    owner_id: int | None = None
    participant_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


Subscriber = Callable[[DomainEvent], Awaitable[None] | None]


class Bus(Protocol):
    """What the services need of the event bus (EventBus, or a recording fake in unit tests)."""

    def subscribe(self, callback: Subscriber, kinds: Iterable[str] | None = None) -> None: ...

    def unsubscribe(self, callback: Subscriber) -> None: ...

    async def publish(self, event: DomainEvent) -> None: ...

    def deliver(self, event: DomainEvent) -> Awaitable[None]: ...


class EventBus:
    def __init__(self) -> None:
        # (the kinds a subscriber hears, None: all; the subscriber), in subscription order
        self._subscribers: list[tuple[frozenset[str] | None, Subscriber]] = []
        self._finishing: set[asyncio.Task[None]] = set()  # listeners still running for a cancelled publisher

    def subscribe(self, callback: Subscriber, kinds: Iterable[str] | None = None) -> None:
        """``kinds``: the only event kinds the callback hears. A listener that ignores the rest
        then costs them nothing: a dial-out's burst publishes three states per call, and each
        asynchronous listener called would make a coroutine just to return."""
        # a new list, so a delivery under way goes on over the subscribers it started with
        self._subscribers = [*self._subscribers, (frozenset(kinds) if kinds is not None else None, callback)]

    def unsubscribe(self, callback: Subscriber) -> None:
        self._subscribers = [entry for entry in self._subscribers if entry[1] != callback]

    @property
    def subscriber_count(self) -> int:
        """How many callbacks are subscribed (an SSE stream holds one while it is open)."""
        return len(self._subscribers)

    async def publish(self, event: DomainEvent) -> None:
        """Call every subscriber; the coroutines of asynchronous ones are awaited after all
        callbacks ran, one after the other in subscription order, so a plain callback (the live
        console's fan-out) hears of the event before the database writes of the others."""
        await self.deliver(event)

    def deliver(self, event: DomainEvent) -> Awaitable[None]:
        """``publish`` in two steps: the plain callbacks are called now; the asynchronous ones run
        when the returned awaitable is awaited (the caller decides where it waits for them)."""
        with log_context(conference_id=event.conference_id, participant_id=event.participant_id):
            waiting = []
            for kinds, callback in self._subscribers:
                if kinds is not None and event.kind not in kinds:
                    continue
                try:
                    result = callback(event)
                except Exception:  # noqa: BLE001 - a failing listener must not break the service
                    log.exception("subscriber of %s failed", event.kind)
                    continue
                if asyncio.iscoroutine(result):
                    waiting.append(result)
        return self._finish(event, waiting)

    async def settled(self) -> None:
        """Wait for the listeners that still run for cancelled publishers (an engine stopping
        waits for them before it stops the services they call)."""
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)

    async def _finish(self, event: DomainEvent, waiting: list[Any]) -> None:
        with log_context(conference_id=event.conference_id, participant_id=event.participant_id):
            pending = iter(waiting)
            try:
                for result in pending:
                    try:
                        await result
                    except Exception:  # noqa: BLE001
                        log.exception("subscriber of %s failed", event.kind)
            except asyncio.CancelledError:
                # the publisher was cancelled (a stopping service): the listeners not yet run
                # (audit, metrics) still hear of what happened
                rest = list(pending)
                if rest:
                    task = asyncio.get_running_loop().create_task(self._finish(event, rest))
                    self._finishing.add(task)
                    task.add_done_callback(self._finishing.discard)
                raise
