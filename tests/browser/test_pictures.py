"""The three pictures in Chromium, in both languages, at desktop and phone (390 px) width: the
history detail's timeline, the network report's jitter and loss charts and the operator
dashboard's load chart; the SVG is drawn (a box with size), labelled for screen readers, its
hostile participant name shown as text, and the chart fits the phone screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.browser import log_in, shot
from tests.support.pictures import HOSTILE_NAME, Pictured, pictured_conference
from tests.support.portal import PASSWORD, new_account, random_account_phone

pytestmark = [pytest.mark.stack, pytest.mark.browser]

TITLES = {
    "ru": ("Хронология: кто был подключён и кто говорил", "Джиттер за время конференции",
           "Нагрузка за последние 24 часа"),
    "en": ("Timeline: who was connected and who talked", "Jitter over the conference", "Load over the last 24 hours"),
}
VIEWPORTS = {"desktop": {"width": 1366, "height": 860}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
async def pictured(engine, sipp) -> tuple[object, Pictured]:
    owner = await new_account(engine)
    return owner, await pictured_conference(engine, sipp, owner.id)


async def drawn(page: Page, selector: str, title: str) -> None:
    """The chart is drawn, titled, and lies within the screen's width (the pages' tables reflow
    on narrow screens separately)."""
    chart = page.locator(selector).first
    await expect(chart).to_be_visible()
    await expect(chart.locator("title").first).to_have_text(title)
    box = await chart.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 30, box
    assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"], box


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_pictures_in_both_languages_and_at_phone_width(lang: str, size: str, browser: Browser, engine,
                                                             portal_url: str, screens: Path, pictured) -> None:
    owner, done = pictured
    await engine.pool.execute("UPDATE accounts SET language = $2 WHERE id = $1", owner.id, lang)
    operator = await engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator",
                                                        language=lang)
    suffix = "" if size == "desktop" else "-390"
    context = await browser.new_context(viewport=VIEWPORTS[size], locale=lang)
    page = await context.new_page()
    try:
        await log_in(page, engine, portal_url, owner.phone)
        await page.goto(f"{portal_url}/history/{done.conference_id}")
        await drawn(page, "[data-history-timeline] svg", TITLES[lang][0])
        lane = page.locator(f"[data-history-timeline] g[data-lane='{done.callee_id}'] > text")
        await expect(lane).to_have_text(f"{HOSTILE_NAME} (375290007201)")
        await expect(page.locator("b", has_text="Ann")).to_have_count(0)  # the name never became markup
        await page.locator("[data-history-timeline]").scroll_into_view_if_needed()
        await shot(page, screens, lang, f"pictures-timeline{suffix}")

        await page.goto(f"{portal_url}/conferences/{done.conference_id}/quality")
        await drawn(page, "[data-network-charts] svg", TITLES[lang][1])
        await expect(page.locator(f"[data-network-charts] g[data-series='{done.callee_id}']")).to_have_count(2)
        await shot(page, screens, lang, f"pictures-network{suffix}")

        await context.clear_cookies()
        await log_in(page, engine, portal_url, operator.phone)
        await page.goto(f"{portal_url}/operator")
        await drawn(page, "[data-load-chart] svg", TITLES[lang][2])
        await expect(page.locator("[data-load-chart] g[data-series='participants'] polyline, "
                                  "[data-load-chart] g[data-series='participants'] circle").first).to_be_attached()
        await shot(page, screens, lang, f"pictures-load{suffix}")
    finally:
        await context.close()
