"""SQL of dial-in: finding a conference by the number a caller keyed, counting who is in it,
adding the caller as a participant, the failed-entry log that slows PIN guessing, and the
per-number lock-outs that stop it (shared by every engine through PostgreSQL)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

import asyncpg

from engine.domain.model import (
    Conference,
    ConferenceState,
    FailureReason,
    Origin,
    Participant,
    ParticipantState,
    Role,
)

_CONFERENCE_FIELDS = tuple(f.name for f in dataclasses.fields(Conference) if f.name != "participants")
CONFERENCE_COLUMNS = ", ".join(_CONFERENCE_FIELDS)
_PARTICIPANT_FIELDS = tuple(f.name for f in dataclasses.fields(Participant))
PARTICIPANT_COLUMNS = ", ".join(_PARTICIPANT_FIELDS)
# A dial-in caller who got a room but whose ConfbridgeJoin has not arrived yet still takes a seat.
_PENDING_SEAT_SECONDS = 30


def conference_from_row(row: asyncpg.Record) -> Conference:
    values = dict(row)
    values["state"] = ConferenceState(values["state"])
    return Conference(**{name: values[name] for name in _CONFERENCE_FIELDS})


def participant_from_row(row: asyncpg.Record) -> Participant:
    values = {name: row[name] for name in _PARTICIPANT_FIELDS}
    values["role"] = Role(values["role"])
    values["origin"] = Origin(values["origin"])
    values["state"] = ParticipantState(values["state"])
    if values["failure_reason"] is not None:
        values["failure_reason"] = FailureReason(values["failure_reason"])
    return Participant(**values)


class DialinRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def conference_by_number(self, number: str) -> Conference | None:
        """The live conference with this number (running, else the next scheduled occurrence of
        a series), else the latest one
        that is over, so its callers hear that it ended. A blocked account's conferences are
        unknown to callers."""
        row = await self.pool.fetchrow(
            f"SELECT {CONFERENCE_COLUMNS} FROM conferences WHERE conference_number = $1 "
            "AND owner_id NOT IN (SELECT id FROM accounts WHERE blocked) "
            "ORDER BY (state = 'running') DESC, (state = 'scheduled') DESC, "
            "CASE WHEN state = 'scheduled' THEN starts_at END, starts_at DESC LIMIT 1", number)
        return conference_from_row(row) if row else None

    async def seats_taken(self, conference_id: int) -> int:
        """Connected participants, plus dial-in callers admitted moments ago and still joining."""
        return await self.pool.fetchval(
            "SELECT count(*) FROM participants WHERE conference_id = $1 AND (state = 'connected' "
            "OR (origin = 'dialin' AND state = 'calling' "
            f"AND created_at > now() - interval '{_PENDING_SEAT_SECONDS} seconds'))", conference_id)

    async def add_caller(self, conference_id: int, *, number: str, role: Role, call_id: str,
                         channel: str | None, node_id: str) -> Participant:
        """The caller as a participant (origin dialin, state calling) and its log entry, at once."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO participants (conference_id, number, role, origin, state, call_id, channel, "
                "node_id, attempts) VALUES ($1, $2, $3, 'dialin', 'calling', $4, $5, $6, 1) "
                f"RETURNING {PARTICIPANT_COLUMNS}",
                conference_id, number, str(role), call_id, channel, node_id)
            await conn.execute(
                "INSERT INTO conference_events (conference_id, kind, actor, participant_id, detail) "
                "VALUES ($1, 'participant.dialin', 'caller', $2, $3::jsonb)",
                conference_id, row["id"], json.dumps({"number": number, "role": str(role)}))
        return participant_from_row(row)

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
