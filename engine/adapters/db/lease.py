"""The leader lease of an engine pair and its fencing token: the SQL of the ``engine_lease`` row
(sql/026_engine_lease.sql) and the check every dial-out claim makes in its own transaction.

A lease row rather than a session advisory lock: an advisory lock lives as long as the holder's
connection, so a paused engine (SIGSTOP, a long GC or VM stall) or a half-open TCP connection
keeps it for minutes, and nothing numbers the holders. The row expires by PostgreSQL's clock
after ``VECHE_LEASE_SECONDS`` unless renewed, whatever the holder's state, and its token grows
at every change of holder, so a write can prove it comes from the current holder."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.domain.errors import NotActiveEngine

LEASE_NAME = "veche"  # one engine pair per database


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds (or last held) the lease, and whether it is still live."""

    holder: str
    token: int
    expires_at: datetime
    live: bool


class LeaseRepository:
    """Takes, renews and gives back the one lease row; PostgreSQL's ``now()`` is the only clock."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def acquire(self, holder: str, seconds: float) -> int | None:
        """Take the lease when it is free or lapsed, or when ``holder`` itself held it (the same
        engine restarted after a crash); returns the new fencing token, None while another
        engine holds a live lease."""
        return await self.pool.fetchval(
            "INSERT INTO engine_lease AS l (name, holder, token, acquired_at, expires_at) "
            "VALUES ($1, $2, 1, now(), now() + make_interval(secs => $3)) "
            "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, token = l.token + 1, "
            "acquired_at = now(), expires_at = EXCLUDED.expires_at "
            "WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder RETURNING token",
            LEASE_NAME, holder, float(seconds))

    async def renew(self, token: int, seconds: float) -> bool:
        """Extend a live lease of this token; False when it lapsed or another engine took it."""
        renewed = await self.pool.fetchval(
            "UPDATE engine_lease SET expires_at = now() + make_interval(secs => $3) "
            "WHERE name = $1 AND token = $2 AND expires_at > now() RETURNING token",
            LEASE_NAME, token, float(seconds))
        return renewed is not None

    async def release(self, token: int) -> None:
        """Give the lease up at once (a clean stop), so the standby need not wait for it to lapse."""
        await self.pool.execute(
            "UPDATE engine_lease SET expires_at = now() WHERE name = $1 AND token = $2 AND expires_at > now()",
            LEASE_NAME, token)

    async def current(self) -> LeaseHolder | None:
        row = await self.pool.fetchrow(
            "SELECT holder, token, expires_at, expires_at > now() AS live FROM engine_lease WHERE name = $1",
            LEASE_NAME)
        return None if row is None else LeaseHolder(row["holder"], row["token"], row["expires_at"], row["live"])


class Fence:
    """The fencing token this engine holds. A writer's transaction checks ``lease``: it
    share-locks the lease row, so the lease cannot change hands until that transaction ends, and
    raises ``refusal()`` unless this engine's token is the live one. ``holds`` is the same
    question asked of this process's monotonic clock, for the moment between a claim and its
    Originate: an engine paused in between (its lease lapsed meanwhile) sends nothing. An engine
    without the lease (``enabled`` False: it runs alone) passes every check."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.token: int | None = None
        self.valid_until = 0.0  # time.monotonic() by which the lease surely lapsed unless renewed

    def holds(self) -> bool:
        return not self.enabled or (self.token is not None and time.monotonic() < self.valid_until)

    def lease(self) -> tuple[str | None, int | None]:
        """The lease a writer's transaction checks (its name and this engine's token), share-locking
        its row so that it cannot change hands until that transaction ends: dialout_grant in
        sql/028_dialout_grant.sql; (None, None) when the engine runs alone."""
        return (LEASE_NAME, self.token) if self.enabled else (None, None)

    @staticmethod
    def refusal() -> NotActiveEngine:
        """What a writer raises when the check of ``lease`` failed."""
        return NotActiveEngine("this engine is not the active one (it does not hold the leader lease)")
