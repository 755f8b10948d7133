"""The account aggregate's SQL: the ``accounts`` row (profile, password hash, limits, flags; the
owner's view as ``Account``, the operator's as a row of more columns), the login-attempt log the
login rate limits count, and the e-mailed links (password reset, e-mail change) with the reset
requests their rate limit counts. Links belong here because using one changes the account in the
same transaction. Web sessions and API tokens are aggregates of their own (``sessions.py``,
``tokens.py``): each has its own identity and life and never changes the account row.

Conference transactions lock the account row to check its limits (``conferences.py``); no other
module writes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from engine.adapters.db import assignments
from engine.domain.accounts import Account

ACCOUNT_COLUMNS = ("id, phone, name, email, language, timezone, role, max_participants, "
                   "max_concurrent_conferences, max_dialouts_per_minute, max_concurrent_calls, blocked, admin, "
                   "mail_own_copy")
# the operator's view of an account row (pages, API, audit)
MANAGED_COLUMNS = (
    "id, phone, name, email, language, timezone, role, max_participants, max_concurrent_conferences, "
    "max_dialouts_per_minute, max_concurrent_calls, blocked, plan_group, created_at, updated_at, admin, "
    "recording_allowed")
PROFILE_COLUMNS = frozenset({"name", "email", "language", "timezone", "mail_own_copy"})
LIMIT_COLUMNS = frozenset({"max_participants", "max_concurrent_conferences", "max_dialouts_per_minute",
                           "max_concurrent_calls", "blocked"})
MANAGED_WRITABLE = frozenset({"name", "email", "language", "timezone", "max_participants",
                              "max_concurrent_conferences", "max_dialouts_per_minute", "max_concurrent_calls",
                              "blocked", "plan_group", "recording_allowed"})


_ACCOUNT_FIELDS = tuple(name.strip() for name in ACCOUNT_COLUMNS.split(","))


def _account(row: asyncpg.Record) -> Account:
    return Account(**{name: row[name] for name in _ACCOUNT_FIELDS})


def _managed(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None


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
        return None if row is None else (_account(row), row["password_hash"])

    async def id_by_phone(self, phone: str) -> int | None:
        return await self.pool.fetchval("SELECT id FROM accounts WHERE phone = $1", phone)

    async def password_hash(self, account_id: int) -> str | None:
        return await self.pool.fetchval("SELECT password_hash FROM accounts WHERE id = $1", account_id)

    async def set_password_hash(self, account_id: int, password_hash: str) -> bool:
        """False when there is no such account."""
        result = await self.pool.execute(
            "UPDATE accounts SET password_hash = $2, updated_at = now() WHERE id = $1", account_id, password_hash)
        return result.endswith(" 1")

    async def update(self, account_id: int, values: dict[str, Any]) -> Account | None:
        """Change profile or limit columns; None when there is no such account."""
        if not values:
            return await self.get(account_id)
        sets, args = assignments(values, PROFILE_COLUMNS | LIMIT_COLUMNS, 2)
        row = await self.pool.fetchrow(
            f"UPDATE accounts SET {sets}, updated_at = now() WHERE id = $1 RETURNING {ACCOUNT_COLUMNS}",
            account_id, *args)
        return _account(row) if row else None

    async def set_admin(self, phone: str, admin: bool) -> Account | None:
        """Set an operator's admin flag (the CLI's ``account admin``); None when no such operator."""
        row = await self.pool.fetchrow(
            f"UPDATE accounts SET admin = $2, updated_at = now() WHERE phone = $1 AND role = 'operator' "
            f"RETURNING {ACCOUNT_COLUMNS}", phone, admin)
        return _account(row) if row else None

    async def limits(self, account_id: int) -> dict[str, Any] | None:
        """The account's phone, blocked flag, limits and its number-plan group's rules
        (``plan_group``, ``plan_patterns``, ``plan_allow_international``, ``plan_allow_premium``:
        a plan and a dial read them together, in one round trip) and the version of all that
        (``rules_stamp``, sql/028_dialout_grant.sql), or None when there is no such account."""
        row = await self.pool.fetchrow(
            "SELECT a.id, a.phone, a.blocked, a.max_participants, a.max_concurrent_conferences, "
            "a.max_dialouts_per_minute, a.max_concurrent_calls, a.language, a.recording_allowed, "
            "g.name AS plan_group, g.patterns AS plan_patterns, g.allow_international AS plan_allow_international, "
            "g.allow_premium AS plan_allow_premium, account_rules_stamp(a.xmin, g.xmin) AS rules_stamp "
            "FROM accounts a JOIN number_plan_groups g ON g.name = a.plan_group WHERE a.id = $1", account_id)
        return dict(row) if row else None

    async def mail_profile(self, account_id: int) -> dict[str, Any]:
        """What mail on the account's behalf needs: name, e-mail, language, time zone, own-copy switch."""
        row = await self.pool.fetchrow(
            "SELECT name, email, language, timezone, mail_own_copy FROM accounts WHERE id = $1", account_id)
        return dict(row) if row else {}

    async def recording_allowed(self, account_id: int) -> bool:
        return bool(await self.pool.fetchval("SELECT recording_allowed FROM accounts WHERE id = $1", account_id))

    async def set_recording_allowed(self, account_id: int, allowed: bool) -> bool:
        """Set the operator's flag; False when there is no such account."""
        result = await self.pool.execute(
            "UPDATE accounts SET recording_allowed = $2 WHERE id = $1", account_id, allowed)
        return result.endswith(" 1")

    # ------------------------------------------------------------------ the operator's view

    async def search(self, search: str = "", limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        """Accounts whose phone, name or e-mail contains ``search``, newest first."""
        rows = await self.pool.fetch(
            f"SELECT {MANAGED_COLUMNS} FROM accounts "
            "WHERE $1 = '' OR phone LIKE '%' || $1 || '%' OR strpos(lower(name), lower($1)) > 0 "
            "OR strpos(lower(coalesce(email, '')), lower($1)) > 0 "
            "ORDER BY id DESC LIMIT $2 OFFSET $3", search, limit, offset)
        return [dict(r) for r in rows]

    async def managed(self, account_id: int) -> dict[str, Any] | None:
        return _managed(await self.pool.fetchrow(f"SELECT {MANAGED_COLUMNS} FROM accounts WHERE id = $1", account_id))

    async def update_managed(self, account_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
        """Change the operator-managed columns; None when there is no such account.
        Raises asyncpg.ForeignKeyViolationError for an unknown plan group."""
        if not values:
            return await self.managed(account_id)
        sets, args = assignments(values, MANAGED_WRITABLE, 2)
        return _managed(await self.pool.fetchrow(
            f"UPDATE accounts SET {sets}, updated_at = now() WHERE id = $1 RETURNING {MANAGED_COLUMNS}",
            account_id, *args))

    async def delete(self, account_id: int) -> bool:
        """Delete the account and (by cascade) its conferences, address book, sessions and tokens."""
        result = await self.pool.execute("DELETE FROM accounts WHERE id = $1", account_id)
        return result.endswith(" 1")

    async def blocked(self, account_id: int) -> bool | None:
        """The blocked flag, or None when there is no such account."""
        return await self.pool.fetchval("SELECT blocked FROM accounts WHERE id = $1", account_id)

    # ------------------------------------------------------------------ login attempts

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


class AccountLinkRepository:
    """The account's e-mailed links: only the SHA-256 of a link's secret is stored, and a link is
    consumed by one atomic UPDATE; plus the password-reset requests the rate limit counts."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record_reset_request(self, account_id: int | None, address: str) -> None:
        await self.pool.execute("INSERT INTO reset_requests (account_id, address) VALUES ($1, $2)",
                                account_id, address)

    async def reset_requests_since(self, since: datetime, *, address: str | None = None,
                                   account_id: int | None = None) -> int:
        if account_id is not None:
            return await self.pool.fetchval(
                "SELECT count(*) FROM reset_requests WHERE account_id = $1 AND created_at >= $2", account_id, since)
        return await self.pool.fetchval(
            "SELECT count(*) FROM reset_requests WHERE address = $1 AND created_at >= $2", address or "", since)

    async def created_since(self, account_id: int, purpose: str, since: datetime) -> int:
        return await self.pool.fetchval("""
            SELECT count(*) FROM account_links WHERE account_id = $1 AND purpose = $2 AND created_at >= $3""",
            account_id, purpose, since)

    async def create(self, account_id: int, purpose: str, token_hash: str, expires_at: datetime,
                     new_email: str | None = None) -> None:
        """A new link; the account's earlier unused links of the same purpose stop working."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("""
                UPDATE account_links SET used_at = now()
                 WHERE account_id = $1 AND purpose = $2 AND used_at IS NULL""", account_id, purpose)
            await conn.execute("""
                INSERT INTO account_links (account_id, purpose, token_hash, new_email, expires_at)
                VALUES ($1, $2, $3, $4, $5)""", account_id, purpose, token_hash, new_email, expires_at)

    async def usable(self, purpose: str, token_hash: str, now: datetime) -> dict | None:
        """The link (account_id, new_email) when it exists, is unused and has not expired."""
        row = await self.pool.fetchrow("""
            SELECT account_id, new_email FROM account_links
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3""",
            token_hash, purpose, now)
        return dict(row) if row else None

    async def consume(self, purpose: str, token_hash: str, now: datetime, *, set_email: bool = False) -> dict | None:
        """Mark the link used, once: the first caller gets (account_id, new_email), every later
        one (and an unknown or expired link) None. With ``set_email`` the link's new address
        becomes the account's e-mail in the same transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("""
                UPDATE account_links SET used_at = $3
                 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
                RETURNING account_id, new_email""", token_hash, purpose, now)
            if row is not None and set_email:
                await conn.execute("UPDATE accounts SET email = $2 WHERE id = $1", row["account_id"], row["new_email"])
        return dict(row) if row else None

    async def purge(self, before: datetime) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM account_links WHERE expires_at < $1", before)
            await conn.execute("DELETE FROM reset_requests WHERE created_at < $1", before)
