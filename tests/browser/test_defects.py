"""Portal edge cases in Chromium, each on the real portal in Russian and English:
two tabs editing one conference (the second save is refused with the other change shown), a
double-submitted Planning form (one conference), server-side refusals in the visitor's language
with the participant row named and separators in numbers accepted, and the conference list at
phone width (390 px) with a 200-character subject without spaces. Screens go to
artifacts/screens/<lang>-defects-*.png."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from engine.domain.model import ConferencePlan
from tests.support.browser import log_in, shot
from tests.support.captcha import captcha_answer
from tests.support.portal import new_account

pytestmark = [pytest.mark.stack, pytest.mark.browser]

CONFLICT = {"ru": "Кто-то другой сохранил эту конференцию", "en": "Someone else saved this conference"}
TWICE = {"ru": "Участник 2: номер 375291000001 указан дважды", "en": "Participant 2: 375291000001 is planned twice"}
TOO_MANY = {"ru": "участников в списке: 2, а допускается не более 1",
            "en": "2 participants planned but the limit is 1"}


async def _page(browser: Browser, lang: str, width: int = 1280) -> tuple[object, Page, list[str]]:
    context = await browser.new_context(viewport={"width": width, "height": 860}, locale=lang)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, errors


async def _scheduled(engine, owner_id: int, subject: str) -> int:
    plan = ConferencePlan(subject=subject, start=datetime.now(UTC) + timedelta(days=1), duration_minutes=30,
                          max_participants=5)
    return (await engine.services.planning.plan(owner_id, plan)).id


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_two_tabs_editing_one_conference(lang: str, browser: Browser, engine, portal_url: str,
                                               screens: Path) -> None:
    account = await new_account(engine, language=lang)
    conference_id = await _scheduled(engine, account.id, "Weekly")
    context, first, errors = await _page(browser, lang)
    try:
        await log_in(first, engine, portal_url, account.phone)
        second = await context.new_page()
        for tab in (first, second):
            await tab.goto(f"{portal_url}/conferences/{conference_id}/edit")
        await first.fill("input[name=subject]", "Weekly, room 5")
        await first.click("form.plan-form button[type=submit]")
        await first.wait_for_url(f"**/conferences/{conference_id}")
        await second.fill("input[name=subject]", "Weekly, moved")
        await second.click("form.plan-form button[type=submit]")
        alert = second.locator("form.plan-form .flash-error")
        await expect(alert).to_contain_text(CONFLICT[lang])
        await expect(alert.locator("table.conflict")).to_contain_text("Weekly, room 5")
        await expect(second.locator("input[name=subject]")).to_have_value("Weekly, moved")
        await shot(second, screens, lang, "defects-edit-conflict")
        saved = await engine.services.planning.get(account.id, conference_id)
        assert saved.subject == "Weekly, room 5"
        # having seen the other change, saving again is a deliberate overwrite
        await second.click("form.plan-form button[type=submit]")
        await second.wait_for_url(f"**/conferences/{conference_id}")
        assert (await engine.services.planning.get(account.id, conference_id)).subject == "Weekly, moved"
        assert errors == []
    finally:
        await context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_a_double_submitted_planning_form_plans_once(lang: str, browser: Browser, engine, portal_url: str,
                                                            screens: Path) -> None:
    account = await new_account(engine, language=lang)
    context, page, errors = await _page(browser, lang)
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.fill("input[name=subject]", "Only once")
        await page.check("input[name=when][value=later]")
        await page.dblclick("[data-test=schedule]")
        await page.wait_for_url("**/conferences/*")
        assert await engine.pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1", account.id) == 1
        # without the script (or with a resent POST) the form's one-time key still plans once
        await page.goto(portal_url + "/planning")
        await page.fill("input[name=subject]", "Resent")
        await page.check("input[name=when][value=later]")
        fields = await page.evaluate(
            "() => Array.from(new FormData(document.querySelector('form[data-plan-form]')).entries())")
        form = {}
        for name, value in fields:
            form.setdefault(name, value)  # the first of repeated fields is enough for an empty participant table
        answers = [await page.request.post(portal_url + "/planning", form=form, max_redirects=0) for _ in range(2)]
        assert [a.status for a in answers] == [303, 303]
        assert answers[0].headers["location"] == answers[1].headers["location"]
        subjects = await engine.pool.fetch("SELECT subject FROM conferences WHERE owner_id = $1", account.id)
        assert sorted(r["subject"] for r in subjects) == ["Only once", "Resent"]
        assert errors == []
    finally:
        await context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_refusals_in_the_visitors_language_name_the_row(lang: str, browser: Browser, engine,
                                                              portal_url: str, screens: Path) -> None:
    account = await new_account(engine, language=lang)
    context, page, errors = await _page(browser, lang)
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.fill("input[name=subject]", "Numbers")
        await page.check("input[name=when][value=later]")
        numbers = page.locator("input[name=p_number]")
        await numbers.nth(0).fill("375 29 100 00 01")
        await numbers.nth(1).fill("375-29-100-00-01")
        await page.click("[data-test=schedule]")
        refusal = page.locator(".participants-editor .field-error")
        await expect(refusal).to_have_text(TWICE[lang])
        await expect(page.locator("tr.row-error input[name=p_number]")).to_have_value("375-29-100-00-01")
        await shot(page, screens, lang, "defects-row-error")
        await page.locator("input[name=p_number]").nth(1).fill("375 29 100 00 02")
        await page.fill("input[name=max_participants]", "1")
        await page.click("[data-test=schedule]")
        await expect(page.locator(".participants-editor .field-error").first).to_have_text(TOO_MANY[lang])
        await page.fill("input[name=max_participants]", "2")
        await page.click("[data-test=schedule]")
        await page.wait_for_url("**/conferences/*")
        stored = await engine.pool.fetch(
            "SELECT p.number FROM participants p JOIN conferences c ON c.id = p.conference_id "
            "WHERE c.owner_id = $1 ORDER BY p.number", account.id)
        assert [r["number"] for r in stored] == ["375291000001", "375291000002"]
        assert errors == []
    finally:
        await context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_long_words_wrap_at_phone_width(lang: str, browser: Browser, engine, portal_url: str,
                                              screens: Path) -> None:
    account = await new_account(engine, language=lang)
    conference_id = await _scheduled(engine, account.id, "Ж" * 200 if lang == "ru" else "W" * 200)
    context, page, errors = await _page(browser, lang, width=390)
    try:
        await log_in(page, engine, portal_url, account.phone)
        for path, name in (("/conferences", "list"), (f"/conferences/{conference_id}", "card"),
                           (f"/conferences/{conference_id}/console", "console"), ("/history", "history")):
            await page.goto(portal_url + path)
            width = await page.evaluate("() => document.documentElement.scrollWidth")
            await shot(page, screens, lang, f"defects-390-{name}")
            assert width <= 390, f"{path} is {width} px wide at a 390 px viewport"
        await page.set_viewport_size({"width": 1280, "height": 860})
        await page.goto(portal_url + "/conferences")
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 1280
        await expect(page.locator(f"tr[data-conference='{conference_id}'] a.button")).to_be_in_viewport()
        assert errors == []
    finally:
        await context.close()


SIGNED_OUT = {"ru": "Вы вышли из портала", "en": "You were logged out"}
CLIPPED = {"ru": "Период — не более 366 дней", "en": "A period covers at most 366 days"}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_a_form_sent_after_logging_out_elsewhere_keeps_the_input(lang: str, browser: Browser, engine,
                                                                       portal_url: str, screens: Path) -> None:
    from tests.support.portal import PASSWORD

    account = await new_account(engine, language=lang)
    context, page, errors = await _page(browser, lang)
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.fill("input[name=subject]", "Typed before logout")
        await page.check("input[name=when][value=later]")
        await page.locator("input[name=p_number]").nth(0).fill("375 29 100 00 07")
        other = await context.new_page()
        await other.goto(portal_url + "/planning")
        await other.locator("form[action='/logout'] button").click()
        await other.wait_for_url("**/login*")
        await page.click("[data-test=schedule]")
        await page.wait_for_url("**/login?next=**")
        await expect(page.locator(".flash-warning")).to_contain_text(SIGNED_OUT[lang])
        await shot(page, screens, lang, "defects-signed-out")
        captcha_id = await page.locator("input[name=captcha_id]").input_value()
        await page.fill("input[name=phone]", account.phone)
        await page.fill("input[name=password]", PASSWORD)
        await page.fill("input[name=captcha]", await captcha_answer(engine.pool, captcha_id))
        await page.click("button[type=submit]")
        await page.wait_for_url("**/planning")
        await expect(page.locator("input[name=subject]")).to_have_value("Typed before logout")
        await expect(page.locator("input[name=p_number]").nth(0)).to_have_value("375 29 100 00 07")
        await expect(page.locator("input[name=when][value=later]")).to_be_checked()
        await page.click("[data-test=schedule]")
        await page.wait_for_url("**/conferences/*")
        assert await engine.pool.fetchval("SELECT subject FROM conferences WHERE owner_id = $1",
                                          account.id) == "Typed before logout"
        assert errors == []
    finally:
        await context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_a_history_period_too_long_says_what_is_shown(lang: str, browser: Browser, engine,
                                                            portal_url: str, screens: Path) -> None:
    account = await new_account(engine, language=lang)
    context, page, errors = await _page(browser, lang)
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.goto(portal_url + "/history?from=2026-11-01&to=2027-12-31")
        notice = page.locator("[data-test=period-clipped]")
        await expect(notice).to_contain_text(CLIPPED[lang])
        await expect(notice).to_contain_text("2026-11-01")
        await expect(page.locator("input[name=from]")).to_have_value("2026-11-01")
        await expect(page.locator("input[name=to]")).to_have_value("2027-11-02")
        await shot(page, screens, lang, "defects-history-clipped")
        await page.goto(portal_url + "/history?from=2026-11-01&to=2026-11-30")
        await expect(page.locator("[data-test=period-clipped]")).to_have_count(0)
        assert errors == []
    finally:
        await context.close()


EVENT_FAILED = {"ru": "не удалось дозвониться", "en": "was not reached"}
EVENT_ENDED = {"ru": "Конференция завершилась: завершена ведущим", "en": "The conference ended: ended by the chair"}
MAIL_DOWN = {"ru": "почтовый сервер недоступен", "en": "the mail server could not be reached"}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_history_and_card_say_what_happened_in_words(lang: str, browser: Browser, engine, portal_url: str,
                                                           screens: Path) -> None:
    from engine.domain.model import ParticipantPlan
    from tests.support.api import BusWatcher

    account = await new_account(engine, language=lang)
    planning, live = engine.services.planning, engine.services.live
    async with BusWatcher(engine) as bus:
        conference = await planning.plan(account.id, ConferencePlan(
            subject="Busy line", start=None, duration_minutes=10, max_participants=3,
            participants=(ParticipantPlan("375290000486"),)))
        await bus.wait(lambda e: e.conference_id == conference.id and e.kind == "participant.state"
                       and e.data.get("state") == "failed", timeout=60)
    await live.end(account.id, conference.id)
    called_off = await planning.plan(account.id, ConferencePlan(
        subject="Called off", start=datetime.now(UTC) + timedelta(days=1), duration_minutes=30, max_participants=5,
        participants=(ParticipantPlan("375291000031", "Olga", "olga@example.org"),)))
    cancelled_id = called_off.id
    await engine.pool.execute(
        "INSERT INTO mail_outbox (dedup_key, conference_id, participant_id, kind, recipient_role, recipient, sender, "
        "subject, message_id, message, status, attempts, last_error) VALUES ($1, $2, $3, 'invitation', 'guest', "
        "'olga@example.org', 'veche@localhost', 'x', $1, 'x'::bytea, 'failed', 5, 'SMTPConnectError: Error "
        "connecting to 127.0.0.1 on port 25; [Errno 111] Connect call failed')",
        f"defects-{cancelled_id}@test", cancelled_id, called_off.participants[0].id)
    await planning.cancel(account.id, cancelled_id)
    context, page, errors = await _page(browser, lang)
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.goto(f"{portal_url}/history/{conference.id}")
        await page.locator("summary", has_text="Журнал" if lang == "ru" else "Event log").first.click()
        log = page.locator("tr[data-event]")
        await expect(log.filter(has_text=EVENT_FAILED[lang])).to_have_count(1)
        await expect(log.filter(has_text=EVENT_ENDED[lang])).to_have_count(1)
        visible = await page.locator("main, body").first.inner_text()
        assert "participant.failed" not in visible and "cause=" not in visible
        await shot(page, screens, lang, "defects-event-log")
        await page.goto(f"{portal_url}/conferences/{conference.id}")
        await expect(page.locator("[data-test=actual-time]")).to_have_count(1)
        today = datetime.now(UTC).date()
        await page.goto(f"{portal_url}/history?from={today - timedelta(days=2)}&to={today + timedelta(days=5)}")
        cancelled_row = page.locator(f"tr:has(a[href='/history/{cancelled_id}'])")
        await expect(cancelled_row.locator("[data-test=cancelled-at]")).to_have_count(1)
        await page.goto(f"{portal_url}/conferences/{cancelled_id}")
        await expect(page.locator(".delivery-error").first).to_have_text(MAIL_DOWN[lang])
        assert "SMTPConnectError" not in await page.locator("body").inner_text()
        await shot(page, screens, lang, "defects-mail-in-words")
        assert errors == []
    finally:
        await context.close()


LOCATION = {"ru": "Расположение: ", "en": "Location: "}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_the_room_form_names_the_field_at_fault(lang: str, browser: Browser, engine, portal_url: str,
                                                      screens: Path) -> None:
    account = await new_account(engine, language=lang)
    context, page, errors = await _page(browser, lang, width=390)
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.goto(portal_url + "/settings/rooms")
        await page.fill("form[data-entry-form] input[name=name]", "Board room")
        await page.fill("form[data-entry-form] input[name=number]", "375 17 123-45-67")
        await page.fill("form[data-entry-form] input[name=location]", "Floor 3, " + "east wing " * 15)
        await page.click("form[data-entry-form] button")
        refusal = page.locator(".field-error[data-field=location]")
        await expect(refusal).to_contain_text(LOCATION[lang])
        await expect(page.locator("input[name=location][aria-invalid=true]")).to_have_count(1)
        await shot(page, screens, lang, "defects-room-location")
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390
        await page.fill("form[data-entry-form] input[name=location]", "Floor 3, east wing")
        await page.click("form[data-entry-form] button")
        await expect(page.locator("tr[data-entry] td.mono")).to_have_text("375171234567")
        assert errors == []
    finally:
        await context.close()
