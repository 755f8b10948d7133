"""The lock and the chair's invitations, and keypad commands in the room, through the real
Asterisk 22 (ConfBridge menus, FastAGI), SIPp phones sending RFC 4733 digits, PostgreSQL and
the JSON API: every key changes what the API shows and is logged as ``keypad:<participant id>``."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta

import pytest

from engine.domain import keypad as rules
from engine.domain.dialin import Refusal
from engine.domain.model import ConferencePlan, ParticipantPlan, Role
from engine.services.keypad import KeypadAnswer
from tests.integration.test_dialin import dial_in_and_join, outcome_of
from tests.support.api import ApiUser, BusWatcher, new_user
from tests.support.dialin_factories import random_caller
from tests.support.factories import create_account, wait_until
from tests.support.keypad import KeypadCaller, keypad_caller, send_info

pytestmark = pytest.mark.stack

TIMEOUT = 25


def callee() -> str:
    """A number the SIPp trunk answers and keeps (see tests/sipp/pstn.xml)."""
    return f"375290{secrets.randbelow(1000):03d}300"


async def room_info(engine, room: str):
    return next((r for r in await engine.ami.confbridge_rooms() if r.get("Conference") == room), None)


async def wait_connected(engine, owner: int, conference_id: int, count: int):
    planning = engine.services.planning

    async def check():
        current = await planning.get(owner, conference_id)
        return current if sum(p.state == "connected" for p in current.participants) == count else None

    return await wait_until(engine, check, timeout=TIMEOUT, what=f"{count} connected")


async def test_invited_participants_enter_a_locked_room_dialin_guests_do_not(engine, sipp) -> None:
    """Lock -> invite -> connected (added, re-dialled); a guest dialling in is refused, a chair PIN
    gets in; the ConfBridge room stays locked throughout."""
    planning, live = engine.services.planning, engine.services.live
    owner = await create_account(engine.pool)
    conference = await planning.plan(owner, ConferencePlan(
        subject="locked, invited", start=None, duration_minutes=30, max_participants=6,
        participants=(ParticipantPlan(callee()),)))
    await wait_connected(engine, owner, conference.id, 1)
    await live.lock(owner, conference.id, True)
    assert (await room_info(engine, conference.room)).get("Locked") == "Yes"

    added = await live.add_participant(owner, conference.id, ParticipantPlan(callee(), "Invited"))
    current = await wait_connected(engine, owner, conference.id, 2)
    invited = next(p for p in current.participants if p.id == added.id)
    assert invited.state == "connected" and invited.failure_reason is None
    members = {m.get("Uniqueid"): m for m in await engine.ami.confbridge_members(conference.room)}
    assert invited.call_id in members

    await live.kick(owner, conference.id, added.id)  # re-dial into the locked room
    await live.invite(owner, conference.id, [added.id])
    current = await wait_connected(engine, owner, conference.id, 2)
    assert next(p for p in current.participants if p.id == added.id).attempts == 2

    guest = random_caller()
    process = await sipp.caller(f"{conference.conference_number}#,{conference.guest_pin}#", caller=guest)
    assert await process.wait(30) == 0, process.log_text()[-2000:]
    assert outcome_of(engine, guest).refusal == Refusal.LOCKED

    event, chair = await dial_in_and_join(engine, sipp, conference, conference.chair_pin, random_caller())
    assert (await engine.pool.fetchval("SELECT role FROM participants WHERE call_id = $1",
                                       event.get("Uniqueid"))) == "chair"
    assert (await room_info(engine, conference.room)).get("Locked") == "Yes"
    await live.end(owner, conference.id)
    assert await chair.wait(TIMEOUT) == 0


@pytest.fixture
async def owner(engine, api_server) -> ApiUser:
    return await new_user(engine, api_server)


async def start_with_caller(engine, sipp, owner: ApiUser, pin_field: str, steps: list[str],
                            guests: int = 1) -> tuple[dict, KeypadCaller, int]:
    """A running conference with ``guests`` dialled-out guests and one dial-in caller (PIN of
    ``pin_field``) in the room; returns the conference, the caller and its participant id."""
    created = await owner.api.post("/conferences", {
        "subject": "Keypad", "start": "now", "duration_minutes": 30, "max_participants": 6,
        "participants": [{"number": callee()} for _ in range(guests)]})
    assert created.status == 201, created.body
    conference = created.body
    conference["room"] = await engine.pool.fetchval("SELECT room FROM conferences WHERE id = $1", conference["id"])
    await wait_connected(engine, owner.account.id, conference["id"], guests)
    caller = await keypad_caller(sipp, f"{conference['conference_number']}#,{conference[pin_field]}#", steps,
                                 caller=random_caller())

    async def joined():
        current = (await owner.api.get(f"/conferences/{conference['id']}")).body
        found = [p for p in current["participants"] if p["origin"] == "dialin" and p["state"] == "connected"]
        return found[0]["id"] if found else None

    try:
        participant_id = await wait_until(engine, joined, timeout=TIMEOUT, what="the caller in the room")
    except AssertionError:
        await caller.stop()
        raise AssertionError(caller.process.log_text()[-2000:]) from None
    return conference, caller, participant_id


async def press(engine, caller: KeypadCaller, participant_id: int) -> KeypadAnswer:
    """Press the caller's next key; the engine's answer to it (awaited, not slept for)."""
    keypad = engine.services.keypad
    before = len([a for a in keypad.answers if a.participant_id == participant_id])
    digits = await caller.press()

    async def answered():
        mine = [a for a in keypad.answers if a.participant_id == participant_id]
        return mine[before] if len(mine) > before and mine[before].done else None

    # the chair's menu (*0) alone speaks for some 20 s
    answer = await wait_until(engine, answered, timeout=60, what=f"the engine's answer to {digits}")
    assert answer.key == digits[-1], (answer, digits)
    return answer


async def test_chair_keypad(engine, sipp, owner: ApiUser) -> None:
    steps = ["*1", "*1", "*2", "*2", "*3", "*3", "*4", "*5", "*6", "*0"]
    conference, caller, chair_id = await start_with_caller(engine, sipp, owner, "chair_pin", steps)
    cid = conference["id"]
    actor = f"keypad:{chair_id}"

    async def state():
        body = (await owner.api.get(f"/conferences/{cid}")).body
        return body, {p["id"]: p for p in body["participants"]}

    try:
        async with BusWatcher(engine, cid) as bus:
            answer = await press(engine, caller, chair_id)  # *1 mute self
            assert answer.said == [rules.SAY_MUTED] and answer.error is None
            body, people = await state()
            assert people[chair_id]["muted"] is True
            members = {m.get("Uniqueid"): m for m in await engine.ami.confbridge_members(conference["room"])}
            chair_call = await engine.pool.fetchval("SELECT call_id FROM participants WHERE id = $1", chair_id)
            assert members[chair_call].get("Muted") == "Yes"
            await bus.wait(lambda e: e.kind == "participant.muted" and e.data.get("actor") == actor)

            assert (await press(engine, caller, chair_id)).said == [rules.SAY_UNMUTED]  # *1 again
            assert (await state())[1][chair_id]["muted"] is False

            guest_id = next(pid for pid, p in people.items() if p["role"] == "guest")
            assert (await press(engine, caller, chair_id)).said == [rules.SAY_GUESTS_MUTED]  # *2
            _, people = await state()
            assert people[guest_id]["muted"] is True and people[chair_id]["muted"] is False
            assert (await press(engine, caller, chair_id)).said == [rules.SAY_GUESTS_UNMUTED]  # *2 again
            assert (await state())[1][guest_id]["muted"] is False

            assert (await press(engine, caller, chair_id)).said == [rules.SAY_LOCKED]  # *3
            assert (await state())[0]["locked"] is True
            assert (await room_info(engine, conference["room"])).get("Locked") == "Yes"
            await bus.wait(lambda e: e.kind == "conference.locked" and e.data.get("actor") == actor)
            assert (await press(engine, caller, chair_id)).said == [rules.SAY_UNLOCKED]  # *3 again
            assert (await state())[0]["locked"] is False

            assert (await press(engine, caller, chair_id)).said == [rules.SAY_THERE_ARE, 2,
                                                                    rules.SAY_PARTICIPANTS]  # *4

            before = datetime.fromisoformat((await state())[0]["ends_at"])
            assert (await press(engine, caller, chair_id)).said == [rules.SAY_EXTENDED]  # *5
            body, _ = await state()
            assert datetime.fromisoformat(body["ends_at"]) - before == timedelta(minutes=15)
            assert body["extended_minutes"] == 15
            await bus.wait(lambda e: e.kind == "conference.extended" and e.data.get("actor") == actor)

            said = (await press(engine, caller, chair_id)).said  # *6: 30 + 15 minutes, a moment later
            assert said in ([44, rules.SAY_MINUTES], [45, rules.SAY_MINUTES]), said

            said = (await press(engine, caller, chair_id)).said  # *0
            assert said == rules.menu_prompts(Role.CHAIR)
            assert said.count(rules.SAY_STAR) == 7
            await bus.wait(lambda e: e.kind == "keypad.pressed" and e.data.get("key") == "*0")

        log = (await owner.api.get(f"/conferences/{cid}/log")).body["events"]
        by_kind = {(e["kind"], e["actor"]) for e in log}
        for kind in ("participant.muted", "participant.unmuted", "conference.locked", "conference.unlocked",
                     "conference.extended", "keypad.pressed"):
            assert (kind, actor) in by_kind, kind
        guest_mutes = [e for e in log if e["kind"] == "participant.muted" and e["participant_id"] == guest_id]
        assert [e["actor"] for e in guest_mutes] == [actor]
        keys = [e["detail"]["key"] for e in log if e["kind"] == "keypad.pressed"]
        assert keys == steps
    finally:
        await owner.api.post(f"/conferences/{cid}/end")
        await caller.stop()


async def test_guest_keypad(engine, sipp, owner: ApiUser) -> None:
    """A guest has *1, *4, *6 and *0; the chair's *2, *3 and *5 do nothing for them."""
    steps = ["*1", "*2,*3,*5,*4", "*6", "*0", "*1"]
    conference, caller, guest_id = await start_with_caller(engine, sipp, owner, "guest_pin", steps)
    cid = conference["id"]
    try:
        assert (await press(engine, caller, guest_id)).said == [rules.SAY_MUTED]  # *1
        body = (await owner.api.get(f"/conferences/{cid}")).body
        assert {p["id"]: p for p in body["participants"]}[guest_id]["muted"] is True
        # *2 *3 *5 are not in the guest's menu: ConfBridge never hands them over, the next *4 comes
        answer = await press(engine, caller, guest_id)
        assert answer.key == "4" and answer.said == [rules.SAY_THERE_ARE, 2, rules.SAY_PARTICIPANTS]
        said = (await press(engine, caller, guest_id)).said  # *6
        assert said in ([29, rules.SAY_MINUTES], [30, rules.SAY_MINUTES]), said
        said = (await press(engine, caller, guest_id)).said  # *0
        assert said == rules.menu_prompts(Role.GUEST) and said.count(rules.SAY_STAR) == 3
        assert (await press(engine, caller, guest_id)).said == [rules.SAY_UNMUTED]  # *1
        body = (await owner.api.get(f"/conferences/{cid}")).body
        assert body["locked"] is False and body["extended_minutes"] == 0
        others = [p for p in body["participants"] if p["id"] != guest_id]
        assert not any(p["muted"] for p in others)
        log = (await owner.api.get(f"/conferences/{cid}/log")).body["events"]
        keys = [e["detail"]["key"] for e in log if e["kind"] == "keypad.pressed"]
        assert keys == ["*1", "*4", "*6", "*0", "*1"]
        assert {e["actor"] for e in log if e["kind"] == "keypad.pressed"} == {f"keypad:{guest_id}"}
    finally:
        await owner.api.post(f"/conferences/{cid}/end")
        await caller.stop()


