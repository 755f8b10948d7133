"""SQL of the account's e-mailed links (password reset, e-mail change: only the SHA-256 of a
link's secret is stored, and a link is consumed by one atomic UPDATE) and of the password-reset
requests the rate limit counts."""

from __future__ import annotations

from datetime import datetime

import asyncpg


class AccountLinkRepository:
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

    async def consume(self, purpose: str, token_hash: str, now: datetime) -> dict | None:
        """Mark the link used, once: the first caller gets (account_id, new_email), every later
        one (and an unknown or expired link) None."""
        row = await self.pool.fetchrow("""
            UPDATE account_links SET used_at = $3
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
            RETURNING account_id, new_email""", token_hash, purpose, now)
        return dict(row) if row else None

    async def set_email(self, account_id: int, email: str) -> None:
        await self.pool.execute("UPDATE accounts SET email = $2 WHERE id = $1", account_id, email)

    async def purge(self, before: datetime) -> None:
        await self.pool.execute("DELETE FROM account_links WHERE expires_at < $1", before)
        await self.pool.execute("DELETE FROM reset_requests WHERE created_at < $1", before)
