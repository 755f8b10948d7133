"""The operator's voice-prompts page in Chromium, in both languages: upload a WAV made by sox for a
Russian Veche phrase, see it listed as replaced, a non-audio file refused with the reason, delete it
back to the default (screenshots in artifacts/screens)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.support.browser import log_in, shot
from tests.support.portal import PASSWORD, random_account_phone

pytestmark = [pytest.mark.stack, pytest.mark.browser]

TEXTS = {"ru": ("Голосовые подсказки", "Заменена", "не является записью WAV или MP3",
                "Собирается из стандартных звуков"),
         "en": ("Voice prompts", "Replaced", "not a WAV or MP3 recording", "Composed from core sounds")}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_operator_replaces_and_restores_a_prompt(lang: str, browser: Browser, engine, portal_url: str,
                                                       screens: Path, tmp_path: Path) -> None:
    title, replaced, refused, composed = TEXTS[lang]
    operator = await engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator",
                                                        language=lang)
    wav, text = tmp_path / "minutes.wav", tmp_path / "notes.wav"
    await asyncio.to_thread(subprocess.run, ["sox", "-n", "-r", "16000", "-c", "1", str(wav), "synth", "0.8", "sine",
                                             "500"], check=True)
    text.write_text("not audio at all\n" * 20)
    context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale=lang)
    page = await context.new_page()
    try:
        await log_in(page, engine, portal_url, operator.phone)
        await page.goto(portal_url + "/operator/prompts")
        await expect(page.locator("nav.subtabs a.active")).to_have_text(title)
        row = page.locator('[data-prompt="ru/veche-minutes-few"]')
        await expect(row).to_have_attribute("data-replaced", "no")
        await expect(row).to_contain_text(composed)

        form = page.locator("[data-test=prompt-upload]")
        await form.locator("select[name=language]").select_option("ru")
        await form.locator("select[name=name]").select_option("conf-getpin")
        await form.locator("input[type=file]").set_input_files(str(text))
        await form.locator("button").click()
        await expect(page.locator("[data-test=prompt-upload]")).to_contain_text(refused)
        await shot(page, screens, lang, "operator-prompts-refused")

        form = page.locator("[data-test=prompt-upload]")
        await form.locator("select[name=language]").select_option("ru")
        await form.locator("select[name=name]").select_option("veche-minutes-few")
        await form.locator("input[type=file]").set_input_files(str(wav))
        await form.locator("button").click()
        row = page.locator('[data-prompt="ru/veche-minutes-few"]')
        await expect(row).to_have_attribute("data-replaced", "yes")
        await expect(row).to_contain_text(replaced)
        await row.scroll_into_view_if_needed()
        await shot(page, screens, lang, "operator-prompts")

        await row.locator("button").click()
        await expect(page.locator('[data-prompt="ru/veche-minutes-few"]')).to_have_attribute("data-replaced", "no")
        assert "veche-minutes-few" not in engine.services.prompts.phrases("ru")
    finally:
        await context.close()
