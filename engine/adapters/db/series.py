"""The series aggregate's SQL: recurring series and permanent rooms (``conference_series``: the
plan, number and calendar identity their conferences share). A series has its own identity and
life (it is planned, changed and closed on its own); the conferences it materialises are rows of
the conference aggregate, so ``SeriesRepository`` asks ``ConferenceRepository`` about them and
``AccountRepository`` about the owner."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from engine.adapters.db import assignments
from engine.adapters.db.accounts import AccountRepository
from engine.adapters.db.conferences import ConferenceRepository

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
        self.conferences = ConferenceRepository(pool)
        self.accounts = AccountRepository(pool)

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
        values = {k: json.dumps(v) if k in ("plan", "recurrence") and v is not None else v for k, v in changes.items()}
        sets, args = assignments(values, _WRITABLE, 2)
        return _series(await self.pool.fetchrow(
            f"UPDATE conference_series SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_SELECT}",
            series_id, *args))

    async def next_sequence(self, series_id: int) -> int:
        """Raise the series' iCalendar SEQUENCE and return it."""
        return await self.pool.fetchval(
            "UPDATE conference_series SET mail_sequence = mail_sequence + 1 WHERE id = $1 RETURNING mail_sequence",
            series_id)

    async def conference_ids(self, series_id: int, states: tuple[str, ...] | None = None) -> list[int]:
        """The series' conferences (occurrences or sessions), earliest start first."""
        return await self.conferences.series_conference_ids(series_id, states)

    async def occurrence_starts(self, series_id: int) -> dict[datetime, str]:
        """Every materialised occurrence: the rule's start -> the occurrence's state."""
        return await self.conferences.occurrence_starts(series_id)

    async def room_by_number(self, conference_number: str) -> dict[str, Any] | None:
        """The open permanent room with this number (a blocked account's rooms do not answer)."""
        return _series(await self.pool.fetchrow(
            f"SELECT {_SELECT} FROM conference_series WHERE conference_number = $1 AND kind = 'permanent' "
            "AND state = 'active' AND owner_id NOT IN (SELECT id FROM accounts WHERE blocked)", conference_number))

    async def present(self, conference_id: int) -> int:
        """Participants in the room or on their way in (a dial-in caller admitted moments ago)."""
        return await self.conferences.present(conference_id)

    async def mark_changed(self, conference_id: int) -> None:
        await self.conferences.mark_occurrence_changed(conference_id)

    async def owner_mail(self, owner_id: int) -> dict[str, Any]:
        """What the series' mail needs of its owner: name, e-mail, language, time zone, own-copy switch."""
        return await self.accounts.mail_profile(owner_id)
