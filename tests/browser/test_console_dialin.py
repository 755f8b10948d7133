"""A conference created through the JSON API (bearer token) and dialled into by a SIPp caller
shows up live, without a reload, in its owner's console in a real Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from tests.support.browser import LIVE_TIMEOUT_MS, log_in, shot
from tests.support.portal import new_account

pytestmark = [pytest.mark.stack, pytest.mark.browser]


async def test_api_conference_dialin_appears_live_in_owner_console(browser: Browser, engine, portal_url: str,
                                                                   screens: Path, sipp) -> None:
    account = await new_account(engine, language="en", name="Irene")
    issued = await engine.services.tokens.issue(account.id, "console test")
    headers = {"Authorization": f"Bearer {issued.secret}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{portal_url}/api/v1/conferences", json={
            "subject": "API stand-up", "start": "now", "duration_minutes": 30, "max_participants": 5,
            "guest_pin_required": True, "participants": [],
        }) as reply:
            assert reply.status == 201, await reply.text()
            conference = await reply.json()

        context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale="en")
        page = await context.new_page()
        try:
            await log_in(page, engine, portal_url, account.phone)
            await page.goto(f"{portal_url}/conferences/{conference['id']}/console")
            await page.evaluate("window.__noReload = true")
            caller_number = "375297770011"
            caller = await sipp.caller(f"{conference['conference_number']}#,{conference['guest_pin']}#",
                                       caller=caller_number)
            row = page.locator("tr[data-participant]").filter(has_text=caller_number)
            await expect(row).to_have_attribute("data-state", re.compile("^(connected|talking)$"),
                                                timeout=LIVE_TIMEOUT_MS)
            assert await page.evaluate("window.__noReload === true"), "the console reloaded"
            await shot(page, screens, "en", "console-dialin")
            async with http.post(f"{portal_url}/api/v1/conferences/{conference['id']}/end") as reply:
                assert reply.status == 200, await reply.text()
            await expect(row).to_have_attribute("data-state", "left", timeout=LIVE_TIMEOUT_MS)
            assert await caller.wait(20) == 0, caller.log_text()[-2000:]
        finally:
            await context.close()
