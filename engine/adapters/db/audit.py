"""The audit log's SQL: append-only (insert and read only: there is deliberately no update or
delete here)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

AUDIT_COLUMNS = "id, at, actor, actor_id, action, account_id, conference_id, address, detail"


def _audit(row: asyncpg.Record) -> dict[str, Any]:
    entry = dict(row)
    entry["detail"] = json.loads(entry["detail"]) if isinstance(entry["detail"], str) else entry["detail"]
    return entry


class AuditRepository:
    """The audit log: append and read. No method changes or removes an entry."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def append(self, *, actor: str, action: str, actor_id: int | None = None, account_id: int | None = None,
                     conference_id: int | None = None, address: str | None = None,
                     detail: dict[str, Any] | None = None) -> int:
        return await self.pool.fetchval(
            "INSERT INTO audit_log (actor, actor_id, action, account_id, conference_id, address, detail) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING id",
            actor, actor_id, action, account_id, conference_id, address, json.dumps(detail or {}, default=str))

    async def entries(self, *, account_id: int | None = None, action: str = "", since: datetime | None = None,
                      limit: int = 200, before_id: int | None = None) -> list[dict[str, Any]]:
        """Newest first; ``account_id`` matches the acting or the concerned account."""
        rows = await self.pool.fetch(
            f"SELECT {AUDIT_COLUMNS} FROM audit_log "
            "WHERE ($1::bigint IS NULL OR account_id = $1 OR actor_id = $1) "
            "AND ($2 = '' OR action LIKE $2 || '%') AND ($3::timestamptz IS NULL OR at >= $3) "
            "AND ($5::bigint IS NULL OR id < $5) ORDER BY id DESC LIMIT $4",
            account_id, action, since, limit, before_id)
        return [_audit(r) for r in rows]
