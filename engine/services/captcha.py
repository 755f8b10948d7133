"""Image CAPTCHAs for the login form: drawn locally with the `captcha` package; the answer stays
server-side and is consumed by the first check, right or wrong. The table is bounded (the newest
PER_ADDRESS rows of each client address, the newest ``VECHE_CAPTCHA_MAX`` in all), expired rows
are purged every minute, and each picture is drawn once and kept with its row."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta

from captcha.image import ImageCaptcha

from engine.adapters.db.captchas import CaptchaRepository
from engine.services.housekeeping import Housekeeper

CAPTCHA_ALPHABET = "ACDEFHJKLMNPRTUVWXY34679"  # no look-alikes (0/O, 1/I, 5/S, 8/B, 2/Z)
CAPTCHA_LENGTH = 5
CAPTCHA_LIFETIME = timedelta(minutes=10)
PURGE_INTERVAL_SECONDS = 60.0
PER_ADDRESS = 20  # live CAPTCHAs one client address keeps; its older ones are dropped, nobody else's

log = logging.getLogger(__name__)


class CaptchaService:
    def __init__(self, repository: CaptchaRepository, *, max_rows: int = 10000) -> None:
        self.repository = repository
        self.max_rows = max_rows
        self.rendered = 0  # pictures drawn since start (each CAPTCHA at most once)
        self._painter = ImageCaptcha(width=200, height=70)
        self._housekeeper = Housekeeper("captcha-purge", PURGE_INTERVAL_SECONDS, self.purge)

    async def new(self, address: str | None = None) -> str:
        """A new CAPTCHA's id for the client at ``address`` (its answer is stored, never returned)."""
        captcha_id = secrets.token_urlsafe(16)
        answer = "".join(secrets.choice(CAPTCHA_ALPHABET) for _ in range(CAPTCHA_LENGTH))
        await self.repository.insert(captcha_id, answer, datetime.now(UTC) + CAPTCHA_LIFETIME,
                                     address=(address or "")[:64], keep=self.max_rows, per_address=PER_ADDRESS)
        return captcha_id

    async def image(self, captcha_id: str) -> bytes | None:
        """The PNG picture of a live CAPTCHA (drawn on the first fetch, then served as stored), or None."""
        if not captcha_id or len(captcha_id) > 64:
            return None
        found = await self.repository.picture(captcha_id)
        if found is None:
            return None
        answer, image = found
        if image is not None:
            return image
        drawn = await asyncio.to_thread(lambda: self._painter.generate(answer, format="png").getvalue())
        self.rendered += 1
        return await self.repository.store_picture(captcha_id, drawn) or drawn

    async def check(self, captcha_id: str | None, answer: str | None) -> bool:
        """True when ``answer`` matches; the CAPTCHA is used up either way."""
        if not captcha_id or not answer:
            if captcha_id:
                await self.repository.take(captcha_id)
            return False
        expected = await self.repository.take(captcha_id)
        return expected is not None and secrets.compare_digest(expected.upper(), answer.strip().upper())

    async def purge(self) -> int:
        """Delete expired CAPTCHAs; the number deleted."""
        return await self.repository.purge_expired()

    async def start(self) -> None:
        await self._housekeeper.start()

    async def stop(self) -> None:
        await self._housekeeper.stop()

