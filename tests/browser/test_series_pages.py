"""Recurring conferences in a real Chromium, in both languages: Planning's Repeat fieldset makes a
weekly series ended after N occurrences, the series page lists the occurrences with the shared
number and PINs, an occurrence's card says Edit / Cancel act on it alone, and the whole series is
changed on its page."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect

from tests.support.browser import log_in, shot
from tests.support.portal import new_account

pytestmark = [pytest.mark.stack, pytest.mark.browser]

TEXT = {
    "ru": {"repeat": "Повторять", "rule": "Еженедельно в выбранные дни: Вт, Чт; 3 повторения",
           "one": "Одно повторение регулярной конференции", "saved": "Вся серия изменена"},
    "en": {"repeat": "Repeat", "rule": "Weekly on the chosen days: Tue, Thu; 3 occurrences",
           "one": "One occurrence of a recurring series", "saved": "The whole series was changed"},
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_weekly_series_from_planning_and_its_pages(browser: Browser, engine, portal_url: str, screens: Path,
                                                         lang: str) -> None:
    text = TEXT[lang]
    account = await new_account(engine, language=lang, name="Vera")
    zone = ZoneInfo(account.timezone)
    day = (datetime.now(zone) + timedelta(days=2)).date()
    context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale=lang)
    page = await context.new_page()
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.goto(f"{portal_url}/planning")
        await page.fill("input[name=subject]", "Weekly planning")
        await page.check("input[name=when][value=later]")
        await page.fill("input[name=date]", day.isoformat())
        await page.fill("input[name=time]", "10:00")
        await expect(page.locator("[data-repeat] legend")).to_have_text(text["repeat"])
        await page.select_option("[data-test=repeat]", "weekly")
        await page.check("input[name=repeat_days][value=tu]")
        await page.check("input[name=repeat_days][value=th]")
        await page.fill("[data-test=repeat-count]", "3")
        await page.locator("[data-repeat]").scroll_into_view_if_needed()
        await shot(page, screens, lang, "series-form")
        await page.click("[data-test=schedule]")
        await page.wait_for_url("**/series/*")
        await expect(page.locator("[data-test=series-rule]")).to_contain_text(text["rule"])
        rows = page.locator("[data-test=occurrences] tbody tr")
        await expect(rows).to_have_count(3)
        series_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
        starts = await engine.pool.fetch("SELECT starts_at FROM conferences WHERE series_id = $1 ORDER BY starts_at",
                                         series_id)
        assert {s["starts_at"].astimezone(zone).strftime("%a %H:%M") for s in starts} <= {"Tue 10:00", "Thu 10:00"}
        await shot(page, screens, lang, "series-page")

        await page.fill("input[name=duration_minutes]", "45")
        await page.click("[data-test=save-series]")
        await expect(page.locator(".flash")).to_contain_text(text["saved"])
        assert {r["duration_minutes"] for r in await engine.pool.fetch(
            "SELECT duration_minutes FROM conferences WHERE series_id = $1", series_id)} == {45}

        await rows.first.locator("a").click()
        await expect(page.locator("[data-series]")).to_contain_text(text["one"])
        await shot(page, screens, lang, "series-occurrence-card")
    finally:
        await context.close()


ROOM_TEXT = {
    "ru": {"wait": "да: гости слышат тишину, пока не войдёт ведущий", "title": "Постоянные комнаты"},
    "en": {"wait": "yes: guests hear silence until a chair joins", "title": "Permanent rooms"},
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_permanent_room_from_the_portal_and_its_card(browser: Browser, engine, portal_url: str, screens: Path,
                                                           lang: str) -> None:
    text = ROOM_TEXT[lang]
    account = await new_account(engine, language=lang, name="Vera")
    context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale=lang)
    page = await context.new_page()
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.goto(f"{portal_url}/planning")
        await page.click("[data-test=meeting-rooms]")
        await expect(page.locator("h1")).to_have_text(text["title"])
        await page.fill("input[name=subject]", "Vera's room")
        await page.check("[data-test=wait-for-chair]")
        await shot(page, screens, lang, "permanent-room-form")
        await page.click("[data-test=open-room]")
        await page.wait_for_url("**/series/*")
        await expect(page.locator("[data-test=room-card] [data-test=wait-for-chair]")).to_have_text(text["wait"])
        room_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
        row = await engine.pool.fetchrow("SELECT kind, conference_number, guests_wait_for_chair FROM conference_series "
                                         "WHERE id = $1 AND owner_id = $2", room_id, account.id)
        assert row["kind"] == "permanent" and row["guests_wait_for_chair"]
        await expect(page.locator("[data-test=conference-number]")).to_have_text(row["conference_number"])
        await shot(page, screens, lang, "permanent-room-card")
    finally:
        await context.close()
