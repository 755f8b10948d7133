"""Image CAPTCHAs for the login form: drawn locally with the `captcha` package; the answer stays
server-side and is consumed by the first check, right or wrong."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

from captcha.image import ImageCaptcha

from engine.adapters.db.captchas import CaptchaRepository
from engine.domain.errors import Forbidden

CAPTCHA_ALPHABET = "ACDEFHJKLMNPRTUVWXY34679"  # no look-alikes (0/O, 1/I, 5/S, 8/B, 2/Z)
CAPTCHA_LENGTH = 5
CAPTCHA_LIFETIME = timedelta(minutes=10)


class CaptchaService:
    def __init__(self, repository: CaptchaRepository, *, test_mode: bool = False) -> None:
        self.repository = repository
        self.test_mode = test_mode
        self._painter = ImageCaptcha(width=200, height=70)

    async def new(self) -> str:
        """A new CAPTCHA's id (its answer is stored, never returned)."""
        captcha_id = secrets.token_urlsafe(16)
        answer = "".join(secrets.choice(CAPTCHA_ALPHABET) for _ in range(CAPTCHA_LENGTH))
        await self.repository.insert(captcha_id, answer, datetime.now(UTC) + CAPTCHA_LIFETIME)
        return captcha_id

    async def image(self, captcha_id: str) -> bytes | None:
        """The PNG picture of a live CAPTCHA, or None."""
        answer = await self.repository.peek(captcha_id)
        if answer is None:
            return None
        return await asyncio.to_thread(lambda: self._painter.generate(answer, format="png").getvalue())

    async def check(self, captcha_id: str | None, answer: str | None) -> bool:
        """True when ``answer`` matches; the CAPTCHA is used up either way."""
        if not captcha_id or not answer:
            if captcha_id:
                await self.repository.take(captcha_id)
            return False
        expected = await self.repository.take(captcha_id)
        return expected is not None and secrets.compare_digest(expected.upper(), answer.strip().upper())

    async def answer_for_test(self, captcha_id: str) -> str | None:
        """Test-only hook for the browser tests; refused unless settings.test_mode is on."""
        if not self.test_mode:
            raise Forbidden("The CAPTCHA test hook is off")
        return await self.repository.peek(captcha_id)

    async def start(self) -> None:
        await self.repository.purge_expired()

