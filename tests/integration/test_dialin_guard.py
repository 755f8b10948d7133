"""PIN guessing is bounded, shown through the real Asterisk, FastAGI and PostgreSQL with SIPp
callers: withheld callers share one counter and are refused past a lower threshold; a conference
number with N wrong PINs refuses even the right PIN during its cool-down, e-mails its owner
(aiosmtpd) and shows a banner (bus, SSE stream, console state); unknown, ended and not-started
numbers sound the same until a correct PIN (the AGI commands Asterisk received, from its log).
Each further PIN is keyed once the engine asks for it again (tests/support/agi_trace.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from engine.domain.dialin import PIN_LOCKOUT_EVENT, WITHHELD, Refusal
from tests.integration.test_api_sse import open_stream
from tests.integration.test_mail import smtp_server
from tests.support.agi_trace import AgiTrace, key_when_asked
from tests.support.api import BusWatcher, new_user
from tests.support.dialin_factories import create_conference, random_caller, random_digits
from tests.support.keypad import keypad_caller
from tests.support.portal import PortalClient

pytestmark = pytest.mark.stack

CALL_TIMEOUT = 45


def outcome_of(engine, caller: str):
    found = [o for o in engine.services.dialin.outcomes if o.caller == caller]
    assert found, f"no dial-in outcome for {caller}"
    return found[-1]


async def call(sipp, digits: str, caller: str) -> None:
    process = await sipp.caller(digits, caller=caller)
    assert await process.wait(CALL_TIMEOUT) == 0, process.log_text()[-2000:]


def wrong_pins(chair_pin: str, guest_pin: str, count: int) -> list[str]:
    pins: list[str] = []
    while len(pins) < count:
        pin = random_digits(6)
        if pin not in (chair_pin, guest_pin, *pins):
            pins.append(pin)
    return pins


@contextlib.contextmanager
def policy(engine, **changes: object) -> Iterator[None]:
    """The dial-in guard's settings for one test (the session engine is shared)."""
    guard = engine.services.pin_guard
    saved = guard.policy
    guard.policy = replace(saved, **changes)
    try:
        yield
    finally:
        guard.policy = saved


# ----------------------------------------------------------------------------- withheld callers


@pytest.fixture
async def no_withheld_failures(engine) -> AsyncIterator[None]:
    """Withheld callers share one counter across the session: start and leave it empty."""
    await engine.pool.execute("DELETE FROM dialin_failures WHERE caller = $1", WITHHELD)
    yield
    await engine.pool.execute("DELETE FROM dialin_failures WHERE caller = $1", WITHHELD)


async def test_withheld_callers_share_one_counter_and_are_blocked_past_the_lower_threshold(
        engine, sipp, agi_trace: AgiTrace, no_withheld_failures) -> None:
    dialin = engine.services.dialin
    threshold = dialin.policy.withheld_block_after
    assert threshold < dialin.policy.caller_block_after
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id)
    # earlier withheld calls made all but one of the allowed wrong entries
    for _ in range(threshold - 1):
        await dialin.repo.record_failure(caller=WITHHELD, kind="pin", conference_id=conference.id,
                                         conference_number=conference.conference_number, call_id="earlier")
    # one more withheld call keys a wrong PIN, then the right one: still under the threshold
    wrong = wrong_pins(conference.chair_pin, conference.guest_pin, 1)[0]
    since = agi_trace.offset()
    first = await keypad_caller(sipp, f"{conference.conference_number}#,{wrong}#", [f"{conference.guest_pin}#"],
                                caller="anonymous")
    await agi_trace.wait_for_questions(since, 2, CALL_TIMEOUT, lambda: first.process.log_text()[-2000:])
    await first.press()  # the right PIN once the engine asks again
    joined = await engine.pool.fetchval(
        "SELECT count(*) FROM participants WHERE conference_id = $1 AND number = $2", conference.id, WITHHELD)
    deadline = time.monotonic() + CALL_TIMEOUT
    while not joined and time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # polled with a deadline: the admission is a database row
        joined = await engine.pool.fetchval(
            "SELECT count(*) FROM participants WHERE conference_id = $1 AND number = $2", conference.id, WITHHELD)
    await first.stop()
    assert joined == 1, "a withheld caller under the threshold gets in with the right PIN"
    assert [f["kind"] for f in await dialin.repo.failures(caller=WITHHELD)].count("pin") == threshold

    # the shared counter is at the threshold: the next withheld call is refused outright,
    # right PIN or not, before any PIN is asked for
    await call(sipp, f"{conference.conference_number}#,{conference.chair_pin}#", "anonymous")
    assert outcome_of(engine, WITHHELD).refusal == Refusal.BLOCKED
    assert [f["kind"] for f in await dialin.repo.failures(caller=WITHHELD)][-1] == "blocked"
    assert await engine.pool.fetchval("SELECT count(*) FROM participants WHERE conference_id = $1 AND role = "
                                      "'chair'", conference.id) == 0

    # a caller with a number and as many failures is not blocked: only hiding the number costs
    caller = random_caller()
    for _ in range(threshold):
        await dialin.repo.record_failure(caller=caller, kind="pin", conference_id=conference.id,
                                         conference_number="0", call_id="earlier")
    process = await sipp.caller(f"{conference.conference_number}#,{conference.guest_pin}#", caller=caller)
    deadline = time.monotonic() + CALL_TIMEOUT
    while not await engine.pool.fetchval("SELECT count(*) FROM participants WHERE conference_id = $1 AND "
                                         "number = $2", conference.id, caller):
        assert time.monotonic() < deadline, process.log_text()[-2000:]
        await asyncio.sleep(0.2)
    await process.stop()