async def test_keypad_session_from_no_participant_acts_on_nothing(engine) -> None:
    """A FastAGI session to the keypad route naming a channel the engine never put in a room (a
    forged Uniqueid), or coming from another context, gets no command and changes nothing."""
    keypad = engine.services.keypad
    sessions = [("veche-keypad", "3", "forged-uniqueid"), ("veche-dialin", "3", "forged-uniqueid"),
                ("veche-keypad", "33", "forged-uniqueid")]
    for context, key, uniqueid in sessions:
        before = len(keypad.answers)
        reader, writer = await asyncio.open_connection(engine.settings.agi_host, engine.settings.agi_port)
        headers = {"agi_network": "yes", "agi_network_script": "keypad",
                   "agi_request": f"agi://127.0.0.1:{engine.settings.agi_port}/keypad",
                   "agi_channel": "PJSIP/forged-00000001", "agi_uniqueid": uniqueid,
                   "agi_context": context, "agi_extension": key, "agi_priority": "1"}
        writer.write("".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n")
        await writer.drain()
        sent = await asyncio.wait_for(reader.read(), TIMEOUT)  # until the engine closes the session
        writer.close()
        assert sent == b"", sent  # not a word to the forged channel
        new = keypad.answers[before:]
        assert all(a.participant_id is None and a.action is None and a.error for a in new), new
        if context != "veche-keypad" or len(key) != 1:
            assert new == []  # refused by the route before the service


async def test_invited_guest_keys_through_the_dial_out_leg(engine, owner: ApiUser) -> None:
    """A guest the chair invited into a locked room (dialled out, reaching the room through a
    Local channel) has the guest menu too: the SIPp callee keys *1 and is muted."""
    number = f"375290{secrets.randbelow(1000):03d}741"  # the pstn callee that keys *1 on a SIP INFO
    created = await owner.api.post("/conferences", {
        "subject": "Invited keypad", "start": "now", "duration_minutes": 30, "max_participants": 3,
        "participants": [{"number": callee()}]})
    assert created.status == 201, created.body
    cid = created.body["id"]
    try:
        await wait_connected(engine, owner.account.id, cid, 1)
        assert (await owner.api.post(f"/conferences/{cid}/lock")).status in (200, 204)
        added = await owner.api.post(f"/conferences/{cid}/participants", {"number": number})
        assert added.status == 201, added.body
        guest_id = added.body["id"]
        await wait_connected(engine, owner.account.id, cid, 2)
        call_id = await engine.pool.fetchval("SELECT call_id FROM participants WHERE id = $1", guest_id)
        channels = await engine.ami.action_list("CoreShowChannels")
        trunk_leg = next(c.get("Channel") for c in channels
                         if c.get("Channel", "").startswith("PJSIP/") and c.get("Linkedid") == call_id)
        sip_call_id = await engine.ami.getvar(trunk_leg, "CHANNEL(pjsip,call-id)")
        await send_info(int(engine.settings.trunk_target.rsplit(":", 1)[1]), sip_call_id, 101)
        keypad = engine.services.keypad

        async def answered():
            return next((a for a in keypad.answers if a.participant_id == guest_id and a.done), None)

        answer = await wait_until(engine, answered, timeout=TIMEOUT, what="the invited guest's *1")
        assert answer.said == [rules.SAY_MUTED]
        body = (await owner.api.get(f"/conferences/{cid}")).body
        assert body["locked"] is True
        assert {p["id"]: p for p in body["participants"]}[guest_id]["muted"] is True
        log = (await owner.api.get(f"/conferences/{cid}/log")).body["events"]
        assert any(e["kind"] == "participant.muted" and e["actor"] == f"keypad:{guest_id}" for e in log)
    finally:
        await owner.api.post(f"/conferences/{cid}/end")
