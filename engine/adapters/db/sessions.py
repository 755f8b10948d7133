"""SQL of the portal's server-side web sessions: one row per session, keyed by the hash of the
cookie value, so a session can be revoked and a database dump does not hand out live cookies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass
class StoredSession:
    token_hash: str
    account_id: int | None
    data: dict[str, Any]
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class SessionRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get_live(self, token_hash: str, idle_since: datetime) -> StoredSession | None:
        """The session if it is neither revoked, expired nor idle since before ``idle_since``;
        touches last_seen_at."""
        row = await self.pool.fetchrow(
            """UPDATE web_sessions SET last_seen_at = now()
               WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now() AND last_seen_at > $2
               RETURNING token_hash, account_id, data, created_at, last_seen_at, expires_at""",
            token_hash, idle_since)
        if row is None:
            return None
        values = dict(row)
        values["data"] = json.loads(values["data"])
        return StoredSession(**values)

    async def upsert(self, token_hash: str, account_id: int | None, data: dict[str, Any],
                     expires_at: datetime) -> None:
        await self.pool.execute(
            """INSERT INTO web_sessions (token_hash, account_id, data, expires_at)
               VALUES ($1, $2, $3::jsonb, $4)
               ON CONFLICT (token_hash) DO UPDATE
               SET account_id = EXCLUDED.account_id, data = EXCLUDED.data, last_seen_at = now()
               WHERE web_sessions.revoked_at IS NULL""",
            token_hash, account_id, json.dumps(data), expires_at)

    async def revoke(self, token_hash: str) -> None:
        await self.pool.execute(
            "UPDATE web_sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL", token_hash)

    async def revoke_account(self, account_id: int, keep: str | None = None) -> int:
        status = await self.pool.execute(
            """UPDATE web_sessions SET revoked_at = now()
               WHERE account_id = $1 AND revoked_at IS NULL AND token_hash IS DISTINCT FROM $2""",
            account_id, keep)
        return int(status.split()[-1])

    async def purge(self, before: datetime) -> None:
        await self.pool.execute(
            "DELETE FROM web_sessions WHERE expires_at < $1 OR revoked_at < $1 OR last_seen_at < $1", before)
