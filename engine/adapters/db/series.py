"""Series repository: all SQL for recurring series and permanent rooms (the plan and number
their conferences share) and for finding those conferences."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

SERIES_COLUMNS = ("id", "owner_id", "kind", "state", "subject", "plan", "recurrence", "first_start", "timezone",
                  "conference_number", "chair_pin", "guest_pin", "guests_wait_for_chair", "mail_uid",
                  "mail_sequence", "created_at", "updated_at")
_SELECT = ", ".join(SERIES_COLUMNS)
_WRITABLE = frozenset({"state", "subject", "plan", "recurrence", "chair_pin", "guest_pin",
                       "guests_wait_for_chair"})


def _series(row: asyncpg.Record | None) -> dict[str, Any] | None:
    if row is None:
        return None
    data = dict(row)
    for key in ("plan", "recurrence"):
        if isinstance(data[key], str):
            data[key] = json.loads(data[key])
    return data


class SeriesRepository:
    """SQL of conference_series; ``owner_id`` None means the operator (no owner check)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Store a series; asyncpg.UniqueViolationError when its conference number is in use."""
        values = dict(fields)
        for key in ("plan", "recurrence"):
            if values.get(key) is not None:
                values[key] = json.dumps(values[key])
        columns = list(values)
        placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
        row = await self.pool.fetchrow(
            f"INSERT INTO conference_series ({', '.join(columns)}) VALUES ({placeholders}) RETURNING {_SELECT}",
            *values.values())
        return _series(row)  # type: ignore[return-value]

    async def delete(self, series_id: int) -> None:
        """Remove a series that could not be planned whole (its conferences cascade)."""
        await self.pool.execute("DELETE FROM conference_series WHERE id = $1", series_id)

    async def get(self, series_id: int, owner_id: int | None = None) -> dict[str, Any] | None:
        return _series(await self.pool.fetchrow(
            f"SELECT {_SELECT} FROM conference_series WHERE id = $1 AND ($2::bigint IS NULL OR owner_id = $2)",
            series_id, owner_id))

    async def list(self, owner_id: int | None, kind: str | None = None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {_SELECT} FROM conference_series WHERE ($1::bigint IS NULL OR owner_id = $1) "
            "AND ($2::text IS NULL OR kind = $2) AND state = 'active' ORDER BY id DESC", owner_id, kind)
        return [_series(row) for row in rows]  # type: ignore[misc]

    async def active_recurring(self) -> list[int]:
        return [row["id"] for row in await self.pool.fetch(
            "SELECT id FROM conference_series WHERE kind = 'recurring' AND state = 'active'")]

    async def update(self, series_id: int, **changes: Any) -> dict[str, Any] | None:
        unknown = set(changes) - _WRITABLE
        if unknown:
            raise ValueError(f"not writable: {sorted(unknown)}")
        values = [json.dumps(v) if k in ("plan", "recurrence") and v is not None else v for k, v in changes.items()]
        sets = ", ".join(f"{key} = ${i + 2}" for i, key in enumerate(changes))
        return _series(await self.pool.fetchrow(
            f"UPDATE conference_series SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_SELECT}",
            series_id, *values))

    async def next_sequence(self, series_id: int) -> int:
        """Raise the series' iCalendar SEQUENCE and return it."""
        return await self.pool.fetchval(
            "UPDATE conference_series SET mail_sequence = mail_sequence + 1 WHERE id = $1 RETURNING mail_sequence",
            series_id)

    async def conference_ids(self, series_id: int, states: tuple[str, ...] | None = None) -> list[int]:
        """The series' conferences (occurrences or sessions), earliest start first."""
        rows = await self.pool.fetch(
            "SELECT id FROM conferences WHERE series_id = $1 AND ($2::text[] IS NULL OR state = ANY($2)) "
            "ORDER BY starts_at, id", series_id, list(states) if states else None)
        return [row["id"] for row in rows]

    async def occurrence_starts(self, series_id: int) -> dict[datetime, str]:
        """Every materialised occurrence: the rule's start -> the occurrence's state."""
        rows = await self.pool.fetch(
            "SELECT occurrence_at, state FROM conferences WHERE series_id = $1 AND occurrence_at IS NOT NULL",
            series_id)
        return {row["occurrence_at"]: row["state"] for row in rows}

    async def room_by_number(self, conference_number: str) -> dict[str, Any] | None:
        """The open permanent room with this number (a blocked account's rooms do not answer)."""
        return _series(await self.pool.fetchrow(
            f"SELECT {_SELECT} FROM conference_series WHERE conference_number = $1 AND kind = 'permanent' "
            "AND state = 'active' AND owner_id NOT IN (SELECT id FROM accounts WHERE blocked)", conference_number))

    async def present(self, conference_id: int) -> int:
        """Participants in the room or on their way in (a dial-in caller admitted moments ago)."""
        return await self.pool.fetchval(
            "SELECT count(*) FROM participants WHERE conference_id = $1 AND (state = 'connected' "
            "OR (state IN ('calling', 'ringing') AND (origin = 'dialout' "
            "OR created_at > now() - interval '30 seconds')))", conference_id)

    async def mark_changed(self, conference_id: int) -> None:
        await self.pool.execute(
            "UPDATE conferences SET occurrence_changed = true, updated_at = now() WHERE id = $1", conference_id)

    async def owner_mail(self, owner_id: int) -> dict[str, Any]:
        """What the series' mail needs of its owner: name, e-mail, language, time zone, own-copy switch."""
        row = await self.pool.fetchrow(
            "SELECT name, email, language, timezone, mail_own_copy FROM accounts WHERE id = $1", owner_id)
        return dict(row) if row else {}
