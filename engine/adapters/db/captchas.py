"""SQL of the login CAPTCHAs: the answer stays in the database; taking it deletes it (single use).
The table is bounded: every insert trims the client address's rows to its newest ``per_address``
and the whole table to the newest ``keep``."""

from __future__ import annotations

from datetime import datetime

import asyncpg


class CaptchaRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(self, captcha_id: str, answer: str, expires_at: datetime, *, address: str, keep: int,
                     per_address: int) -> None:
        """Store a CAPTCHA, then drop the address's oldest beyond ``per_address`` and the table's
        oldest beyond ``keep`` (each insert's trim runs after its own insert, so once the inserts
        end the bounds hold)."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO captchas (id, answer, expires_at, address) VALUES ($1, $2, $3, $4)",
                captcha_id, answer, expires_at, address)
            # SKIP LOCKED: rows another trim is deleting are left to it, so parallel trims never deadlock
            await conn.execute(
                """DELETE FROM captchas WHERE id IN (
                       SELECT id FROM captchas WHERE address = $1 AND created_at <= (
                           SELECT created_at FROM captchas WHERE address = $1
                           ORDER BY created_at DESC OFFSET $2 LIMIT 1)
                       FOR UPDATE SKIP LOCKED)""", address, per_address)
            await conn.execute(
                """DELETE FROM captchas WHERE id IN (
                       SELECT id FROM captchas WHERE created_at <= (
                           SELECT created_at FROM captchas ORDER BY created_at DESC OFFSET $1 LIMIT 1)
                       FOR UPDATE SKIP LOCKED)""", keep)

    async def picture(self, captcha_id: str) -> tuple[str, bytes | None] | None:
        """(answer, stored PNG or None) of a live CAPTCHA, or None."""
        row = await self.pool.fetchrow(
            "SELECT answer, image FROM captchas WHERE id = $1 AND expires_at > now()", captcha_id)
        return None if row is None else (row["answer"], row["image"])

    async def store_picture(self, captcha_id: str, image: bytes) -> bytes | None:
        """Keep the rendered PNG unless another request stored one first; returns the stored one."""
        return await self.pool.fetchval(
            """UPDATE captchas SET image = coalesce(image, $2) WHERE id = $1 RETURNING image""",
            captcha_id, image)

    async def take(self, captcha_id: str) -> str | None:
        """The answer, deleting the CAPTCHA whatever the caller does next."""
        return await self.pool.fetchval(
            "DELETE FROM captchas WHERE id = $1 RETURNING CASE WHEN expires_at > now() THEN answer END",
            captcha_id)

    async def count(self) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM captchas")

    async def purge_expired(self) -> int:
        status = await self.pool.execute("DELETE FROM captchas WHERE expires_at < now()")
        return int(status.split()[-1])
