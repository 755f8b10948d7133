"""The operator's voice prompts through the real parts: a WAV and an MP3 (made with sox) uploaded
through the operator API and the operator page are converted to 8 kHz mono WAV in the Asterisk
instance's sounds directory; a SIPp dial-in caller then hears them (Asterisk's verbose log names
the played file) and, after delete, the core sounds again. Hostile uploads are refused with a clear
error, a customer gets 403, every change is in the audit log."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from engine.domain import keypad, speech
from engine.domain.model import Role
from tests.integration.test_keypad import press, start_with_caller
from tests.integration.test_voice import CALL_TIMEOUT, PlaybackLog, stem
from tests.support.api import ApiClient, new_user
from tests.support.dialin_factories import create_conference, random_caller
from tests.support.portal import PASSWORD, PortalClient, random_account_phone

pytestmark = pytest.mark.stack


def tone(path: Path, seconds: float = 1.5, rate: int = 44100, channels: int = 2) -> bytes:
    """An audio file made by sox (the format from the file name's extension)."""
    subprocess.run(["sox", "-n", "-r", str(rate), "-c", str(channels), str(path), "synth", str(seconds), "sine", "440"],
                   check=True, capture_output=True)
    return path.read_bytes()


async def _operator(engine, api_server) -> tuple[object, ApiClient]:
    operator = await engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator")
    issued = await engine.services.tokens.issue(operator.id, "operator")
    return operator, ApiClient(api_server, issued.secret)


async def upload(api: ApiClient, language: str, name: str, data: bytes, content_type: str = "audio/wav"):
    return await api.call("PUT", f"/operator/prompts/{language}/{name}", data=data,
                          headers={"Content-Type": content_type})


def soxi(path: Path) -> tuple[str, str, str]:
    out = [subprocess.run(["soxi", flag, str(path)], check=True, capture_output=True, text=True).stdout.strip()
           for flag in ("-r", "-c", "-b")]
    return out[0], out[1], out[2]


async def test_uploaded_wav_and_mp3_are_heard_by_a_dialin_caller_until_deleted(engine, api_server, sipp, asterisk,
                                                                                tmp_path) -> None:
    _, api = await _operator(engine, api_server)
    wav = await upload(api, "ru", "conf-getpin", tone(tmp_path / "pin.wav"))
    assert wav.status == 200, wav.body
    assert wav.body["source_kind"] == "wav" and 1400 <= wav.body["duration_ms"] <= 1600
    first = await upload(api, "ru", "conf-getconfno", tone(tmp_path / "first.wav", 1.0, 8000, 1))
    assert first.status == 200, first.body
    mp3 = await upload(api, "en", "conf-locked", tone(tmp_path / "locked.mp3", 2.0, 22050, 1), "audio/mpeg")
    assert mp3.status == 200, mp3.body
    assert mp3.body["source_kind"] == "mp3"

    # converted into the Asterisk instance's sounds directory, in the format the node plays
    folder = asterisk.base / "sounds"
    assert engine.settings.prompts == folder
    assert soxi(folder / "ru" / "conf-getpin.wav") == ("8000", "1", "16")
    assert soxi(folder / "en" / "conf-locked.wav") == ("8000", "1", "16")
    listing = await api.get("/operator/prompts")
    replaced = {(lang, item["name"]) for lang, items in listing.body["languages"].items() for item in items
                if item["replacement"]}
    assert {("ru", "conf-getpin"), ("en", "conf-locked")} <= replaced

    node_dir = f"{asterisk.base_in_root}/sounds"
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id, locked=True)
    await engine.pool.execute("UPDATE conferences SET language = 'en' WHERE id = $1", conference.id)
    digits = f"{conference.conference_number}#,{conference.guest_pin}#"
    with PlaybackLog(asterisk) as log:
        process = await sipp.caller(digits, caller=random_caller())
        assert await process.wait(CALL_TIMEOUT) == 0, process.log_text()[-2000:]
        played = [(stem(f), lang) for f, lang in log.played("PJSIP/")]
    assert (f"{node_dir}/ru/conf-getpin", "ru") in played, played
    assert (f"{node_dir}/en/conf-locked", "en") in played, played
    assert (f"{node_dir}/ru/conf-getconfno", "ru") in played, played  # the dialplan's Read() finds it too
    assert ("goodbye", "en") in played, played  # not replaced: the core sound

    for language, name in (("ru", "conf-getpin"), ("en", "conf-locked"), ("ru", "conf-getconfno")):
        gone = await api.call("DELETE", f"/operator/prompts/{language}/{name}")
        assert gone.status == 204
        assert not (folder / language / f"{name}.wav").exists()
    again = await api.call("DELETE", "/operator/prompts/ru/conf-getpin")
    assert again.status == 404

    with PlaybackLog(asterisk) as log:
        process = await sipp.caller(digits, caller=random_caller())
        assert await process.wait(CALL_TIMEOUT) == 0, process.log_text()[-2000:]
        played = [(stem(f), lang) for f, lang in log.played("PJSIP/")]
    assert ("conf-getpin", "ru") in played and ("conf-locked", "en") in played, played
    assert ("conf-getconfno", "ru") in played, played
    assert not any(f.startswith(node_dir) for f, _ in played), played

    audit = await api.get("/operator/audit?action=prompt.")
    actions = [(e["action"], e["detail"]["language"], e["detail"]["name"]) for e in audit.body["entries"]]
    assert ("prompt.uploaded", "ru", "conf-getpin") in actions and ("prompt.deleted", "en", "conf-locked") in actions


