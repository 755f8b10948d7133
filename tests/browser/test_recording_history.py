"""A recorded conference in History, in Chromium and both languages: the list shows the
recording's length and size, the detail page plays it (Ogg/Opus, fetched with range requests)
and the owner deletes it (screenshots in artifacts/screens)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from engine.domain.model import ConferencePlan
from tests.support.browser import log_in, shot
from tests.support.factories import wait_until
from tests.support.portal import new_account

pytestmark = [pytest.mark.stack, pytest.mark.browser]

TEXTS = {"ru": ("Записи", "Удалить"), "en": ("Recordings", "Delete")}


async def recorded_conference(engine, owner_id: int) -> int:
    """An immediate recorded conference, ended once its recorder has written a few seconds."""
    planning, live, recording = engine.services.planning, engine.services.live, engine.services.recording
    conference = await planning.plan(owner_id, ConferencePlan(
        subject="Recorded meeting", start=None, duration_minutes=10, max_participants=2, recording=True))

    async def written():
        row = await recording.repo.running(conference.id)
        if not row or not row["raw_path"]:
            return None
        path = recording.host_path(row["raw_path"])
        return path.exists() and path.stat().st_size > 44 + 2 * 16000

    await wait_until(engine, written, timeout=40, what="two seconds recorded")
    await live.end(owner_id, conference.id)

    async def ready():
        rows = await recording.list_for(owner_id, [conference.id])
        return rows and rows[0]["state"] == "ready"

    await wait_until(engine, ready, timeout=40, what="the converted recording")
    return conference.id


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_history_lists_plays_and_deletes_a_recording(lang: str, browser: Browser, engine, portal_url: str,
                                                          screens: Path) -> None:
    account = await new_account(engine, language=lang)
    conference_id = await recorded_conference(engine, account.id)
    context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale=lang)
    page = await context.new_page()
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.goto(portal_url + "/history?range=today")
        cell = page.locator(f"tr[data-conference='{conference_id}'] [data-recordings] a")
        await expect(cell).to_have_count(1)
        await expect(cell).to_contain_text("KB" if lang == "en" else "КБ")
        await shot(page, screens, lang, "history-recording")

        await page.goto(f"{portal_url}/history/{conference_id}")
        card = page.locator("[data-history-recordings]")
        await expect(card).to_contain_text(TEXTS[lang][0])
        duration = await card.locator("audio").evaluate("""audio => new Promise((done, fail) => {
            audio.addEventListener('loadedmetadata', () => { audio.currentTime = 1; });
            audio.addEventListener('seeked', () => done(audio.duration));
            audio.addEventListener('error', () => fail(String(audio.error && audio.error.code)));
            audio.preload = 'metadata'; audio.load(); })""")
        assert duration >= 2, duration
        await card.scroll_into_view_if_needed()
        await shot(page, screens, lang, "history-recording-detail")

        await card.get_by_role("button", name=TEXTS[lang][1]).click()
        await expect(page.locator("[data-history-recordings]")).to_have_count(0)
        assert await engine.services.recording.list_for(account.id, [conference_id]) == []
    finally:
        await context.close()
