"""The operator's store: the number-plan groups (their SQL is here) and, for the operator's pages
and API, the accounts and running conferences of everyone, asked of the account and conference
aggregates' repositories."""

from __future__ import annotations

from typing import Any

import asyncpg

from engine.adapters.db.accounts import AccountRepository
from engine.adapters.db.conferences import ConferenceRepository

GROUP_COLUMNS = "name, description, patterns, allow_international, allow_premium, created_at, updated_at"


def _record(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None


class OperatorRepository:
    """Number-plan groups, and every account and running conference as the operator sees them."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.accounts = AccountRepository(pool)
        self.conferences = ConferenceRepository(pool)

    # ------------------------------------------------------------------ accounts

    async def list_accounts(self, search: str = "", limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        """Accounts whose phone, name or e-mail contains ``search``, newest first."""
        return await self.accounts.search(search, limit, offset)

    async def get_account(self, account_id: int) -> dict[str, Any] | None:
        return await self.accounts.managed(account_id)

    async def update_account(self, account_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
        """Change the operator-managed columns; None when there is no such account.
        Raises asyncpg.ForeignKeyViolationError for an unknown plan group."""
        return await self.accounts.update_managed(account_id, values)

    async def set_password_hash(self, account_id: int, password_hash: str) -> bool:
        return await self.accounts.set_password_hash(account_id, password_hash)

    async def delete_account(self, account_id: int) -> bool:
        """Delete the account and (by cascade) its conferences, address book, sessions and tokens."""
        return await self.accounts.delete(account_id)

    async def account_conferences(self, account_id: int, states: tuple[str, ...]) -> list[int]:
        return await self.conferences.owner_conference_ids(account_id, states)

    async def account_blocked(self, account_id: int) -> bool | None:
        """The blocked flag, or None when there is no such account."""
        return await self.accounts.blocked(account_id)

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

    # ------------------------------------------------------------------ running conferences

    async def running_conferences(self) -> list[dict[str, Any]]:
        """Every running conference with its owner and participant counts."""
        return await self.conferences.running_overview()
