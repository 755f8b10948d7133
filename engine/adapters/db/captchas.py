"""SQL of the login CAPTCHAs: the answer stays in the database; taking it deletes it (single use)."""

from __future__ import annotations

from datetime import datetime

import asyncpg


class CaptchaRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(self, captcha_id: str, answer: str, expires_at: datetime) -> None:
        await self.pool.execute(
            "INSERT INTO captchas (id, answer, expires_at) VALUES ($1, $2, $3)", captcha_id, answer, expires_at)

    async def peek(self, captcha_id: str) -> str | None:
        return await self.pool.fetchval(
            "SELECT answer FROM captchas WHERE id = $1 AND expires_at > now()", captcha_id)

    async def take(self, captcha_id: str) -> str | None:
        """The answer, deleting the CAPTCHA whatever the caller does next."""
        return await self.pool.fetchval(
            "DELETE FROM captchas WHERE id = $1 RETURNING CASE WHEN expires_at > now() THEN answer END",
            captcha_id)

    async def purge_expired(self) -> None:
        await self.pool.execute("DELETE FROM captchas WHERE expires_at < now()")
