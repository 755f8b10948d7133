"""The dial-in guard's SQL: the failed-entry log that slows PIN guessing and the per-number
lock-outs that stop it (shared by every engine through PostgreSQL). ``DialinRepository`` is the
dial-in conversation's one store: the guard's rows are its own, and finding a conference by its
number, counting its seats and adding the caller are the conference aggregate's, asked of
``ConferenceRepository``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from engine.adapters.db.conferences import ConferenceRepository
from engine.domain.model import Conference, Participant, Role


class DialinRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.conferences = ConferenceRepository(pool)

    async def conference_by_number(self, number: str) -> Conference | None:
        return await self.conferences.conference_by_number(number)

    async def seats_taken(self, conference_id: int) -> int:
        return await self.conferences.seats_taken(conference_id)

    async def add_caller(self, conference_id: int, *, number: str, role: Role, call_id: str,
                         channel: str | None, node_id: str) -> Participant:
        return await self.conferences.add_caller(conference_id, number=number, role=role, call_id=call_id,
                                                 channel=channel, node_id=node_id)

    async def record_failure(self, *, caller: str, kind: str, conference_id: int | None,
                             conference_number: str, call_id: str) -> None:
        await self.pool.execute(
            "INSERT INTO dialin_failures (caller, conference_id, conference_number, kind, call_id) "
            "VALUES ($1, $2, $3, $4, $5)", caller, conference_id, conference_number[:20], kind, call_id)

    async def recent_failures(self, *, caller: str, caller_since: datetime, conference_number: str,
                              number_since: datetime) -> tuple[int, int]:
        """(failures of this caller number since ``caller_since``, wrong entries on this
        conference number since ``number_since``); refusals of blocked callers do not count."""
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM dialin_failures WHERE caller = $1 AND at >= $2 AND kind <> 'blocked') "
            "AS by_caller, (SELECT count(*) FROM dialin_failures WHERE conference_number = $3 AND at >= $4 "
            "AND kind <> 'blocked') AS by_number", caller, caller_since, conference_number[:20], number_since)
        return int(row["by_caller"]), int(row["by_number"])

    async def lockout_until(self, conference_number: str) -> datetime | None:
        """The end of this conference number's latest lock-out (maybe past), None if never."""
        return await self.pool.fetchval(
            "SELECT until FROM dialin_lockouts WHERE conference_number = $1", conference_number[:20])

    async def start_lockout(self, *, conference_number: str, conference_id: int | None, now: datetime,
                            until: datetime, failures: int) -> datetime | None:
        """Close PIN entry on this number until ``until``, unless a lock-out is running already;
        returns the start time when this call started it (so one engine, once, tells the owner)."""
        return await self.pool.fetchval(
            "INSERT INTO dialin_lockouts AS l (conference_number, conference_id, started_at, until, failures) "
            "VALUES ($1, $2, $5, $3, $4) ON CONFLICT (conference_number) DO UPDATE "
            "SET conference_id = EXCLUDED.conference_id, started_at = EXCLUDED.started_at, "
            "until = EXCLUDED.until, failures = EXCLUDED.failures WHERE l.until <= $5 "
            "RETURNING started_at", conference_number[:20], conference_id, until, failures, now)

    async def conference_lockout(self, conference_id: int) -> tuple[datetime, datetime] | None:
        """(start, end) of the running lock-out of this conference's number, for its console."""
        row = await self.pool.fetchrow(
            "SELECT l.started_at, l.until FROM dialin_lockouts l JOIN conferences c "
            "ON c.conference_number = l.conference_number WHERE c.id = $1 AND l.until > now()", conference_id)
        return (row["started_at"], row["until"]) if row else None

    async def failures(self, **where: Any) -> list[dict[str, Any]]:
        """Failure rows matching ``caller=`` / ``conference_id=`` (for tests and the operator)."""
        if set(where) - {"caller", "conference_id"}:
            raise ValueError(f"cannot filter failures by {sorted(where)}")
        clauses = [f"{name} = ${i}" for i, name in enumerate(where, start=1)]
        rows = await self.pool.fetch(
            "SELECT at, caller, conference_id, conference_number, kind, call_id FROM dialin_failures "
            + (f"WHERE {' AND '.join(clauses)} " if clauses else "") + "ORDER BY at", *where.values())
        return [dict(r) for r in rows]