async def test_hostile_uploads_are_refused_with_a_clear_error(engine, api_server, tmp_path) -> None:
    _, api = await _operator(engine, api_server)
    limits = engine.services.prompts.limits

    not_audio = await upload(api, "ru", "goodbye", b"#!/bin/sh\nrm -rf /\n" * 10, "text/plain")
    assert not_audio.status == 400 and not_audio.error["field"] == "file"
    assert "not a WAV or MP3" in not_audio.error["message"]
    fake = await upload(api, "ru", "goodbye", b"RIFF\x00\x10\x00\x00WAVEjunk" + b"\x00" * 4000)
    assert fake.status == 400 and "sox cannot read" in fake.error["message"]
    long = tone(tmp_path / "long.wav", limits.max_seconds + 5, 8000, 1)
    assert len(long) < limits.max_bytes
    too_long = await upload(api, "ru", "goodbye", long)
    assert too_long.status == 400 and "longer than the upload limit" in too_long.error["message"]
    oversized = await upload(api, "ru", "goodbye", b"RIFF\x00\x00\x00\x00WAVE" + b"\x00" * limits.max_bytes)
    assert oversized.status == 400 and "larger than the upload limit" in oversized.error["message"]
    empty = await upload(api, "ru", "goodbye", b"")
    assert empty.status == 400 and empty.error["field"] == "file"

    good = tone(tmp_path / "ok.wav")
    for path in ("/operator/prompts/ru/no-such-prompt", "/operator/prompts/de/goodbye",
                 "/operator/prompts/ru/..%2F..%2F..%2Fetc%2Fpasswd", "/operator/prompts/ru/digits%2F1"):
        refused = await api.call("PUT", path, data=good, headers={"Content-Type": "audio/wav"})
        assert refused.status == 404 and refused.error["message"] == "no such prompt", (path, refused.body)
    assert not list(engine.settings.prompts.rglob("passwd*"))
    assert await engine.pool.fetchval("SELECT count(*) FROM voice_prompts WHERE name = 'goodbye'") == 0

    # the operator page: a path as the name is refused on the form, nothing is written
    operator = await engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator")
    portal = PortalClient(str(api_server.make_url("/")), engine)
    try:
        await portal.login(operator.phone)
        page = await portal.get("/operator/prompts")
        assert page.status == 200 and 'data-prompt="ru/veche-minutes-few"' in page.text
        form = aiohttp.FormData()
        form.add_field("_csrf", page.csrf)
        form.add_field("language", "ru")
        form.add_field("name", "../../../../etc/passwd")
        form.add_field("file", good, filename="ok.wav", content_type="audio/wav")
        async with portal.session.post(portal.base_url + "/operator/prompts", data=form) as response:
            refused_status, refused_text = response.status, await response.text()
        assert refused_status == 400
        assert "unknown prompt" in refused_text or "неизвестн" in refused_text.lower()
        form = aiohttp.FormData()
        form.add_field("_csrf", page.csrf)
        form.add_field("language", "ru")
        form.add_field("name", "veche-minutes-few")
        form.add_field("file", tone(tmp_path / "few.mp3", 1.0, 22050, 1), filename="few.mp3",
                       content_type="audio/mpeg")
        async with portal.session.post(portal.base_url + "/operator/prompts", data=form) as response:
            assert response.status == 200 and 'data-prompt="ru/veche-minutes-few" data-replaced="yes"' in \
                await response.text()
        assert "veche-minutes-few" in engine.services.prompts.phrases("ru")
        page = await portal.get("/operator/prompts")
        deleted = await portal.post("/operator/prompts/ru/veche-minutes-few/delete", {}, token=page.csrf)
        assert deleted.status == 200 and 'data-prompt="ru/veche-minutes-few" data-replaced="no"' in deleted.text
    finally:
        await portal.close()


