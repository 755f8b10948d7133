"""The recordings' SQL: one row per recording of a room, with its file and state. A recording has
its own life (converted, kept, expired, deleted on its own); the account's permission and the
conference's recording error it reports are asked of their aggregates' repositories."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from engine.adapters.db import assignments
from engine.adapters.db.accounts import AccountRepository
from engine.adapters.db.conferences import ConferenceRepository

COLUMNS = ("id", "conference_id", "owner_id", "call_id", "node_id", "state", "raw_path", "file_name",
           "duration_seconds", "size_bytes", "error", "started_at", "stopped_at", "created_at")
_SELECT = ", ".join(COLUMNS)
_WRITABLE = frozenset({"state", "raw_path", "file_name", "duration_seconds", "size_bytes", "error",
                       "stopped_at"})


class RecordingRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.accounts = AccountRepository(pool)
        self.conferences = ConferenceRepository(pool)

    async def recording_allowed(self, account_id: int) -> bool:
        return await self.accounts.recording_allowed(account_id)

    async def set_allowed(self, account_id: int, allowed: bool) -> bool:
        """Set the operator's flag; False when there is no such account."""
        return await self.accounts.set_recording_allowed(account_id, allowed)

    async def insert(self, conference_id: int, owner_id: int, call_id: str, node_id: str) -> dict[str, Any] | None:
        """A new recording of a room, unless one is running there already (None then)."""
        row = await self.pool.fetchrow(
            f"INSERT INTO recordings (conference_id, owner_id, call_id, node_id) "
            f"SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM recordings "
            f"WHERE conference_id = $1 AND state = 'recording') RETURNING {_SELECT}",
            conference_id, owner_id, call_id, node_id)
        return dict(row) if row else None

    async def update(self, recording_id: int, only_state: str | None = None, **changes: Any) -> dict[str, Any] | None:
        """Write ``changes``; with ``only_state``, only while the recording is in that state."""
        sets, values = assignments(changes, _WRITABLE, 3)
        row = await self.pool.fetchrow(
            f"UPDATE recordings SET {sets} WHERE id = $1 AND ($2::text IS NULL OR state = $2) "
            f"RETURNING {_SELECT}", recording_id, only_state, *values)
        return dict(row) if row else None

    async def by_call_id(self, call_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(f"SELECT {_SELECT} FROM recordings WHERE call_id = $1", call_id)
        return dict(row) if row else None

    async def get(self, recording_id: int, owner_id: int | None) -> dict[str, Any] | None:
        """One recording, only the owner's (None for anyone else's)."""
        row = await self.pool.fetchrow(
            f"SELECT {_SELECT} FROM recordings WHERE id = $1 AND ($2::bigint IS NULL OR owner_id = $2)",
            recording_id, owner_id)
        return dict(row) if row else None

    async def running(self, conference_id: int) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            f"SELECT {_SELECT} FROM recordings WHERE conference_id = $1 AND state = 'recording' "
            f"ORDER BY id DESC LIMIT 1", conference_id)
        return dict(row) if row else None

    async def recorded_rooms(self) -> dict[str, int]:
        """The rooms of the running conferences being recorded, with their conference ids."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT c.room, c.id FROM recordings r JOIN conferences c ON c.id = r.conference_id "
            "WHERE c.state = 'running' AND r.state = 'recording'")
        return {row["room"]: row["id"] for row in rows}

    async def of_conferences(self, conference_ids: list[int], owner_id: int | None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {_SELECT} FROM recordings WHERE conference_id = ANY($1::bigint[]) "
            f"AND ($2::bigint IS NULL OR owner_id = $2) ORDER BY id", conference_ids, owner_id)
        return [dict(r) for r in rows]

    async def delete(self, recording_id: int, owner_id: int | None) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            f"DELETE FROM recordings WHERE id = $1 AND ($2::bigint IS NULL OR owner_id = $2) RETURNING {_SELECT}",
            recording_id, owner_id)
        return dict(row) if row else None

    async def expired(self, before: datetime, limit: int = 500) -> list[dict[str, Any]]:
        """Recordings past the retention period that are not being written."""
        rows = await self.pool.fetch(
            f"SELECT {_SELECT} FROM recordings WHERE created_at < $1 AND state <> 'recording' "
            f"ORDER BY created_at LIMIT $2", before, limit)
        return [dict(r) for r in rows]

    async def set_conference_error(self, conference_id: int, error: str | None) -> None:
        await self.conferences.set_recording_error(conference_id, error)
