"""Permanent rooms through the real Asterisk 22 and SIPp callers: a room with "guests wait for the
chair" lets a guest in who waits (WaitMarked, not yet an active member) until the chair arrives;
both are then in the room; when both have left the session is one History entry, and a second
session is a second entry; while a session is in use, the account's concurrent-conference limit
refuses another room's caller."""

from __future__ import annotations

import asyncio

import pytest

from engine.domain.dialin import Refusal
from tests.support.api import new_user
from tests.support.dialin_factories import random_caller

pytestmark = pytest.mark.stack

DEADLINE = 30.0


async def poll(check, timeout: float = DEADLINE, what: str = "condition"):
    """Await a condition read from the database or Asterisk, with a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"{what} not met in time"
        await asyncio.sleep(0.2)


async def session_of(engine, room_id: int, state: str = "running"):
    return await engine.pool.fetchrow(
        "SELECT id, room, state, end_reason FROM conferences WHERE series_id = $1 AND state = $2 "
        "ORDER BY id DESC LIMIT 1", room_id, state)


async def members(engine, room: str) -> list:
    return await engine.ami.confbridge_members(room)


def outcome_of(engine, caller: str):
    return [o for o in engine.services.dialin.outcomes if o.caller == caller][-1]


async def test_guest_waits_for_the_chair_and_each_session_is_one_history_entry(engine, api_server, sipp) -> None:
    user = await new_user(engine, api_server)
    await engine.pool.execute("UPDATE accounts SET max_concurrent_conferences = 1 WHERE id = $1", user.account.id)
    api = user.api
    created = await api.post("/permanent-rooms", {"subject": "My room", "max_participants": 5,
                                                  "guests_wait_for_chair": True})
    assert created.status == 201, created.body
    room = created.body
    assert room["kind"] == "permanent" and room["guests_wait_for_chair"] is True and room["conferences"] == []
    number, chair_pin, guest_pin = room["conference_number"], room["chair_pin"], room["guest_pin"]

    # the guest dials in first: a session opens and the guest waits for a marked user
    guest = await sipp.caller(f"{number}#,{guest_pin}#", caller=random_caller())
    session = await poll(lambda: session_of(engine, room["id"]), what="a running session")
    waiting = await poll(lambda: members(engine, session["room"]), what="the guest in the bridge")
    assert len(waiting) == 1
    assert waiting[0].get("WaitMarked") == "Yes" and waiting[0].get("MarkedUser") == "No"
    assert waiting[0].get("Waiting") == "Yes"  # in the bridge, not yet an active member

    # while it is in use, another room of the account (limit 1 conference at a time) refuses callers
    other = await api.post("/permanent-rooms", {"subject": "Second room", "max_participants": 5})
    assert other.status == 201
    refused_caller = random_caller()
    refused = await sipp.caller(f"{other.body['conference_number']}#,{other.body['guest_pin']}#",
                                caller=refused_caller)
    assert await refused.wait(DEADLINE) == 0, refused.log_text()[-2000:]
    assert outcome_of(engine, refused_caller).refusal == Refusal.FULL
    assert await session_of(engine, other.body["id"]) is None

    # the chair arrives: both are in the room, the guest no longer waits
    chair = await sipp.caller(f"{number}#,{chair_pin}#", caller=random_caller())

    async def both_active():
        found = await members(engine, session["room"])
        return found if len(found) == 2 and all(m.get("Waiting") == "No" for m in found) else None

    together = await poll(both_active, what="chair and guest together")
    assert sorted(m.get("MarkedUser") for m in together) == ["No", "Yes"]
    assert await engine.pool.fetchval("SELECT count(*) FROM participants WHERE conference_id = $1 "
                                      "AND state = 'connected'", session["id"]) == 2

    # both leave: the session ends and is one History entry
    for member in together:
        await engine.ami.hangup(member.get("Channel"))
    assert await guest.wait(DEADLINE) == 0 and await chair.wait(DEADLINE) == 0
    ended = await poll(lambda: session_of(engine, room["id"], "ended"), what="the session's end")
    assert ended["id"] == session["id"] and ended["end_reason"] == "room_empty"
    history = await api.get("/history")
    assert [c["id"] for c in history.body["conferences"] if c.get("series_id") == room["id"]] == [session["id"]]

    # a second session: a second History entry, same number and PINs
    again = await sipp.caller(f"{number}#,{chair_pin}#", caller=random_caller())
    second = await poll(lambda: session_of(engine, room["id"]), what="a second session")
    assert second["id"] != session["id"]
    present = await poll(lambda: members(engine, second["room"]), what="the chair in the second session")
    await engine.ami.hangup(present[0].get("Channel"))
    assert await again.wait(DEADLINE) == 0
    await poll(lambda: engine.pool.fetchval("SELECT state = 'ended' FROM conferences WHERE id = $1", second["id"]),
               what="the second session's end")
    history = await api.get("/history")
    assert sorted(c["id"] for c in history.body["conferences"] if c.get("series_id") == room["id"]) == sorted(
        [session["id"], second["id"]])
    listed = await api.get(f"/permanent-rooms/{room['id']}")
    assert [c["id"] for c in listed.body["conferences"]] == [session["id"], second["id"]]
    closed = await api.call("DELETE", f"/permanent-rooms/{room['id']}")
    assert closed.status == 200 and closed.body["state"] == "cancelled"