# ----------------------------------------------------------------------------- conference lock-out


async def test_conference_lockout_refuses_the_right_pin_mails_the_owner_and_shows_a_banner(
        engine, sipp, api_server, agi_trace: AgiTrace) -> None:
    from tests.support.api import PASSWORD

    delivery = engine.services.mail_delivery
    email = f"owner-{secrets.token_hex(4)}@example.org"
    owner = await new_user(engine, api_server, email=email, language="en", name="Lock Owner")
    created = await owner.api.post("/conferences", {"subject": "Guarded", "start": "now", "duration_minutes": 30,
                                                    "max_participants": 5})
    assert created.status == 201, created.body
    conference = created.body
    number = conference["conference_number"]
    wrong = wrong_pins(conference["chair_pin"], conference["guest_pin"], 3)
    async with smtp_server() as smtp, aiohttp.ClientSession() as session, BusWatcher(engine, conference["id"]) as bus:
        saved_settings = delivery.settings
        delivery.settings = saved_settings.with_(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_timeout=5.0)
        stream = await open_stream(session, owner, conference["id"])
        assert (await stream.next()).name == "snapshot"
        try:
            with policy(engine, lockout_after=3, lockout_seconds=600):
                # one caller keys three wrong PINs: the third closes PIN entry on the number
                guesser = random_caller()
                await key_when_asked(sipp, agi_trace, f"{number}#,{wrong[0]}#", [f"{wrong[1]}#", f"{wrong[2]}#"],
                                     guesser, CALL_TIMEOUT)
                assert outcome_of(engine, guesser).wrong_entries == 3
                event = await bus.wait(lambda e: e.kind == PIN_LOCKOUT_EVENT)
                until = datetime.fromisoformat(event.data["until"])
                assert event.data["failures"] == 3 and until > datetime.now(UTC) + timedelta(seconds=500)

                # the chair with the right PIN hears the same refusal during the cool-down
                chair = random_caller()
                await call(sipp, f"{number}#,{conference['chair_pin']}#", chair)
                assert outcome_of(engine, chair).refusal == Refusal.LOCKED_OUT
                guest = random_caller()
                await call(sipp, f"{number}#,{wrong[0]}#", guest)
                assert outcome_of(engine, guest).refusal == Refusal.LOCKED_OUT
                assert await engine.pool.fetchval(
                    "SELECT count(*) FROM participants WHERE conference_id = $1 AND origin = 'dialin'",
                    conference["id"]) == 0

                # the owner's live stream carries the event, the console state and pages the banner
                live = await stream.until(lambda e: e.data.get("kind") == PIN_LOCKOUT_EVENT)
                assert live.data["data"]["until"] == event.data["until"]
                portal = PortalClient(str(api_server.make_url("")), engine)
                try:
                    await portal.login(owner.account.phone, PASSWORD)
                    state = await portal.get(f"/conferences/{conference['id']}/state")
                    body = json.loads(state.text)
                    assert datetime.fromisoformat(body["pin_lockout"]["until"]) == until
                    console = await portal.get(f"/conferences/{conference['id']}/console")
                    banner = re.search(r"<div[^>]*data-pin-lockout[^>]*>([^<]*)</div>", console.text)
                    assert banner and " hidden" not in banner.group(0), console.text[:3000]
                    assert "Too many wrong PINs" in banner.group(1)
                    card = await portal.get(f"/conferences/{conference['id']}")
                    assert "data-pin-lockout" in card.text
                finally:
                    await portal.close()

                # the owner's e-mail, once, through the outbox
                received = await smtp.handler.collect_for({email}, 1)
                texts = received[0].texts()
                assert received[0].kind == "pin_lockout" and "Guarded" in texts["subject"]
                assert "3 wrong PINs" in texts["text/plain"] and number in texts["text/plain"]
                assert conference["chair_pin"] not in received[0].raw.decode(errors="replace")
                assert await engine.pool.fetchval(
                    "SELECT count(*) FROM mail_outbox WHERE conference_id = $1 AND kind = 'pin_lockout'",
                    conference["id"]) == 1

                # when the cool-down is over the right PIN gets in again
                await engine.pool.execute(
                    "UPDATE dialin_lockouts SET until = now() - interval '1 second' WHERE conference_number = $1",
                    number)
                chair = random_caller()
                process = await sipp.caller(f"{number}#,{conference['chair_pin']}#", caller=chair)
                try:
                    await bus.wait(lambda e: e.kind == "participant.state" and e.data.get("state") == "connected",
                                   timeout=CALL_TIMEOUT)
                finally:
                    await process.stop()
        finally:
            delivery.settings = saved_settings
            stream.response.close()
            await owner.api.post(f"/conferences/{conference['id']}/end")


