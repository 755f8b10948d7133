"""The brute-force guard of dial-in: callers refused outright after too many wrong entries, a
growing wait after each wrong PIN, and PIN entry on a conference number closed for a while when
it sees too many (the owner learns it from the bus)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.adapters.db.dialin import DialinRepository
from engine.config import Settings
from engine.domain import dialin as rules
from engine.domain.dialin import PIN_LOCKOUT_EVENT, DialinPolicy
from engine.domain.model import Conference
from engine.services.bus import Bus, DomainEvent

log = logging.getLogger(__name__)


def dialin_policy(settings: Settings) -> DialinPolicy:
    """The dial-in policy of the settings (tests key many wrong PINs from few numbers, so their
    waits are short)."""
    policy = DialinPolicy(join_early_minutes=settings.join_early_minutes,
                          withheld_block_after=settings.withheld_block_after,
                          lockout_after=settings.pin_lockout_after,
                          lockout_seconds=settings.pin_lockout_seconds)
    if settings.test_mode:
        policy = replace(policy, base_delay_seconds=0.05, max_delay_seconds=0.4)
    return policy


class PinGuard:
    """Counts wrong entries per caller and per conference number (in the database, so every
    engine sees them) and decides who is refused, how long a caller waits and when PIN entry on a
    number closes. ``policy`` is the one dial-in policy the conversation reads too."""

    def __init__(self, repo: DialinRepository, bus: Bus, policy: DialinPolicy) -> None:
        self.repo = repo
        self.bus = bus
        self.policy = policy
        self._tasks: set[asyncio.Task[None]] = set()

    async def caller_blocked(self, caller: str, call_id: str) -> bool:
        """Whether the caller made so many wrong entries lately that the call is refused at once
        (recorded as a 'blocked' failure)."""
        since = datetime.now(UTC) - timedelta(seconds=self.policy.failure_window_seconds)
        by_caller, _ = await self.repo.recent_failures(caller=caller, caller_since=since, conference_number="",
                                                       number_since=since)
        if not self.policy.caller_blocked(by_caller, caller):
            return False
        await self.repo.record_failure(caller=caller, kind="blocked", conference_id=None, conference_number="",
                                       call_id=call_id)
        log.warning("dial-in: caller %s refused outright after %d wrong entries in %d s", caller, by_caller,
                    self.policy.failure_window_seconds)
        return True

    async def locked_out(self, number: str) -> bool:
        """Whether PIN entry on the conference number is closed now."""
        return rules.locked_out(await self.repo.lockout_until(number), datetime.now(UTC))

    async def wrong_entry(self, caller: str, conference: Conference | None, number: str, call_id: str) -> float:
        """Record a wrong entry and close PIN entry on the number when it saw too many; returns how
        many seconds the caller must wait (the longer the more wrong entries came recently)."""
        policy = self.policy
        await self.repo.record_failure(caller=caller, kind="pin" if conference else "number",
                                       conference_id=conference.id if conference else None,
                                       conference_number=number, call_id=call_id)
        now = datetime.now(UTC)
        by_caller, by_number = await self.repo.recent_failures(
            caller=caller, caller_since=now - timedelta(seconds=policy.failure_window_seconds),
            conference_number=number, number_since=policy.counting_since(now, await self.repo.lockout_until(number)))
        if policy.lockout_due(by_number):
            await self._start_lockout(conference, number, now, by_number)
        delay = policy.delay_for(by_caller, by_number)
        log.warning("dial-in: wrong PIN from %s (conference %s, number %s); recent failures: caller %d, "
                    "number %d; waiting %.2f s", caller, conference.id if conference else None, number[:20],
                    by_caller, by_number, delay)
        return delay

    async def _start_lockout(self, conference: Conference | None, number: str, now: datetime, failures: int) -> None:
        until = self.policy.lockout_end(now)
        started = await self.repo.start_lockout(conference_number=number,
                                                conference_id=conference.id if conference else None,
                                                now=now, until=until, failures=failures)
        if started is None:
            return  # another call (maybe on another engine) started this lock-out
        log.warning("dial-in: %d wrong PINs on conference number %s: PIN entry closed until %s", failures,
                    number[:20], until.isoformat())
        if conference is None:
            return
        # the owner's console banner and e-mail (notifier) learn it from the bus, after this call
        event = DomainEvent(kind=PIN_LOCKOUT_EVENT, conference_id=conference.id, owner_id=conference.owner_id,
                            data={"started_at": started.isoformat(), "until": until.isoformat(),
                                  "failures": failures})
        task = asyncio.create_task(self.bus.publish(event), name=f"dialin-lockout-{conference.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def pin_lockout(self, conference_id: int) -> dict[str, datetime] | None:
        """The running lock-out of a conference's PIN entry (started_at, until), for its console
        and card."""
        found = await self.repo.conference_lockout(conference_id)
        return {"started_at": found[0], "until": found[1]} if found else None

    async def published(self) -> None:
        """Wait until the lock-outs started so far are on the bus."""
        await asyncio.gather(*self._tasks)

    async def stop(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
