"""SQL of the accounts aggregate: accounts, their password hashes and the login-attempt log
that the login rate limits count."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from engine.adapters.db import update_by_id
from engine.domain.accounts import Account

ACCOUNT_COLUMNS = ("id, phone, name, email, language, timezone, role, max_participants, "
                   "max_concurrent_conferences, max_dialouts_per_minute, max_concurrent_calls, blocked, admin, "
                   "mail_own_copy")
PROFILE_COLUMNS = frozenset({"name", "email", "language", "timezone", "mail_own_copy"})
LIMIT_COLUMNS = frozenset({"max_participants", "max_concurrent_conferences", "max_dialouts_per_minute",
                           "max_concurrent_calls", "blocked"})


def _account(row: asyncpg.Record) -> Account:
    return Account(**dict(row))


class AccountRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(self, phone: str, password_hash: str, **values: Any) -> Account | None:
        """The new account, or None when the phone is taken."""
        columns = ["phone", "password_hash", *values]
        params = [phone, password_hash, *values.values()]
        placeholders = ", ".join(f"${i}" for i in range(1, len(params) + 1))
        row = await self.pool.fetchrow(
            f"INSERT INTO accounts ({', '.join(columns)}) VALUES ({placeholders}) "
            f"ON CONFLICT (phone) DO NOTHING RETURNING {ACCOUNT_COLUMNS}", *params)
        return _account(row) if row else None

    async def get(self, account_id: int) -> Account | None:
        row = await self.pool.fetchrow(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1", account_id)
        return _account(row) if row else None

    async def by_phone(self, phone: str) -> tuple[Account, str] | None:
        """The account and its password hash."""
        row = await self.pool.fetchrow(
            f"SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE phone = $1", phone)
        if row is None:
            return None
        values = dict(row)
        password_hash = values.pop("password_hash")
        return Account(**values), password_hash

    async def password_hash(self, account_id: int) -> str | None:
        return await self.pool.fetchval("SELECT password_hash FROM accounts WHERE id = $1", account_id)

    async def set_password_hash(self, account_id: int, password_hash: str) -> None:
        await self.pool.execute(
            "UPDATE accounts SET password_hash = $2, updated_at = now() WHERE id = $1", account_id, password_hash)

    async def update(self, account_id: int, values: dict[str, Any]) -> Account | None:
        if not values:
            return await self.get(account_id)
        sql, args = update_by_id("accounts", values, PROFILE_COLUMNS | LIMIT_COLUMNS, ACCOUNT_COLUMNS)
        row = await self.pool.fetchrow(sql, account_id, *args)
        return _account(row) if row else None

    async def set_admin(self, phone: str, admin: bool) -> Account | None:
        """Set an operator's admin flag (the CLI's ``account admin``); None when no such operator."""
        row = await self.pool.fetchrow(
            f"UPDATE accounts SET admin = $2, updated_at = now() WHERE phone = $1 AND role = 'operator' "
            f"RETURNING {ACCOUNT_COLUMNS}", phone, admin)
        return _account(row) if row else None

    async def record_attempt(self, phone: str, address: str | None, succeeded: bool) -> None:
        await self.pool.execute(
            "INSERT INTO login_attempts (phone, address, succeeded) VALUES ($1, $2, $3)", phone, address, succeeded)

    async def purge_attempts(self, before: datetime) -> int:
        """Forget login attempts older than ``before`` (the limits look back only minutes)."""
        status = await self.pool.execute("DELETE FROM login_attempts WHERE at < $1", before)
        return int(status.split()[-1])

    async def failures_since(self, since: datetime, *, phone: str | None = None, address: str | None = None) -> int:
        """Failed attempts after ``since`` (and after the last success, for a phone)."""
        if phone is not None:
            return await self.pool.fetchval(
                """SELECT count(*) FROM login_attempts
                   WHERE phone = $1 AND NOT succeeded AND at > $2
                     AND at > coalesce((SELECT max(at) FROM login_attempts
                                        WHERE phone = $1 AND succeeded), '-infinity')""", phone, since)
        return await self.pool.fetchval(
            "SELECT count(*) FROM login_attempts WHERE address = $1 AND NOT succeeded AND at > $2", address, since)
