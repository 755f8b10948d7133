"""SQL of the Idempotency-Key store: per account, the request each key was first used with and
the answer it got."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg


@dataclass(frozen=True)
class StoredRequest:
    operation: str
    request_hash: str
    status: int | None  # None while the first request is still being answered
    body: str | None
    headers: dict[str, str]


class IdempotencyRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, account_id: int, key: str, operation: str, request_hash: str,
                    retention: timedelta) -> StoredRequest | None:
        """Record the key for this request and return None; when the account used the key
        before (within ``retention``), return what was stored instead. Older rows are purged."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval", retention)
            inserted = await conn.fetchval(
                "INSERT INTO idempotency_keys (account_id, key, operation, request_hash) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (account_id, key) DO NOTHING RETURNING true",
                account_id, key, operation, request_hash)
            if inserted:
                return None
            row = await conn.fetchrow(
                "SELECT operation, request_hash, status, body, headers FROM idempotency_keys "
                "WHERE account_id = $1 AND key = $2", account_id, key)
        if row is None:
            return None
        return StoredRequest(row["operation"], row["request_hash"], row["status"], row["body"],
                             json.loads(row["headers"]))

    async def store(self, account_id: int, key: str, status: int, body: str, headers: dict[str, Any]) -> None:
        await self.pool.execute(
            "UPDATE idempotency_keys SET status = $3, body = $4, headers = $5::jsonb "
            "WHERE account_id = $1 AND key = $2", account_id, key, status, body, json.dumps(headers))

    async def release(self, account_id: int, key: str) -> None:
        """Forget a key whose request failed unexpectedly, so that a retry acts again."""
        await self.pool.execute(
            "DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND status IS NULL", account_id, key)
