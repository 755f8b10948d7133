"""Voice languages and spoken time through the real Asterisk: a dial-in caller hears the access
number's language until the conference is known, then the conference's; a dial-out participant
of a Russian conference hears the Russian warning, extension and end (the files Asterisk played,
from its verbose log), and is hung up only after the end was announced."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.adapters.asterisk.ami import AmiEvent
from engine.app import Engine
from engine.config import Settings
from engine.domain.model import ConferencePlan, ConferenceState, ParticipantPlan
from engine.stack import AsteriskProcess, free_port
from tests.support.dialin_factories import create_conference, random_caller
from tests.support.factories import create_account, wait_for_bus_event, wait_until

pytestmark = pytest.mark.stack

CALL_TIMEOUT = 30
# file.c: "<chan> Playing 'f.gsm' (language 'ru')"; res_agi: "<chan> Playing 'f.gsm' (...) (language 'en')"
PLAYING = re.compile(r"<(?P<channel>[^>]+)> ?Playing '(?P<file>[^']+)'[^\n]*?\(language '(?P<language>[^']+)'\)")


class PlaybackLog:
    """A temporary Asterisk log channel with the verbose messages, which name every file played
    and its language; removed again at the end."""

    def __init__(self, asterisk: AsteriskProcess) -> None:
        self.asterisk = asterisk
        self.name = f"voice-{secrets.token_hex(4)}.log"
        self.path = asterisk.base / "log" / self.name

    def __enter__(self) -> PlaybackLog:
        self.asterisk.cli("core set verbose 3")
        self.asterisk.cli(f"logger add channel {self.name} verbose(3)")
        return self

    def __exit__(self, *exc: object) -> None:
        self.asterisk.cli(f"logger remove channel {self.name}")
        self.asterisk.cli("core set verbose 0")

    def played(self, channel_part: str = "") -> list[tuple[str, str]]:
        """(file, language) of every playback on channels whose name contains ``channel_part``."""
        text = self.path.read_text(errors="replace") if Path(self.path).exists() else ""
        return [(m["file"], m["language"]) for m in PLAYING.finditer(text) if channel_part in m["channel"]]

    async def wait_played(self, wanted: tuple[str, str], channel_part: str = "", timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.played(channel_part):
            if time.monotonic() > deadline:
                raise AssertionError(f"{wanted} never played; played: {self.played(channel_part)}")
            await asyncio.sleep(0.2)  # the log file is written by Asterisk: polled, with a deadline


def stem(file: str) -> str:
    return file.rsplit(".", 1)[0]


async def test_dialin_switches_from_access_language_to_the_conference_language(engine, sipp, asterisk) -> None:
    assert engine.settings.access_language == "ru"
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id, locked=True)
    await engine.pool.execute("UPDATE conferences SET language = 'en' WHERE id = $1", conference.id)
    caller = random_caller()
    with PlaybackLog(asterisk) as log:
        # a guest of the locked English conference: asked in Russian, refused in English
        process = await sipp.caller(f"{conference.conference_number}#,{conference.guest_pin}#", caller=caller)
        assert await process.wait(CALL_TIMEOUT) == 0, process.log_text()[-2000:]
        played = [(stem(f), lang) for f, lang in log.played("PJSIP/")]
        assert ("conf-getconfno", "ru") in played and ("conf-getpin", "ru") in played, played
        assert ("conf-locked", "en") in played and ("goodbye", "en") in played, played
        assert played.index(("conf-getpin", "ru")) < played.index(("conf-locked", "en"))

    # the chair gets in: the channel in the room speaks English
    joined = asyncio.ensure_future(engine.ami.wait_for_event(
        lambda e: e.name == "ConfbridgeJoin" and e.get("Conference") == conference.room, timeout=CALL_TIMEOUT))
    await asyncio.sleep(0)
    process = await sipp.caller(f"{conference.conference_number}#,{conference.chair_pin}#", caller=random_caller())
    event = await joined
    assert await engine.ami.getvar(event.get("Channel"), "CHANNEL(language)") == "en"
    await engine.ami.hangup(event.get("Channel"))
    await process.wait(CALL_TIMEOUT)


async def test_conference_language_defaults_to_the_owner_and_is_validated(engine) -> None:
    planning, live = engine.services.planning, engine.services.live
    english_owner = await create_account(engine.pool, language="en")
    conference = await planning.plan(english_owner, ConferencePlan(
        subject="later", start=None, duration_minutes=30, max_participants=3))
    assert conference.language == "en"
    chosen = await planning.plan(english_owner, ConferencePlan(
        subject="ru", start=None, duration_minutes=30, max_participants=3, language="ru"))
    assert chosen.language == "ru"
    from engine.domain.errors import ValidationError

    with pytest.raises(ValidationError) as caught:
        await planning.plan(english_owner, ConferencePlan(
            subject="bad", start=None, duration_minutes=30, max_participants=3, language="de"))
    assert caught.value.field == "language"
    for item in (conference, chosen):
        await live.end(english_owner, item.id)


@pytest.fixture
async def timed_engine(settings: Settings, engine):
    """An engine whose conference "minute" lasts 1 s and whose warning comes 5 s before the end,
    on its own node label."""
    instance = Engine(settings.with_(node_id="voice-node", agi_port=free_port(), minute_seconds=1.0,
                                     warning_seconds=5, extend_cap_minutes=15))
    await instance.start()
    yield instance
    await instance.stop()


async def test_russian_dialout_hears_warning_extension_and_end_before_hangup(timed_engine, asterisk) -> None:
    engine = timed_engine
    planning, live = engine.services.planning, engine.services.live
    owner = await create_account(engine.pool)
    hangups: list[AmiEvent] = []
    hung_up: set[str] = set()
    participant: dict[str, str] = {}
    participant_gone = asyncio.Event()

    def record(event: AmiEvent) -> None:
        hangups.append(event)
        if event.name == "Hangup":
            hung_up.add(event.get("Uniqueid"))
            if participant.get("call_id") in hung_up:
                participant_gone.set()

    engine.ami.subscribe(record, ("Hangup", "ConfbridgeJoin"))
    with PlaybackLog(asterisk) as log:
        try:
            conference = await planning.plan(owner, ConferencePlan(
                subject="время", start=None, duration_minutes=12, max_participants=3, auto_extend_minutes=15,
                participants=(ParticipantPlan("375290021200"),), language="ru"))
            assert conference.language == "ru"

            async def connected():
                current = await planning.get(owner, conference.id)
                return current if current.participants[0].state == "connected" else None

            current = await wait_until(engine, connected, timeout=CALL_TIMEOUT, what="connected")
            call_id = participant["call_id"] = current.participants[0].call_id
            # the dial-out participant's channel speaks Russian
            channel = current.participants[0].channel or call_id
            assert await engine.ami.getvar(channel, "CHANNEL(language)") == "ru"

            warned = await wait_for_bus_event(engine, lambda e: e.kind == "conference.warned"
                                              and e.conference_id == conference.id, timeout=CALL_TIMEOUT)
            assert warned.data["language"] == "ru" and warned.data["seconds_left"] <= 5
            await log.wait_played(("vm-youhave.gsm", "ru"), "veche-announce")
            await log.wait_played(("seconds.gsm", "ru"), "veche-announce")

            extended = await wait_for_bus_event(engine, lambda e: e.kind == "conference.extended"
                                                and e.conference_id == conference.id, timeout=CALL_TIMEOUT)
            assert extended.data["minutes"] == 15 and extended.data["auto"] is True
            await log.wait_played(("conf-extended.gsm", "ru"), "veche-announce")
            await log.wait_played(("digits/15.gsm", "ru"), "veche-announce")
            await log.wait_played(("queue-minutes.gsm", "ru"), "veche-announce")
            await live.lock(owner, conference.id, True)  # the end is announced in a locked room too

            await wait_for_bus_event(engine, lambda e: e.kind == "conference.ended"
                                     and e.conference_id == conference.id, timeout=40)
            assert ("confbridge-conf-end.gsm", "ru") in log.played("veche-announce")
            assert ("goodbye.gsm", "ru") in log.played("veche-announce")
            # the end is published once the room closed; the channel's own Hangup event may follow it
            await asyncio.wait_for(participant_gone.wait(), CALL_TIMEOUT)
        finally:
            engine.ami.unsubscribe(record)
    final = await planning.get(owner, conference.id)
    assert final.state == ConferenceState.ENDED and final.end_reason == "deadline"
    joined = {e.get("Uniqueid") for e in hangups if e.name == "ConfbridgeJoin"}
    order = [e.get("Uniqueid") for e in hangups if e.name == "Hangup"]
    assert call_id in order, order
    enders = [uid for uid in order[:order.index(call_id)] if uid.startswith("an-")]
    # the last announcer (the end) hung up, having played to the end, before the participant
    announcers = [uid for uid in order if uid.startswith("an-") and not uid.endswith("-2")]
    assert announcers and announcers[-1] in enders, order
    assert announcers[-1] in joined, (announcers, joined)  # the end's announcer got into the locked room


async def test_api_language_field_of_conferences_and_templates(engine, api_server) -> None:
    from tests.support.api import new_user

    user = await new_user(engine, api_server)
    api = user.api
    body = {"subject": "S", "duration_minutes": 30, "max_participants": 5,
            "start": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}
    created = await api.post("/conferences", {**body, "language": "en"})
    assert created.status == 201 and created.body["language"] == "en", created.body
    changed = await api.call("PATCH", f"/conferences/{created.body['id']}", {"language": "ru"})
    assert changed.status == 200 and changed.body["language"] == "ru", changed.body
    before = await engine.pool.fetchval("SELECT count(*) FROM conferences")
    for hostile in ("de", "", "RU", "ru\nHangup", "en;Set(x=1)", 1, None, ["ru"]):
        reply = await api.post("/conferences", {**body, "language": hostile})
        assert reply.status == 400 and reply.error["field"] == "language", (hostile, reply.body)
    assert await engine.pool.fetchval("SELECT count(*) FROM conferences") == before
    refused = await api.call("PATCH", f"/conferences/{created.body['id']}", {"language": "xx"})
    assert refused.status == 400 and refused.error["field"] == "language"
    assert (await api.get(f"/conferences/{created.body['id']}")).body["language"] == "ru"

    template = await api.post("/templates", {"name": "English calls", "language": "en"})
    assert template.status == 201 and template.body["language"] == "en", template.body
    plain = await api.post("/templates", {"name": "Owner's language"})
    assert plain.status == 201 and plain.body["language"] is None
    bad = await api.post("/templates", {"name": "T", "language": "fr"})
    assert bad.status == 400 and bad.error["field"] == "language", bad.body


async def test_portal_planning_and_templates_carry_the_voice_language(engine) -> None:
    from aiohttp.test_utils import TestServer

    from tests.support.portal import PortalClient, new_account
    from web.app import init_app

    server = TestServer(init_app(engine.services), host="127.0.0.1")
    await server.start_server()
    client = PortalClient(str(server.make_url("/")), engine)
    try:
        account = await new_account(engine, language="ru")
        await client.login(account.phone)
        start = datetime.now(UTC).astimezone() + timedelta(days=2)
        fields = [("subject", "Voice"), ("when", "later"), ("date", start.strftime("%Y-%m-%d")),
                  ("time", "10:30"), ("duration_minutes", "60"), ("max_participants", "5"),
                  ("guest_pin_required", "on"), ("auto_extend_minutes", "0")]
        form = await client.get("/planning")
        assert '<option value="ru" selected>' in form.text  # the portal language pre-selected
        before = await engine.pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1", account.id)
        refused = await client.post("/planning", [*fields, ("language", "ru\r\nX")], token=form.csrf)
        assert refused.status == 400 and "field-error" in refused.text
        assert await engine.pool.fetchval(
            "SELECT count(*) FROM conferences WHERE owner_id = $1", account.id) == before
        page = await client.post("/planning", [*fields, ("language", "en")], token=form.csrf)
        assert page.status == 200 and "/conferences/" in page.url, page.text[:2000]
        conference_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
        assert (await engine.services.planning.get(account.id, conference_id)).language == "en"
        assert 'data-test="voice-language">Английский<' in page.text
        await client.post("/planning/template", [*fields, ("language", "en"), ("template_name", "English")],
                          token=form.csrf)
        templates = await engine.services.addressbook.templates(account.id)
        assert [(t.name, t.language) for t in templates] == [("English", "en")]
    finally:
        await client.close()
        await server.close()
