"""The customer's whole path in a real Chromium, in Russian and in English: log in (CAPTCHA via
the test-only hook), plan an immediate conference with SIPp callees, watch them connect live in
the console (no reload), mute one, lock, extend, see the network report, end, and find the
conference in today's History. Every screen is saved to artifacts/screens/<lang>-<screen>.png."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.support.browser import LIVE_TIMEOUT_MS, log_in, shot
from tests.support.captcha import captcha_answer
from tests.support.portal import PASSWORD, new_account

CALLEES = (("375290001200", "Olga"), ("375290001202", "Pavel"))

pytestmark = [pytest.mark.stack, pytest.mark.browser]

@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_conference_from_login_to_history(lang: str, browser: Browser, engine, portal_url: str,
                                                screens: Path, pstn) -> None:
    account = await new_account(engine, language=lang, name="Ирина" if lang == "ru" else "Irene")
    context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale=lang)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        # Login: the '+' is refused with a hint, then the real login
        await page.goto(portal_url + "/login")
        await shot(page, screens, lang, "login")
        captcha_id = await page.locator("input[name=captcha_id]").input_value()
        await page.fill("input[name=phone]", "+" + account.phone)
        await page.fill("input[name=password]", PASSWORD)
        await page.fill("input[name=captcha]", await captcha_answer(engine.pool, captcha_id))
        await page.click("button[type=submit]")
        await expect(page.locator("[data-test=login-error]")).to_contain_text("375XXXXXXXXX")
        await shot(page, screens, lang, "login-error")
        await log_in(page, engine, portal_url, account.phone)

        # Planning: an immediate conference with two SIPp callees
        subject = "Планёрка" if lang == "ru" else "Stand-up"
        await page.fill("input[name=subject]", subject)
        await expect(page.locator("input[name=when][value=now]")).to_be_checked()
        await page.fill("input[name=max_participants]", "5")
        for index, (number, name) in enumerate(CALLEES):
            await page.locator("input[name=p_number]").nth(index).fill(number)
            await page.locator("input[name=p_name]").nth(index).fill(name)
        await shot(page, screens, lang, "planning")
        await page.click("details.advanced summary")
        await expect(page.locator("input[name=sms_reminder]")).to_be_disabled()
        await shot(page, screens, lang, "planning-advanced")
        await page.click("[data-test=schedule]")
        await page.wait_for_url("**/conferences/*")
        conference_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
        conference = await engine.services.planning.get(account.id, conference_id)
        await expect(page.locator("[data-test=conference-number]")).to_have_text(conference.conference_number)
        await expect(page.locator("[data-test=chair-pin]")).to_have_text(conference.chair_pin)
        await expect(page.locator("[data-test=access-number]")).to_have_text(engine.settings.access_number)
        await shot(page, screens, lang, "conference-card")

        # Live console: both callees turn connected without a reload
        await page.click("[data-test=join]")
        await page.wait_for_url("**/console")
        await page.evaluate("window.__vecheNoReload = true")
        live = page.locator("tr[data-participant][data-state=connected], tr[data-participant][data-state=talking]")
        await expect(live).to_have_count(len(CALLEES), timeout=LIVE_TIMEOUT_MS)
        await shot(page, screens, lang, "console")

        # mute the first one
        first = page.locator("tr[data-participant]").filter(has_text=CALLEES[0][1])
        await first.locator("[data-col=actions] button").first.click()
        await expect(first).to_have_attribute("data-state", "muted", timeout=LIVE_TIMEOUT_MS)

        # add a participant while running (he answers too)
        await page.fill("[data-add-form] input[name=number]", "375290001203")
        await page.fill("[data-add-form] input[name=name]", "Sergei")
        await page.click("[data-test=add-participant]")
        sergei = page.locator("tr[data-participant]").filter(has_text="Sergei")
        await expect(sergei).to_have_attribute("data-state", re.compile("^(connected|talking)$"),
                                               timeout=LIVE_TIMEOUT_MS)
        # disconnect him (confirmed), then tick him and press Invite participant
        page.once("dialog", lambda dialog: dialog.accept())
        await sergei.locator("button.danger").click()
        await expect(sergei).to_have_attribute("data-state", "left", timeout=LIVE_TIMEOUT_MS)
        await sergei.locator("input[name=participant]").check()
        await page.click("[data-test=invite-selected]")
        await expect(sergei).to_have_attribute("data-state", re.compile("^(connected|talking)$"),
                                               timeout=LIVE_TIMEOUT_MS)
        # lock
        await page.click("[data-menu] summary")
        await shot(page, screens, lang, "console-menu")
        await page.click("[data-test=lock]")
        await expect(page.locator("[data-locked]")).to_be_visible(timeout=LIVE_TIMEOUT_MS)

        # extend by 15 minutes
        ends_before = (await engine.services.planning.get(account.id, conference_id)).ends_at
        ends_text = await page.locator("[data-ends-at]").inner_text()
        await page.click("[data-menu] summary")
        await page.click("[data-test=extend-15]")
        await expect(page.locator("[data-ends-at]")).not_to_have_text(ends_text, timeout=LIVE_TIMEOUT_MS)
        extended = await engine.services.planning.get(account.id, conference_id)
        assert (extended.ends_at - ends_before).total_seconds() == 15 * 60

        # network status report
        await page.click("[data-menu] summary")
        await page.click("[data-quality]")
        await expect(page.locator("[data-quality-dialog]")).to_be_visible()
        await shot(page, screens, lang, "network-report")
        await page.locator("[data-quality-dialog] button").click()

        await shot(page, screens, lang, "console-live")
        assert await page.evaluate("window.__vecheNoReload === true"), "the console must not reload"

        # end (confirm)
        page.once("dialog", lambda dialog: dialog.accept())
        await page.click("[data-menu] summary")
        await page.click("[data-test=end]")
        await page.wait_for_url(f"**/history/{conference_id}")
        for _, name in CALLEES:
            await expect(page.locator("[data-history-participants]")).to_contain_text(name)
        await shot(page, screens, lang, "history-detail")

        # History for today lists it with the right participants
        await page.goto(portal_url + "/history?range=today")
        row = page.locator(f"tr[data-conference='{conference_id}']")
        await expect(row).to_contain_text(subject)
        for _, name in (*CALLEES, ("", "Sergei")):
            await expect(row).to_contain_text(name)
        await shot(page, screens, lang, "history")

        # The remaining screens
        for path, name in (("/conferences", "conferences"), ("/settings", "settings"),
                           ("/settings/templates", "templates"), ("/help", "help")):
            await page.goto(portal_url + path)
            await shot(page, screens, lang, name)
        await page.goto(portal_url + "/settings/contacts")
        await page.fill("[data-entry-form] input[name=name]", "Olga")
        await page.fill("[data-entry-form] input[name=number]", "375290001200")
        await page.fill("[data-entry-form] input[name=email]", "olga@example.com")
        await page.click("[data-entry-form] button")
        await expect(page.locator("tr[data-entry]")).to_have_count(1)
        await shot(page, screens, lang, "contacts")
        await page.goto(portal_url + "/settings/rooms")
        await page.fill("[data-entry-form] input[name=name]", "Room 401")
        await page.fill("[data-entry-form] input[name=number]", "375171234567")
        await page.click("[data-entry-form] button")
        await shot(page, screens, lang, "rooms")
        # a template from Planning, then the phone-sized Planning
        await page.goto(portal_url + "/planning")
        await page.fill("input[name=subject]", subject)
        await page.select_option("[data-picker]", label="Olga — 375290001200")
        await expect(page.locator("input[name=p_number]").first).to_have_value("375290001200")
        await page.fill("input[name=template_name]", "Daily")
        await page.click("[data-test=create-template]")
        await page.wait_for_url("**/planning?template=*")
        await page.goto(portal_url + "/settings/templates")
        await expect(page.locator("tr[data-template]")).to_have_count(1)
        await shot(page, screens, lang, "templates-saved")
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.goto(portal_url + "/planning")
        await shot(page, screens, lang, "phone-planning")
        await page.goto(portal_url + f"/history/{conference_id}")
        await shot(page, screens, lang, "phone-history-detail")
        assert not errors, errors
    finally:
        await context.close()


async def test_console_that_lost_its_stream_shows_the_present(browser: Browser, engine, portal_url: str,
                                                              screens: Path, pstn) -> None:
    """The network between browser and portal drops (a TCP proxy cuts every link), the conference
    changes meanwhile, the network comes back: the console shows the change without a reload."""
    from engine.domain.model import ConferencePlan, ParticipantPlan
    from tests.support.proxy import TcpProxy

    port = int(portal_url.rsplit(":", 1)[1])
    proxy = await TcpProxy("127.0.0.1", port).start()
    proxied_url = f"http://127.0.0.1:{proxy.port}"

    account = await new_account(engine, language="en")
    planning, live = engine.services.planning, engine.services.live
    conference = await planning.plan(account.id, ConferencePlan(
        subject="Reconnect", start=None, duration_minutes=10, max_participants=3,
        participants=(ParticipantPlan("375290001204", "Vera"),)))
    context = await browser.new_context(viewport={"width": 1366, "height": 860})
    page = await context.new_page()
    try:
        await log_in(page, engine, proxied_url, account.phone)
        await page.goto(proxied_url + f"/conferences/{conference.id}/console")
        await page.evaluate("window.__vecheNoReload = true")
        row = page.locator("tr[data-participant]").filter(has_text="Vera")
        await expect(row).to_have_attribute("data-state", re.compile("^(connected|talking)$"),
                                            timeout=LIVE_TIMEOUT_MS)
        await expect(page.locator("#console")).to_have_attribute("data-live", "1")
        proxy.cut(refuse_new=True)
        await expect(page.locator("[data-offline]")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        participant = (await planning.get(account.id, conference.id)).participants[0]
        await live.mute(account.id, conference.id, participant.id, True)
        await live.lock(account.id, conference.id, True)
        await shot(page, screens, "en", "console-offline")
        proxy.restore()
        await expect(row).to_have_attribute("data-state", "muted", timeout=LIVE_TIMEOUT_MS)
        await expect(page.locator("[data-locked]")).to_be_visible()
        await expect(page.locator("[data-offline]")).to_be_hidden()
        assert await page.evaluate("window.__vecheNoReload === true")
    finally:
        await context.close()
        await proxy.stop()
        await live.end(account.id, conference.id)
