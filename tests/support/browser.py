"""Helpers of the browser tests: Chromium flags, screenshots, logging in through the CAPTCHA."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page

from tests.support.captcha import captcha_answer
from tests.support.portal import PASSWORD

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
LIVE_TIMEOUT_MS = 30_000


async def shot(page: Page, screens: Path, lang: str, name: str) -> None:
    await page.screenshot(path=str(screens / f"{lang}-{name}.png"), full_page=True)


async def log_in(page: Page, engine, portal_url: str, phone: str) -> None:
    """Log in with the CAPTCHA answer read from its row."""
    await page.goto(portal_url + "/login")
    captcha_id = await page.locator("input[name=captcha_id]").input_value()
    answer = await captcha_answer(engine.pool, captcha_id)
    await page.fill("input[name=phone]", phone)
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=captcha]", answer)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/planning")
