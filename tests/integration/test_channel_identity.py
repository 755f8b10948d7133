"""Channel identity comes from AMI only: FastAGI sessions of our own raw TCP client that claim
``agi_channel: /./`` (AMI's regular expression for every channel) or another conference's real
channel are admitted like a dial-in caller, then kicked and their conference ended through the
API; the real SIPp calls of another conference stay up. A real SIPp dial-in caller is kicked
by the channel AMI reported for it. Every action naming a channel refuses anything but an exact
channel name or id."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

import pytest

from engine.adapters.asterisk.ami import AmiEvent, check_channel
from engine.domain.errors import AmiError
from engine.domain.model import ConferencePlan, ParticipantPlan
from tests.support.api import ApiClient
from tests.support.dialin_factories import create_conference, random_caller, random_digits
from tests.support.factories import create_account, wait_until

pytestmark = pytest.mark.stack

SETUP_TIMEOUT = 30.0


def agi_session_headers(settings: Any, *, script: str, channel: str, uniqueid: str, caller: str) -> bytes:
    """The header block a FastAGI client sends, as Asterisk would for the access number's
    ``AGI(${VECHE_AGI}/dialin)`` (plus whatever the dialplan passes as arguments)."""
    headers = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://{settings.agi_host}:{settings.agi_port}/{script}",
        "agi_channel": channel,
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid,
        "agi_version": "22.0.0",
        "agi_callerid": caller,
        "agi_calleridname": "unknown",
        "agi_context": "veche-dialin",
        "agi_extension": settings.access_number,
        "agi_priority": "3",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140000000000000",
        "agi_arg_1": settings.agi_secret,  # the node's secret, as the rendered dialplan passes it
    }
    return "".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n"


async def forged_dialin(settings: Any, *, channel: str, uniqueid: str, answers: list[str]) -> dict[str, str]:
    """One FastAGI session over TCP claiming ``channel`` / ``uniqueid``: answers each GET DATA with
    the next of ``answers``, plays along with every other command; returns the variables set."""
    reader, writer = await asyncio.open_connection(settings.agi_host, settings.agi_port)
    variables: dict[str, str] = {}
    pending = list(answers)
    try:
        writer.write(agi_session_headers(settings, script="dialin", channel=channel, uniqueid=uniqueid,
                                         caller=random_caller()))
        await writer.drain()
        while True:
            raw = await asyncio.wait_for(reader.readline(), SETUP_TIMEOUT)
            if not raw:
                return variables
            command = raw.decode().strip()
            if command.startswith("GET DATA"):
                reply = f"200 result={pending.pop(0)}" if pending else "200 result= (timeout)"
            elif command.startswith("SET VARIABLE"):
                _, _, name, value = command.split(" ", 3)
                variables[name] = value.strip('"')
                reply = "200 result=1"
            else:
                reply = "200 result=0 endpos=0"
            writer.write(reply.encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def test_every_channel_action_takes_exact_names_only() -> None:
    for good in ("PJSIP/pstn-0000000a", "Local/375291234567@veche-dialout-0000001a;1", "1764117353.45",
                 "vo-0123456789abcdef-2"):
        assert check_channel(good) == good
    for bad in ("/./", "/.*/", "/PJSIP/", "all", "participants", "PJSIP/pstn", "PJSIP/", "Local/x@y",
                "PJSIP/pstn-0000000a\r\nAction: Originate", "PJSIP/pstn-0000000a ", "", None, "PJSIP/*-0000000a"):
        with pytest.raises(AmiError):
            check_channel(bad)


async def test_forged_agi_channel_kicks_and_ends_nobody_else(engine, api_server, sipp) -> None:
    planning, live = engine.services.planning, engine.services.live
    # conference B: two real SIPp calls through the trunk
    owner_b = await create_account(engine.pool)
    numbers = [f"3752900{random_digits(2)}{n}00" for n in (1, 2)]
    other = await planning.plan(owner_b, ConferencePlan(
        subject="bystanders", start=None, duration_minutes=30, max_participants=5,
        participants=tuple(ParticipantPlan(n) for n in numbers)))

    async def both_connected():
        current = await planning.get(owner_b, other.id)
        return current if sum(p.state == "connected" for p in current.participants) == 2 else None

    other = await wait_until(engine, both_connected, timeout=SETUP_TIMEOUT, what="two bystanders connected")
    members = {m.get("Uniqueid"): m for m in await engine.ami.confbridge_members(other.room)}
    bystanders = {p.call_id for p in other.participants}
    assert bystanders <= set(members)
    victim = members[other.participants[0].call_id]

    hangups: list[AmiEvent] = []

    def on_hangup(event: AmiEvent) -> None:
        if event.name in ("Hangup", "ConfbridgeLeave"):
            hangups.append(event)

    engine.ami.subscribe(on_hangup, ("Hangup", "ConfbridgeLeave"))
    try:
        # conference A with its own owner, reached through the forged sessions and one real caller
        target = await create_conference(engine.pool, node_id=engine.settings.node_id)
        token = (await engine.services.tokens.issue(target.owner_id, "kick")).secret
        api = ApiClient(api_server, token)
        forged = [("/./", "/./"), (victim.get("Channel"), victim.get("Uniqueid")),
                  ("/PJSIP/", f"{secrets.randbelow(10**9)}.1")]
        sessions = [await forged_dialin(engine.settings, channel=channel, uniqueid=uid,
                                        answers=[target.conference_number, target.guest_pin])
                    for channel, uid in forged]
        for variables in sessions:
            assert variables.get("VECHE_ROOM") == target.room, variables  # admitted, as the route works
        rows = await engine.pool.fetch(
            "SELECT id, call_id, channel, state FROM participants WHERE conference_id = $1 ORDER BY id", target.id)
        assert len(rows) == 3
        for row in rows:  # nothing of the AGI headers was stored as the call's identity
            assert row["channel"] is None and row["call_id"].startswith("vi-"), dict(row)
            assert row["call_id"] not in members

        # a real caller of conference A: its channel is learned from AMI, and a kick ends it
        joined = asyncio.ensure_future(engine.ami.wait_for_event(
            lambda e: e.name == "ConfbridgeJoin" and e.get("Conference") == target.room, timeout=SETUP_TIMEOUT))
        await asyncio.sleep(0)
        caller = await sipp.caller(f"{target.conference_number}#,{target.guest_pin}#", caller=random_caller())
        try:
            join = await joined
        except TimeoutError:
            await caller.stop()
            raise AssertionError(f"real caller never joined:\n{caller.log_text()[-2000:]}") from None
        await engine.services.calls.settled()  # the tracker has stored the join too
        real = await engine.pool.fetchrow("SELECT id, call_id, channel FROM participants WHERE call_id = $1",
                                          join.get("Uniqueid"))
        assert real is not None and real["channel"] == join.get("Channel"), (dict(real or {}), join.headers)
        assert join.channel_variable("VECHE_PARTICIPANT") is not None

        # the adapter itself refuses the patterns AMI would widen, before anything reaches Asterisk
        for wide in ("/./", "all", "participants", "PJSIP/"):
            with pytest.raises(AmiError):
                await engine.ami.hangup(wide)
            with pytest.raises(AmiError):
                await engine.ami.confbridge_kick(other.room, wide)
            with pytest.raises(AmiError):
                await engine.ami.confbridge_mute(other.room, wide)

        for row in rows:
            reply = await api.post(f"/conferences/{target.id}/participants/{row['id']}/kick")
            assert reply.status in (200, 204), (reply.status, reply.body)
        left = asyncio.ensure_future(engine.ami.wait_for_event(
            lambda e: e.name == "Hangup" and e.get("Uniqueid") == real["call_id"], timeout=SETUP_TIMEOUT))
        await asyncio.sleep(0)
        reply = await api.post(f"/conferences/{target.id}/participants/{real['id']}/kick")
        assert reply.status in (200, 204), (reply.status, reply.body)
        await left  # the real caller's own call ended
        reply = await api.post(f"/conferences/{target.id}/end")
        assert reply.status in (200, 204), (reply.status, reply.body)
        await caller.stop()

        # the bystanders of conference B are still connected, seen by AMI and by the engine
        async def still_up() -> None:
            current = {m.get("Uniqueid") for m in await engine.ami.confbridge_members(other.room)}
            assert bystanders <= current, (bystanders, current)
            assert bystanders <= await engine.ami.channel_ids()
            states = [p.state for p in (await planning.get(owner_b, other.id)).participants]
            assert states == ["connected", "connected"], states

        await still_up()
        # a Hangup action would have ended them within moments: look again over a short window
        for _ in range(4):
            await asyncio.sleep(0.5)
            await still_up()
        assert not [e for e in hangups if e.get("Uniqueid") in bystanders
                    or e.get("Uniqueid") in {b + "-2" for b in bystanders}], hangups
    finally:
        engine.ami.unsubscribe(on_hangup)
        await live.end(owner_b, other.id)


def test_channel_variables_come_from_chanvariable_headers() -> None:
    one = AmiEvent("ast1", "Hangup", {"ChanVariable": "VECHE_PARTICIPANT=vi-0123456789abcdef"})
    two = AmiEvent("ast1", "Hangup", {"ChanVariable": ["OTHER=a=b", "VECHE_PARTICIPANT="]})
    assert one.channel_variable("VECHE_PARTICIPANT") == "vi-0123456789abcdef"
    assert two.channel_variable("OTHER") == "a=b" and two.channel_variable("VECHE_PARTICIPANT") == ""
    assert AmiEvent("ast1", "Hangup", {}).channel_variable("VECHE_PARTICIPANT") is None
