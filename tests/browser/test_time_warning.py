"""The live console warns that time runs out: a banner counting down once the end is within the
warning time, hidden again (with a notice) when the chair extends; the voice language is a
Planning choice. In a real Chromium, in both languages."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from tests.support.browser import LIVE_TIMEOUT_MS, log_in, shot
from tests.support.portal import new_account

pytestmark = [pytest.mark.stack, pytest.mark.browser]

TEXTS = {
    "ru": {"banner": "Время на исходе", "extended": "Конференция продлена на 15 мин", "language": "Язык"},
    "en": {"banner": "Time is running out", "extended": "The conference was extended by 15 min",
           "language": "Voice language"},
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_console_counts_down_before_the_end_and_hides_after_extension(
        browser: Browser, engine, portal_url: str, screens: Path, lang: str) -> None:
    account = await new_account(engine, language=lang, name="Chair")
    issued = await engine.services.tokens.issue(account.id, "time warning test")
    warning_minutes = int(engine.settings.warning_seconds // 60)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {issued.secret}"}) as http:
        # the end is within the warning time from the start: the banner shows at once
        async with http.post(f"{portal_url}/api/v1/conferences", json={
            "subject": f"Countdown {lang}", "start": "now", "duration_minutes": warning_minutes,
            "max_participants": 3, "participants": [],
        }) as reply:
            assert reply.status == 201, await reply.text()
            conference = await reply.json()
        assert conference["language"] == lang  # the owner's portal language by default

        context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale=lang)
        page = await context.new_page()
        try:
            await log_in(page, engine, portal_url, account.phone)
            await page.goto(f"{portal_url}/conferences/{conference['id']}/console")
            banner = page.locator("[data-time-warning]")
            await expect(banner).to_be_visible(timeout=LIVE_TIMEOUT_MS)
            await expect(banner).to_contain_text(TEXTS[lang]["banner"])
            countdown = page.locator("[data-countdown]")
            await expect(countdown).to_have_text(re.compile(r"^\d+:\d\d$"))
            first = await countdown.text_content()
            await expect(countdown).not_to_have_text(first or "", timeout=5_000)  # it counts down
            await shot(page, screens, lang, "console-time-warning")

            await page.locator("[data-menu] summary").click()
            await page.locator("[data-test=extend-15]").click()
            await expect(page.locator("[data-toast]")).to_contain_text(TEXTS[lang]["extended"],
                                                                       timeout=LIVE_TIMEOUT_MS)
            await expect(banner).to_be_hidden(timeout=LIVE_TIMEOUT_MS)
            await shot(page, screens, lang, "console-extended")

            # Planning offers the voice language, pre-set to the portal language
            await page.goto(f"{portal_url}/planning")
            select = page.locator("select[name=language]")
            await expect(select).to_have_value(lang)
            await page.locator("details.advanced summary").click()
            await expect(page.locator("details.advanced")).to_contain_text(TEXTS[lang]["language"])
            await shot(page, screens, lang, "planning-voice-language")
        finally:
            await context.close()
            async with http.post(f"{portal_url}/api/v1/conferences/{conference['id']}/end") as reply:
                assert reply.status in (200, 409), await reply.text()
