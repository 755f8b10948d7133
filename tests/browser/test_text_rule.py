"""The one-line text rule on real screens, in Russian and in English: a subject with a line
separator typed into Planning is refused next to the field in the visitor's language, and the
conference card of a subject stored before the rule shows its messages as failed with the reason.
Screens go to artifacts/screens/<lang>-text-*.png."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.support.browser import log_in, shot
from tests.support.portal import new_account

pytestmark = [pytest.mark.stack, pytest.mark.browser]

REFUSAL = {"ru": "Поле должно быть одной строкой текста без управляющих символов",
           "en": "This field must be one line of text without control characters"}
NOT_SENT = {"ru": "не отправлено", "en": "not sent"}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_hostile_subject_refused_and_legacy_failures_shown(lang: str, browser: Browser, engine,
                                                                 portal_url: str, screens: Path) -> None:
    account = await new_account(engine, language=lang)
    await engine.pool.execute("UPDATE accounts SET email = $2 WHERE id = $1", account.id,
                              f"text-{lang}-{secrets.token_hex(3)}@example.org")
    context = await browser.new_context(viewport={"width": 1366, "height": 860}, locale=lang)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await log_in(page, engine, portal_url, account.phone)
        before = await engine.pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1", account.id)
        await page.fill("input[name=subject]", "Board\u2028Bcc: victim@example.org")
        await page.click("[data-test=schedule]")
        await expect(page.locator(".field-error").first).to_contain_text(REFUSAL[lang])
        await expect(page.locator("input[name=subject]")).to_have_value("Board\u2028Bcc: victim@example.org")
        await shot(page, screens, lang, "text-refused")
        assert await engine.pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1",
                                          account.id) == before

        starts_at = datetime.now(UTC) + timedelta(days=2)
        conference_id = await engine.pool.fetchval("""
            INSERT INTO conferences (owner_id, subject, node_id, room, conference_number, chair_pin, guest_pin,
                                     starts_at, duration_minutes, ends_at, max_participants,
                                     notify_participants)
            VALUES ($1, 'Legacy' || chr(8232) || 'subject', 'ast1', $2, $3, '912345', '112345', $4, 30, $5, 5, true)
            RETURNING id""", account.id, f"text-{secrets.token_hex(6)}", "7" + str(secrets.randbelow(10**5)).zfill(5),
            starts_at, starts_at + timedelta(minutes=30))
        await engine.pool.execute("INSERT INTO participants (conference_id, number, name, email) "
                                  "VALUES ($1, '375291234567', 'Olga', 'text-olga@example.org')", conference_id)
        await engine.services.notifier.reconcile(conference_id)
        await page.goto(f"{portal_url}/conferences/{conference_id}")
        await expect(page.locator(".delivery-error")).to_have_count(2)
        await expect(page.locator(".delivery-error").first).to_contain_text("U+2028")
        await expect(page.locator(".badge.delivery-failed").first).to_have_text(NOT_SENT[lang])
        await expect(page.locator(".deliveries-own")).to_be_visible()
        await shot(page, screens, lang, "text-card-failed")
        assert not errors, errors
    finally:
        await context.close()
