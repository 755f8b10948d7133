"""The Help page's keypad table in Chromium, in both languages (screenshots in artifacts/screens)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.support.browser import log_in, shot
from tests.support.portal import new_account

pytestmark = [pytest.mark.stack, pytest.mark.browser]

TITLES = {"ru": ("Команды с клавиатуры телефона", "Продлить конференцию на 15 минут"),
          "en": ("Keypad commands during the call", "Extend the conference by 15 minutes")}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_help_shows_the_keypad_commands(lang: str, browser: Browser, engine, portal_url: str,
                                              screens: Path) -> None:
    account = await new_account(engine, language=lang)
    context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale=lang)
    page = await context.new_page()
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.goto(portal_url + "/help")
        table = page.locator("[data-keypad-help]")
        await expect(table).to_be_visible()
        await expect(table.locator("tbody tr")).to_have_count(8)
        for text in TITLES[lang]:
            await expect(page.locator(".help")).to_contain_text(text)
        await table.scroll_into_view_if_needed()
        await shot(page, screens, lang, "help-keypad")
    finally:
        await context.close()
