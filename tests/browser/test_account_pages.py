"""Account self-service screens in Chromium, in Russian and in English: Settings > API tokens
(create with a name and expiry, the secret shown once, revoke), Personal data with the own-copy
switch, the forgotten-password page from the login form, and the operator's Outbox with a
message whose HTML tries to run a script (it must stay inert in its sandboxed frame).
Screens go to artifacts/screens/<lang>-account-*.png."""

from __future__ import annotations

import asyncio
import secrets
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from playwright.async_api import Browser, expect

from engine.adapters.mail_sink import MailSink
from engine.domain.errors import Unauthenticated
from engine.domain.tokens import TOKEN_PREFIX
from tests.support.browser import log_in, shot
from tests.support.captcha import captcha_answer
from tests.support.portal import PASSWORD, new_account

pytestmark = [pytest.mark.stack, pytest.mark.browser]

REVOKED = {"ru": "отозван", "en": "revoked"}
SENT = {"ru": "Если такая учётная запись есть", "en": "If this account exists"}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_tokens_page(lang: str, browser: Browser, engine, portal_url: str, screens: Path) -> None:
    account = await new_account(engine, language=lang)
    context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale=lang)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    try:
        await log_in(page, engine, portal_url, account.phone)
        await page.goto(portal_url + "/settings")
        await expect(page.locator("[data-test=mail-own-copy]")).to_be_checked()
        await shot(page, screens, lang, "account-profile")
        await page.click("[data-test=tokens-nav]")
        await page.fill("input[name=name]", "CRM <integration>")
        await page.fill("input[name=expires_in_days]", "30")
        await page.click("[data-test=token-create]")
        secret = (await page.locator("[data-test=token-secret]").inner_text()).strip()
        assert secret.startswith(TOKEN_PREFIX)
        assert (await engine.services.tokens.authenticate(secret)).id == account.id
        await expect(page.locator("[data-test=tokens] tbody tr")).to_have_count(1)
        await expect(page.locator("[data-test=tokens]")).to_contain_text("CRM <integration>")
        await shot(page, screens, lang, "account-token-created")
        await page.goto(portal_url + "/settings/tokens")
        assert secret not in await page.content(), "the secret is shown once only"
        stored = await engine.pool.fetchval("SELECT token_hash FROM api_tokens WHERE account_id = $1", account.id)
        assert secret not in stored
        await page.click("[data-test=token-revoke]")
        await expect(page.locator("[data-test=tokens] tbody tr").first).to_contain_text(REVOKED[lang])
        with pytest.raises(Unauthenticated):
            await engine.services.tokens.authenticate(secret)
        await shot(page, screens, lang, "account-token-revoked")

        # every session client asks from 127.0.0.1: forget the earlier tests' requests, so the
        # per-address limit under test elsewhere does not depend on which tests ran before
        await engine.pool.execute("DELETE FROM reset_requests WHERE address = '127.0.0.1'")
        anonymous = await browser.new_context(viewport={"width": 390, "height": 844}, locale=lang)
        visitor = await anonymous.new_page()
        await visitor.goto(portal_url + "/login")
        await visitor.click(f".lang-switch button[value={lang}]")
        await visitor.click("[data-test=forgot]")
        await visitor.fill("input[name=phone]", account.phone)
        await visitor.click("button[type=submit]")
        await expect(visitor.locator("[data-test=reset-sent]")).to_contain_text(SENT[lang])
        await shot(visitor, screens, lang, "account-password-forgot")
        await anonymous.close()
        assert errors == []
    finally:
        await context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_outbox_page_keeps_html_inert(lang: str, browser: Browser, engine, portal_url: str,
                                            screens: Path) -> None:
    operator = await engine.services.accounts.create(
        f"37529{secrets.randbelow(10**7):07d}", PASSWORD, language=lang, role="operator")
    sink = MailSink(engine.settings.run_dir / "mail")
    port = await asyncio.to_thread(sink.start)
    marker = secrets.token_hex(4)
    try:
        message = EmailMessage()
        message["From"] = "veche@example.org"
        message["To"] = "petr@example.org"
        message["Subject"] = f"Outbox {marker}"
        message.set_content("Plain text body")
        message.add_alternative(
            "<p id=x>HTML body</p><script>window.parent.document.title='pwned';"
            "document.getElementById('x').textContent='ran'</script>", subtype="html")
        message.add_attachment("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", subtype="calendar",
                               filename="invite.ics")
        await aiosmtplib.send(message, hostname="127.0.0.1", port=port)
    finally:
        await asyncio.to_thread(sink.stop)
    context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale=lang)
    page = await context.new_page()
    try:
        await page.goto(portal_url + "/login")
        captcha_id = await page.locator("input[name=captcha_id]").input_value()
        await page.fill("input[name=phone]", operator.phone)
        await page.fill("input[name=password]", PASSWORD)
        await page.fill("input[name=captcha]", await captcha_answer(engine.pool, captcha_id))
        await page.click("button[type=submit]")
        await page.goto(portal_url + "/operator/outbox")
        await page.click(f"text=Outbox {marker}")
        await expect(page.locator("[data-test=text]")).to_contain_text("Plain text body")
        await expect(page.locator("[data-test=ics]")).to_contain_text("BEGIN:VCALENDAR")
        frame = page.frame_locator("[data-test=html-frame]")
        await expect(frame.locator("#x")).to_have_text("HTML body")  # the script did not run
        assert await page.title() != "pwned"
        await shot(page, screens, lang, "account-outbox")
    finally:
        await context.close()


NOT_WANTED = {"ru": "не отправлено: письма участникам выключены", "en": "not sent: e-mail to participants is off"}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_planning_consent_switch_and_card(lang: str, browser: Browser, engine, portal_url: str,
                                                screens: Path) -> None:
    account = await new_account(engine, language=lang)
    await engine.services.accounts.update_profile(account.id, email=f"card-{account.phone}@example.org")
    context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale=lang)
    page = await context.new_page()
    try:
        await log_in(page, engine, portal_url, account.phone)
        switch = page.locator("[data-test=notify-participants]")
        await expect(switch).not_to_be_checked()  # consent is off until the customer gives it
        await page.fill("input[name=subject]", "Consent")
        await page.locator("input[name=p_number]").first.fill("375291234567")
        await page.locator("input[name=p_email]").first.fill("olga@example.org")
        await page.click("input[name=when][value=later]")
        await page.click("details.advanced summary")
        await shot(page, screens, lang, "account-planning-consent")
        await page.click("[data-test=schedule]")
        await page.wait_for_url("**/conferences/*")
        row = page.locator("[data-test=deliveries] tr[data-recipient='olga@example.org']")
        await expect(row).to_contain_text(NOT_WANTED[lang])
        await expect(page.locator("[data-test=mail-consent]")).to_be_visible()
        await shot(page, screens, lang, "account-card-deliveries")
    finally:
        await context.close()
