"""The console for daily use in a real Chromium, in both languages: a scheduled conference says
what will happen and offers Start now (no Extend / Lock / End / Invite yet); once started, a
participant can be added without dialling, the tabs split invited from dialled-in participants, a
connected participant becomes a chair live, and End asks once and respects Cancel."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Dialog, expect

from tests.support.browser import LIVE_TIMEOUT_MS, log_in, shot
from tests.support.portal import new_account

pytestmark = [pytest.mark.stack, pytest.mark.browser]

# SIPp callees that answer and wait (tests/sipp/pstn.xml); one pair per language
NUMBERS = {"ru": ("375290021100", "375290022100"), "en": ("375290023100", "375290024100")}
TEXT = {
    "ru": {"start": "Начать сейчас", "not_started": "Ещё не началась", "chair": "ведущий", "guest": "гость",
           "invited": "Приглашённые"},
    "en": {"start": "Start now", "not_started": "Not started yet", "chair": "chair", "guest": "guest",
           "invited": "Invited"},
}


async def until(check, timeout: float = 10.0) -> None:
    """Wait for a condition the page's dialog handler makes true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_start_now_tabs_roles_and_one_end_prompt(browser: Browser, engine, portal_url: str, screens: Path,
                                                        pstn, lang: str) -> None:
    planned, quiet = NUMBERS[lang]
    text = TEXT[lang]
    account = await new_account(engine, language=lang, name="Vera")
    issued = await engine.services.tokens.issue(account.id, "console test")
    start = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {issued.secret}"}) as http:
        async with http.post(f"{portal_url}/api/v1/conferences", json={
            "subject": "Weekly sync", "start": start, "duration_minutes": 30, "max_participants": 5,
            "auto_invite": True, "participants": [{"number": planned, "name": "Pavel"}],
        }) as reply:
            assert reply.status == 201, await reply.text()
            conference = await reply.json()
        cid = conference["id"]
        context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale=lang)
        page = await context.new_page()
        dialogs: list[str] = []
        answers = [False, True]  # Cancel the first End, accept the second

        async def on_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            await (dialog.accept() if answers.pop(0) else dialog.dismiss())

        page.on("dialog", on_dialog)
        try:
            await log_in(page, engine, portal_url, account.phone)
            await page.goto(f"{portal_url}/conferences/{cid}")
            await expect(page.locator("[data-test=start-now]")).to_have_text(text["start"])
            await shot(page, screens, lang, "card-scheduled-start-now")

            await page.goto(f"{portal_url}/conferences/{cid}/console")
            scheduled = page.locator("[data-scheduled-only]")
            await expect(scheduled).to_be_visible()
            await expect(scheduled).to_contain_text(text["not_started"])
            await expect(scheduled.locator("[data-dial-list]")).to_contain_text(planned)
            for hidden in ("[data-test=extend-15]", "[data-test=lock]", "[data-test=end]",
                           "[data-test=invite-selected]", "[data-test=add-invite]"):
                await expect(page.locator(hidden)).to_be_hidden()
            await shot(page, screens, lang, "console-scheduled")

            await page.click("[data-test=start-now]")
            await expect(scheduled).to_be_hidden(timeout=LIVE_TIMEOUT_MS)
            row = page.locator("tr[data-participant]", has_text=planned)
            await expect(row).to_have_attribute("data-state", "connected", timeout=LIVE_TIMEOUT_MS)
            await expect(page.locator("[data-test=invite-selected]")).to_be_visible()

            # add without dialling: the row stays planned
            mark = pstn.message_offset()
            await page.fill("[data-add-form] input[name=number]", quiet)
            await page.fill("[data-add-form] input[name=name]", "Quiet")
            await page.uncheck("[data-test=add-invite]")
            await page.click("[data-test=add-participant]")
            added = page.locator("tr[data-participant]", has_text=quiet)
            await expect(added).to_have_attribute("data-state", "planned", timeout=LIVE_TIMEOUT_MS)

            # make the connected participant a chair: the badge follows live
            await row.locator("[data-test=make-chair]").click()
            await expect(row.locator("[data-col=role]")).to_have_text(text["chair"], timeout=LIVE_TIMEOUT_MS)
            await expect(row).to_have_attribute("data-state", "connected")
            pavel = await row.get_attribute("data-participant")
            async with http.patch(f"{portal_url}/api/v1/conferences/{cid}/participants/{pavel}",
                                  json={"role": "guest"}) as reply:
                assert reply.status == 200, await reply.text()
            await expect(row.locator("[data-col=role]")).to_have_text(text["guest"], timeout=LIVE_TIMEOUT_MS)
            await expect(row.locator("[data-test=make-chair]")).to_be_visible()

            # tabs: invited shows both dialled-out rows, dialled-in none
            await page.click("[data-tab=dialin]")
            await expect(page.locator("tr[data-participant]:visible")).to_have_count(0)
            await page.click("[data-tab=dialout]")
            await expect(page.locator("[data-tab=dialout]")).to_contain_text(text["invited"])
            await expect(page.locator("tr[data-participant]:visible")).to_have_count(2)
            await shot(page, screens, lang, "console-running-tabs")
            assert quiet not in [number for number, _ in pstn.invites(mark)]

            # End: one prompt; Cancel keeps the conference running
            await page.click("[data-menu] summary")
            await page.click("[data-test=end]")
            await until(lambda: dialogs)
            async with http.get(f"{portal_url}/api/v1/conferences/{cid}") as reply:
                assert (await reply.json())["state"] == "running"
            await page.click("[data-test=end]")
            await page.wait_for_url(f"**/history/{cid}", timeout=LIVE_TIMEOUT_MS)
            assert len(dialogs) == 2, dialogs
            async with http.get(f"{portal_url}/api/v1/conferences/{cid}") as reply:
                assert (await reply.json())["state"] == "ended"
        finally:
            await context.close()
            async with http.post(f"{portal_url}/api/v1/conferences/{cid}/end"):
                pass
