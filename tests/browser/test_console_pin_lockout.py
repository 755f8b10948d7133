"""A PIN lock-out caused by a SIPp caller's wrong PINs shows up live, without a reload, as a
banner in the owner's console in a real Chromium."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from tests.support.agi_trace import AgiTrace, key_when_asked
from tests.support.browser import LIVE_TIMEOUT_MS, log_in, shot
from tests.support.portal import new_account

pytestmark = [pytest.mark.stack, pytest.mark.browser]


async def test_pin_lockout_banner_appears_live_in_the_owners_console(browser: Browser, engine, portal_url: str,
                                                                     screens: Path, sipp,
                                                                     agi_trace: AgiTrace) -> None:
    account = await new_account(engine, language="en", name="Lena")
    issued = await engine.services.tokens.issue(account.id, "lock-out test")
    guard = engine.services.pin_guard
    saved = guard.policy
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {issued.secret}"}) as http:
        async with http.post(f"{portal_url}/api/v1/conferences", json={
            "subject": "Guarded stand-up", "start": "now", "duration_minutes": 30, "max_participants": 5,
        }) as reply:
            assert reply.status == 201, await reply.text()
            conference = await reply.json()
        wrong = [p for p in ("314159", "271828", "161803", "141421")
                 if p not in (conference["chair_pin"], conference["guest_pin"])][:3]
        keying: asyncio.Future | None = None
        context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale="en")
        page = await context.new_page()
        try:
            await log_in(page, engine, portal_url, account.phone)
            await page.goto(f"{portal_url}/conferences/{conference['id']}/console")
            banner = page.locator("[data-pin-lockout]")
            await expect(banner).to_be_hidden()
            await page.evaluate("window.__noReload = true")
            guard.policy = replace(saved, lockout_after=3, lockout_seconds=600)
            keying = asyncio.ensure_future(key_when_asked(  # each PIN once the engine asks for it
                sipp, agi_trace, f"{conference['conference_number']}#,{wrong[0]}#", [f"{wrong[1]}#", f"{wrong[2]}#"],
                "375297770033"))
            await expect(banner).to_be_visible(timeout=LIVE_TIMEOUT_MS)
            await expect(banner).to_contain_text("Too many wrong PINs")
            assert await page.evaluate("window.__noReload === true"), "the console reloaded"
            await shot(page, screens, "en", "console-pin-lockout")
            await keying  # the caller heard goodbye and Asterisk hung up
        finally:
            if keying is not None and not keying.done():
                keying.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keying
            guard.policy = saved
            await context.close()
            async with http.post(f"{portal_url}/api/v1/conferences/{conference['id']}/end") as reply:
                assert reply.status == 200, await reply.text()
