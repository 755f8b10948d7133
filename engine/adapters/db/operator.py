"""SQL of the operator's pages and API: accounts as the operator manages them (limits, number-plan group,
blocking, deletion), number-plan groups, the running conferences of every account, and the
append-only audit log (insert and read only: there is deliberately no update or delete here)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from engine.adapters.db import update_by_id

OPERATOR_ACCOUNT_COLUMNS = (
    "id, phone, name, email, language, timezone, role, max_participants, max_concurrent_conferences, "
    "max_dialouts_per_minute, max_concurrent_calls, blocked, plan_group, created_at, updated_at, admin, "
    "recording_allowed")
OPERATOR_WRITABLE = frozenset({"name", "email", "language", "timezone", "max_participants",
                               "max_concurrent_conferences", "max_dialouts_per_minute", "max_concurrent_calls",
                               "blocked", "plan_group", "recording_allowed"})
GROUP_COLUMNS = "name, description, patterns, allow_international, allow_premium, created_at, updated_at"
AUDIT_COLUMNS = "id, at, actor, actor_id, action, account_id, conference_id, address, detail"


def _record(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None


def _audit(row: asyncpg.Record) -> dict[str, Any]:
    entry = dict(row)
    entry["detail"] = json.loads(entry["detail"]) if isinstance(entry["detail"], str) else entry["detail"]
    return entry


class OperatorRepository:
    """Accounts, number-plan groups and running conferences across every account."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ------------------------------------------------------------------ accounts

    async def list_accounts(self, search: str = "", limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        """Accounts whose phone, name or e-mail contains ``search``, newest first."""
        rows = await self.pool.fetch(
            f"SELECT {OPERATOR_ACCOUNT_COLUMNS} FROM accounts "
            "WHERE $1 = '' OR phone LIKE '%' || $1 || '%' OR strpos(lower(name), lower($1)) > 0 "
            "OR strpos(lower(coalesce(email, '')), lower($1)) > 0 "
            "ORDER BY id DESC LIMIT $2 OFFSET $3", search, limit, offset)
        return [dict(r) for r in rows]

    async def get_account(self, account_id: int) -> dict[str, Any] | None:
        return _record(await self.pool.fetchrow(
            f"SELECT {OPERATOR_ACCOUNT_COLUMNS} FROM accounts WHERE id = $1", account_id))

    async def update_account(self, account_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
        """Change the operator-managed columns; None when there is no such account.
        Raises asyncpg.ForeignKeyViolationError for an unknown plan group."""
        if not values:
            return await self.get_account(account_id)
        sql, args = update_by_id("accounts", values, OPERATOR_WRITABLE, OPERATOR_ACCOUNT_COLUMNS)
        return _record(await self.pool.fetchrow(sql, account_id, *args))

    async def set_password_hash(self, account_id: int, password_hash: str) -> bool:
        result = await self.pool.execute(
            "UPDATE accounts SET password_hash = $2, updated_at = now() WHERE id = $1", account_id, password_hash)
        return result.endswith(" 1")

    async def delete_account(self, account_id: int) -> bool:
        """Delete the account and (by cascade) its conferences, address book, sessions and tokens."""
        result = await self.pool.execute("DELETE FROM accounts WHERE id = $1", account_id)
        return result.endswith(" 1")

    async def account_conferences(self, account_id: int, states: tuple[str, ...]) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT id FROM conferences WHERE owner_id = $1 AND state = ANY($2::text[]) ORDER BY id",
            account_id, list(states))
        return [r["id"] for r in rows]

    async def account_blocked(self, account_id: int) -> bool | None:
        """The blocked flag, or None when there is no such account."""
        return await self.pool.fetchval("SELECT blocked FROM accounts WHERE id = $1", account_id)

    # ------------------------------------------------------------------ number-plan groups

    async def list_groups(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {GROUP_COLUMNS}, (SELECT count(*) FROM accounts a WHERE a.plan_group = g.name) AS accounts "
            "FROM number_plan_groups g ORDER BY name = 'default' DESC, name")
        return [dict(r) for r in rows]

    async def get_group(self, name: str) -> dict[str, Any] | None:
        return _record(await self.pool.fetchrow(
            f"SELECT {GROUP_COLUMNS} FROM number_plan_groups WHERE name = $1", name))

    async def save_group(self, name: str, description: str, patterns: list[str], allow_international: bool,
                         allow_premium: bool) -> dict[str, Any]:
        """Create or replace a group."""
        row = await self.pool.fetchrow(
            "INSERT INTO number_plan_groups (name, description, patterns, allow_international, allow_premium) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, "
            "patterns = EXCLUDED.patterns, allow_international = EXCLUDED.allow_international, "
            f"allow_premium = EXCLUDED.allow_premium, updated_at = now() RETURNING {GROUP_COLUMNS}",
            name, description, patterns, allow_international, allow_premium)
        return dict(row)

    async def delete_group(self, name: str) -> bool:
        """Raises asyncpg.ForeignKeyViolationError while accounts use the group."""
        result = await self.pool.execute("DELETE FROM number_plan_groups WHERE name = $1", name)
        return result.endswith(" 1")

    async def group_of_account(self, account_id: int) -> dict[str, Any] | None:
        """The number-plan group of the account (None when there is no such account)."""
        return _record(await self.pool.fetchrow(
            "SELECT g.name, g.patterns, g.allow_international, g.allow_premium FROM accounts a "
            "JOIN number_plan_groups g ON g.name = a.plan_group WHERE a.id = $1", account_id))

    # ------------------------------------------------------------------ running conferences

    async def running_conferences(self) -> list[dict[str, Any]]:
        """Every running conference with its owner and participant counts."""
        rows = await self.pool.fetch(
            "SELECT c.id, c.subject, c.node_id, c.room, c.conference_number, c.started_at, c.ends_at, "
            "c.max_participants, c.locked, c.owner_id, a.phone AS owner_phone, a.name AS owner_name, "
            "count(p.id) FILTER (WHERE p.state = 'connected') AS connected, "
            "count(p.id) FILTER (WHERE p.state IN ('calling', 'ringing')) AS dialling, "
            "count(p.id) AS participants "
            "FROM conferences c JOIN accounts a ON a.id = c.owner_id "
            "LEFT JOIN participants p ON p.conference_id = c.id "
            "WHERE c.state = 'running' GROUP BY c.id, a.id ORDER BY c.started_at")
        return [dict(r) for r in rows]


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