# ----------------------------------------------------------------------------- no enumeration


async def test_unknown_ended_and_not_started_numbers_sound_the_same_until_a_correct_pin(
        engine, sipp, agi_trace: AgiTrace) -> None:
    from tests.support.dialin_factories import create_conference as make

    node = engine.settings.node_id
    ended = await make(engine.pool, node_id=node, state="ended", starts_in=timedelta(minutes=-60))
    later = await make(engine.pool, node_id=node, state="scheduled", starts_in=timedelta(minutes=90))
    running = await make(engine.pool, node_id=node)
    unknown = random_digits(9)
    while await engine.pool.fetchval("SELECT count(*) FROM conferences WHERE conference_number = $1", unknown):
        unknown = random_digits(9)
    cases = {"unknown": unknown, "ended": ended.conference_number, "not started": later.conference_number,
             "running": running.conference_number}
    heard: dict[str, list[str]] = {}
    trace = agi_trace
    for name, number in cases.items():
        caller = random_caller()
        since = trace.offset()
        pins = ("123450", "123451", "123452")  # not the conferences' PINs (checked below)
        await key_when_asked(sipp, trace, f"{number}#,{pins[0]}#", [f"{pins[1]}#", f"{pins[2]}#"], caller,
                             CALL_TIMEOUT)
        heard[name] = [command for command in trace.commands(since) if not command.startswith("SET VARIABLE")]
        assert outcome_of(engine, caller).wrong_entries == 3
    # a correct PIN is the first thing that tells them apart
    told: dict[str, list[str]] = {}
    for name, conference in (("ended", ended), ("not started", later)):
        since = trace.offset()
        await call(sipp, f"{conference.conference_number}#,{conference.chair_pin}#", random_caller())
        told[name] = trace.commands(since)
    for conference in (ended, later, running):
        assert not {"123450", "123451", "123452"} & {conference.chair_pin, conference.guest_pin}
    expected = heard["unknown"]
    # the conference number was heard by the dialplan's Read(): the engine's first question is the PIN
    assert expected[:1] == ["GET DATA conf-getpin 8000 12"], expected
    assert expected.count('STREAM FILE conf-invalidpin ""') == 3 and expected[-1] == 'STREAM FILE goodbye ""'
    for name in ("ended", "not started", "running"):
        assert heard[name] == expected, (name, heard[name], expected)
    assert told["ended"] != told["not started"]
    # up to the correct PIN (the engine's first question) they sound the same
    assert told["ended"][:1] == expected[:1] and told["not started"][:1] == expected[:1]
