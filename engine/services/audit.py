"""Audit log: who did what, when and from where, for operator and customer actions. Conference
actions come from engine.bus; logins and account changes are recorded by the services that make
them. Entries are only ever appended (the table refuses updates and deletes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from engine.adapters.db.audit import AuditRepository
from engine.services.bus import Bus, DomainEvent

log = logging.getLogger(__name__)

# Bus events that are somebody's action (state changes the engine makes on its own, e.g.
# participant.state or participant.talking, are in the conference's own event log instead).
AUDITED_EVENTS = frozenset({
    "conference.scheduled", "conference.updated", "conference.cancelled", "conference.ended",
    "conference.extended", "conference.locked", "conference.unlocked", "participant.added",
    "participant.muted", "participant.unmuted", "participant.kicked",
})
ENGINE_END_REASONS = frozenset({"deadline", "missed", "empty", "recovered", "asterisk_restarted"})


@dataclass(frozen=True)
class AuditContext:
    """Who is acting in the current task (set by the web layer per request and by the operator
    service around its calls), so entries made deep inside a service still say who and from where."""

    address: str | None = None
    actor: str | None = None  # 'account:12', 'operator:3'
    actor_id: int | None = None


CURRENT: ContextVar[AuditContext | None] = ContextVar("veche_audit_context", default=None)


@contextlib.contextmanager
def acting(*, address: str | None = None, actor: str | None = None, actor_id: int | None = None) -> Iterator[None]:
    """Run a block as ``actor`` from ``address`` (values not given are kept from the outer context)."""
    outer = CURRENT.get() or AuditContext()
    token = CURRENT.set(replace(outer, address=address if address is not None else outer.address,
                                actor=actor or outer.actor,
                                actor_id=actor_id if actor_id is not None else outer.actor_id))
    try:
        yield
    finally:
        CURRENT.reset(token)


class AuditLog(Protocol):
    """What the services that record actions need of the audit log."""

    async def record(self, action: str, *, actor: str | None = None, actor_id: int | None = None,
                     account_id: int | None = None, conference_id: int | None = None, address: str | None = None,
                     detail: dict[str, Any] | None = None) -> None: ...

    def record_soon(self, action: str, **fields: Any) -> None: ...

    async def entries(self, *, account_id: int | None = None, action: str = "", since: datetime | None = None,
                      limit: int = 200, before_id: int | None = None) -> list[dict[str, Any]]: ...


class NoAudit:
    """The audit log of a process that keeps none (the CLI): records nothing, lists nothing."""

    async def record(self, action: str, **fields: Any) -> None:
        return None

    def record_soon(self, action: str, **fields: Any) -> None:
        return None

    async def entries(self, **filters: Any) -> list[dict[str, Any]]:
        return []


class AuditService:
    """Appends to and reads the audit log."""

    def __init__(self, repo: AuditRepository, bus: Bus) -> None:
        self.repo = repo
        self.bus = bus
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.bus.subscribe(self.on_event, kinds=AUDITED_EVENTS)

    async def stop(self) -> None:
        self.bus.unsubscribe(self.on_event)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def record(self, action: str, *, actor: str | None = None, actor_id: int | None = None,
                     account_id: int | None = None, conference_id: int | None = None, address: str | None = None,
                     detail: dict[str, Any] | None = None) -> None:
        """Append one entry; who and from where default to the current AuditContext. A failure is
        logged, never raised: auditing must not break the action it records."""
        context = CURRENT.get() or AuditContext()
        if actor is None:
            actor = context.actor or (f"account:{account_id}" if account_id is not None else "engine")
            actor_id = context.actor_id if context.actor else (actor_id if actor_id is not None else account_id)
        try:
            await self.repo.append(actor=actor, actor_id=actor_id, action=action, account_id=account_id,
                                   conference_id=conference_id, address=address or context.address,
                                   detail=detail)
        except Exception:  # noqa: BLE001 - logged; the audited action already happened
            log.exception("audit entry %s for account %s not stored", action, account_id)

    def record_soon(self, action: str, **fields: Any) -> None:
        """``record`` from synchronous code: the entry is written by a background task."""
        task = asyncio.get_running_loop().create_task(self.record(action, **fields))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_event(self, event: DomainEvent) -> None:
        """Conference actions from the bus (it hears AUDITED_EVENTS only); engine-made changes are
        attributed to the engine."""
        actor: str | None = None
        if (event.kind == "conference.extended" and event.data.get("auto")) or (
                event.kind == "conference.ended" and event.data.get("reason") in ENGINE_END_REASONS):
            actor = "engine"
        elif CURRENT.get() is None:
            actor = "engine"  # no request and no operator call around it: the scheduler or recovery
        await self.record(event.kind, actor=actor, account_id=event.owner_id, conference_id=event.conference_id,
                          detail={k: v for k, v in {"participant_id": event.participant_id, **event.data}.items()
                                  if v is not None})

    async def entries(self, *, account_id: int | None = None, action: str = "", since: datetime | None = None,
                      limit: int = 200, before_id: int | None = None) -> list[dict[str, Any]]:
        """The newest entries first (at most ``limit``, 1..1000)."""
        return await self.repo.entries(account_id=account_id, action=action, since=since,
                                       limit=max(1, min(limit, 1000)), before_id=before_id)