async def test_a_customer_gets_403(engine, api_server, tmp_path) -> None:
    customer = await engine.services.accounts.create(random_account_phone(), PASSWORD)
    issued = await engine.services.tokens.issue(customer.id, "customer")
    api = ApiClient(api_server, issued.secret)
    assert (await api.get("/operator/prompts")).status == 403
    refused = await upload(api, "ru", "goodbye", tone(tmp_path / "c.wav"))
    assert refused.status == 403
    assert (await api.call("DELETE", "/operator/prompts/ru/goodbye")).status == 403
    portal = PortalClient(str(api_server.make_url("/")), engine)
    try:
        await portal.login(customer.phone)
        assert (await portal.get("/operator/prompts")).status == 403
    finally:
        await portal.close()
    assert await engine.pool.fetchval("SELECT count(*) FROM voice_prompts WHERE name = 'goodbye'") == 0


def spoken(path: Path, words: str) -> bytes:
    """A Russian word spoken by espeak-ng when it is installed, else a tone (both WAV)."""
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-v", "ru", "-w", str(path), words], check=True, capture_output=True)
        return path.read_bytes()
    return tone(path, 0.8)


async def test_russian_extension_is_said_with_the_uploaded_veche_phrases(engine, api_server, asterisk,
                                                                         tmp_path) -> None:
    _, api = await _operator(engine, api_server)
    prompts = engine.services.prompts
    for name, words in (("veche-two-f", "две"), ("veche-minutes-few", "минуты")):
        saved = await upload(api, "ru", name, spoken(tmp_path / f"{name}.wav", words))
        assert saved.status == 200, saved.body
    row = await create_conference(engine.pool, node_id=engine.settings.node_id)
    await engine.pool.execute("UPDATE conferences SET language = 'ru' WHERE id = $1", row.id)
    conference = await engine.services.planning.repo.get(row.id, with_participants=False)
    node_dir = f"{asterisk.base_in_root}/sounds/ru"
    try:
        with PlaybackLog(asterisk) as log:
            # "продлена на двадцать две минуты": 20 by SayNumber, then the uploaded "две", "минуты"
            await engine.services.calls.announce(conference, speech.extended("ru", 22, prompts.phrases("ru")),
                                                    wait=True)
            await log.wait_played(("conf-extended.gsm", "ru"), "veche-announce")
            await log.wait_played(("digits/20.gsm", "ru"), "veche-announce")
            await log.wait_played((f"{node_dir}/veche-minutes-few.slin", "ru"), "veche-announce")
            played = [(stem(f), lang) for f, lang in log.played("veche-announce")]
            # the file's name without the extension (the log names the channel's format there)
            assert (f"{node_dir}/veche-two-f", "ru") in played, played
            assert played.index((f"{node_dir}/veche-two-f", "ru")) < played.index(
                (f"{node_dir}/veche-minutes-few", "ru")), played
        for name in ("veche-two-f", "veche-minutes-few"):
            assert (await api.call("DELETE", f"/operator/prompts/ru/{name}")).status == 204
        # without the phrases: composed from core sounds as before ("сто двадцать секунд" for 2 minutes)
        assert speech.extended("ru", 2, prompts.phrases("ru")).unit == "seconds"
    finally:
        for name in ("veche-two-f", "veche-minutes-few"):
            await api.call("DELETE", f"/operator/prompts/ru/{name}")


async def test_keypad_menu_names_a_key_by_the_uploaded_phrase(engine, api_server, sipp, asterisk, tmp_path) -> None:
    """A guest's *0 names *6 by the uploaded "hear the minutes left" (played from its file), not
    by the core sound "minutes"."""
    _, api = await _operator(engine, api_server)
    owner = await new_user(engine, api_server)
    conference, caller, guest_id = await start_with_caller(engine, sipp, owner, "guest_pin", ["*0"])
    language = conference["language"]
    saved = await upload(api, language, "veche-time-left", tone(tmp_path / "left.wav", 0.6))
    assert saved.status == 200, saved.body
    try:
        with PlaybackLog(asterisk) as log:
            said = (await press(engine, caller, guest_id)).said
            played = [(stem(f), lang) for f, lang in log.played("PJSIP/")]
        assert said == keypad.menu_prompts(Role.GUEST, frozenset({"veche-time-left"})), said
        assert said[-1] == "veche-time-left" and keypad.SAY_MINUTES not in said
        assert (f"{asterisk.base_in_root}/sounds/{language}/veche-time-left", language) in played, played
    finally:
        await api.call("DELETE", f"/operator/prompts/{language}/veche-time-left")
        await owner.api.post(f"/conferences/{conference['id']}/end")
        await caller.stop()
