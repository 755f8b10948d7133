"""The answer of a login CAPTCHA, read from its row: the tests log in as a person would who can
read the picture. Production code has no way to reveal an answer."""

from __future__ import annotations

import asyncpg


async def captcha_answer(pool: asyncpg.Pool, captcha_id: str) -> str | None:
    """The answer of the live CAPTCHA ``captcha_id``, or None when it is used up or expired."""
    return await pool.fetchval(
        "SELECT answer FROM captchas WHERE id = $1 AND expires_at > now()", captcha_id)
