"""Dial-in through the real Asterisk: SIPp callers dial the access number and key the
conference number and PIN; the engine's FastAGI route admits or refuses them."""

from __future__ import annotations

import asyncio

import pytest

from engine.adapters.asterisk.ami import AmiEvent
from engine.domain.dialin import Refusal
from tests.support.agi_trace import AgiTrace, key_when_asked
from tests.support.dialin_factories import ConferenceRow, create_conference, random_caller

pytestmark = pytest.mark.stack

CALL_SETUP_TIMEOUT = 20


def joined(room: str):
    return lambda e: e.name == "ConfbridgeJoin" and e.get("Conference") == room


async def dial_in_and_join(engine, sipp, conference: ConferenceRow, pin: str, caller: str,
                           display: str = "Caller") -> tuple[AmiEvent, object]:
    """A caller keys number and PIN; returns its ConfbridgeJoin event and the SIPp process."""
    join = asyncio.ensure_future(engine.ami.wait_for_event(joined(conference.room), timeout=CALL_SETUP_TIMEOUT))
    await asyncio.sleep(0)  # let the waiter subscribe before the call starts
    process = await sipp.caller(f"{conference.conference_number}#,{pin}#", caller=caller, display=display)
    try:
        event = await join
    except TimeoutError:
        await process.stop()
        raise AssertionError(f"caller never joined:\n{process.log_text()[-2000:]}") from None
    await engine.services.calls.settled()  # the tracker has stored the join too
    return event, process


async def member(engine, room: str, uniqueid: str) -> AmiEvent:
    members = {m.get("Uniqueid"): m for m in await engine.ami.confbridge_members(room)}
    assert uniqueid in members, members.keys()
    return members[uniqueid]


async def hang_up_all(engine, room: str) -> None:
    for m in await engine.ami.confbridge_members(room):
        await engine.ami.hangup(m.get("Channel"))


async def participant(engine, call_id: str):
    return await engine.pool.fetchrow("SELECT * FROM participants WHERE call_id = $1", call_id)


def outcome_of(engine, caller: str):
    return [o for o in engine.services.dialin.outcomes if o.caller == caller][-1]


async def test_chair_pin_joins_as_admin(engine, sipp) -> None:
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id)
    caller = random_caller()
    event, process = await dial_in_and_join(engine, sipp, conference, conference.chair_pin, caller)
    uniqueid = event.get("Uniqueid")
    row = await participant(engine, uniqueid)
    assert (row["origin"], row["role"], row["number"], row["conference_id"]) == (
        "dialin", "chair", caller, conference.id)
    assert row["node_id"] == engine.settings.node_id
    listed = await member(engine, conference.room, uniqueid)
    assert listed.get("Admin") == "Yes"
    assert listed.get("MarkedUser") == "Yes"
    await hang_up_all(engine, conference.room)
    assert await process.wait(CALL_SETUP_TIMEOUT) == 0


async def test_guest_pin_joins_as_guest(engine, sipp) -> None:
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id)
    event, process = await dial_in_and_join(engine, sipp, conference, conference.guest_pin, random_caller())
    listed = await member(engine, conference.room, event.get("Uniqueid"))
    assert listed.get("Admin") == "No"
    assert (await participant(engine, event.get("Uniqueid")))["role"] == "guest"
    await hang_up_all(engine, conference.room)
    assert await process.wait(CALL_SETUP_TIMEOUT) == 0


# What a caller may put in its display name, which Asterisk copies into every AMI event of the call
# (CallerIDName): a header separator and an AMI header of its own, Cyrillic, and length.
HOSTILE_DISPLAY = "Event: Hangup: Uniqueid: 1.1 Иван Петров " + "x" * 150


async def test_a_hostile_display_name_neither_breaks_the_event_stream_nor_another_caller(engine, sipp) -> None:
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id)
    event, process = await dial_in_and_join(engine, sipp, conference, conference.guest_pin, random_caller(),
                                            display=HOSTILE_DISPLAY)
    assert event.get("CallerIDName").startswith("Event: Hangup: Uniqueid: 1.1 Иван")
    assert (await participant(engine, event.get("Uniqueid")))["state"] == "connected"
    other, second = await dial_in_and_join(engine, sipp, conference, conference.guest_pin, random_caller())
    assert (await participant(engine, other.get("Uniqueid")))["state"] == "connected"
    assert engine.ami.connected
    await hang_up_all(engine, conference.room)
    assert await process.wait(CALL_SETUP_TIMEOUT) == 0 and await second.wait(CALL_SETUP_TIMEOUT) == 0


async def test_hash_alone_joins_as_guest_when_no_guest_pin_is_required(engine, sipp) -> None:
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id, guest_pin_required=False)
    event, process = await dial_in_and_join(engine, sipp, conference, "", random_caller())
    assert (await member(engine, conference.room, event.get("Uniqueid"))).get("Admin") == "No"
    await hang_up_all(engine, conference.room)
    assert await process.wait(CALL_SETUP_TIMEOUT) == 0


async def test_three_wrong_pins_end_the_call_and_are_counted(engine, sipp, agi_trace: AgiTrace) -> None:
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id)
    caller = random_caller()
    wrong = [p for p in ("111111", "222222", "333333", "444444") if p not in (conference.chair_pin,
                                                                              conference.guest_pin)][:3]
    await key_when_asked(sipp, agi_trace, f"{conference.conference_number}#,{wrong[0]}#",
                         [f"{wrong[1]}#", f"{wrong[2]}#"], caller, 30)  # until Asterisk hangs up on it
    outcome = outcome_of(engine, caller)
    assert outcome.wrong_entries == 3 and outcome.participant_id is None
    failures = await engine.services.dialin.repo.failures(caller=caller)
    assert [f["kind"] for f in failures] == ["pin", "pin", "pin"]
    assert {f["conference_id"] for f in failures} == {conference.id}
    assert await engine.pool.fetchval("SELECT count(*) FROM participants WHERE conference_id = $1",
                                      conference.id) == 0


async def test_unknown_conference_number_is_answered_like_a_wrong_pin(engine, sipp, agi_trace: AgiTrace) -> None:
    """An unknown number is asked for the PIN like a real one; each PIN counts as a wrong entry."""
    caller = random_caller()
    await key_when_asked(sipp, agi_trace, "9#", ["8#", "7#", "6#"], caller, 30, entry_answers=0)
    assert outcome_of(engine, caller).wrong_entries == 3
    failures = await engine.services.dialin.repo.failures(caller=caller)
    assert [(f["kind"], f["conference_number"]) for f in failures] == [("number", "9")] * 3


async def test_blocked_accounts_conference_is_unknown_to_callers(engine, sipp, agi_trace: AgiTrace) -> None:
    """An operator-blocked account's conference admits nobody, even in the early-join window."""
    from datetime import timedelta

    conference = await create_conference(engine.pool, node_id=engine.settings.node_id, state="scheduled",
                                          starts_in=timedelta(minutes=2))
    await engine.pool.execute("UPDATE accounts SET blocked = true WHERE id = $1", conference.owner_id)
    caller = random_caller()
    number = conference.conference_number
    pin = conference.chair_pin
    await key_when_asked(sipp, agi_trace, f"{number}#", [f"{pin}#"] * 3, caller, 30, entry_answers=0)
    assert outcome_of(engine, caller).wrong_entries == 3
    assert await engine.pool.fetchval("SELECT count(*) FROM participants WHERE conference_id = $1",
                                      conference.id) == 0


async def test_locked_conference_refuses_a_guest_and_admits_a_chair(engine, sipp) -> None:
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id, locked=True)
    guest = random_caller()
    process = await sipp.caller(f"{conference.conference_number}#,{conference.guest_pin}#", caller=guest)
    assert await process.wait(30) == 0, process.log_text()[-2000:]
    assert outcome_of(engine, guest).refusal == Refusal.LOCKED
    event, chair = await dial_in_and_join(engine, sipp, conference, conference.chair_pin, random_caller())
    assert (await member(engine, conference.room, event.get("Uniqueid"))).get("Admin") == "Yes"
    await hang_up_all(engine, conference.room)
    assert await chair.wait(CALL_SETUP_TIMEOUT) == 0


async def test_full_conference_refuses_a_guest(engine, sipp) -> None:
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id, max_participants=1)
    event, first = await dial_in_and_join(engine, sipp, conference, conference.guest_pin, random_caller())
    guest = random_caller()
    process = await sipp.caller(f"{conference.conference_number}#,{conference.guest_pin}#", caller=guest)
    assert await process.wait(30) == 0, process.log_text()[-2000:]
    assert outcome_of(engine, guest).refusal == Refusal.FULL
    assert [m.get("Uniqueid") for m in await engine.ami.confbridge_members(conference.room)] == [
        event.get("Uniqueid")]
    await hang_up_all(engine, conference.room)
    assert await first.wait(CALL_SETUP_TIMEOUT) == 0


@pytest.mark.parametrize(("state", "starts_in_minutes", "refusal"), [
    ("scheduled", 60, Refusal.NOT_STARTED),
    ("ended", -60, Refusal.ENDED),
])
async def test_conference_not_started_or_over_is_refused(engine, sipp, state, starts_in_minutes, refusal) -> None:
    from datetime import timedelta

    conference = await create_conference(engine.pool, node_id=engine.settings.node_id, state=state,
                                          starts_in=timedelta(minutes=starts_in_minutes))
    caller = random_caller()
    process = await sipp.caller(f"{conference.conference_number}#,{conference.chair_pin}#", caller=caller)
    assert await process.wait(30) == 0, process.log_text()[-2000:]
    assert outcome_of(engine, caller).refusal == refusal


async def test_caller_with_many_recent_failures_is_refused_even_with_the_right_pin(engine, sipp) -> None:
    """Guessing across many calls gets nowhere: once a number has made too many wrong entries
    recently, its calls are refused before any PIN is checked."""
    dialin = engine.services.dialin
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id)
    caller = random_caller()
    for _ in range(dialin.policy.caller_block_after):
        await dialin.repo.record_failure(caller=caller, kind="pin", conference_id=conference.id,
                                         conference_number=conference.conference_number, call_id="earlier")
    process = await sipp.caller(f"{conference.conference_number}#,{conference.chair_pin}#", caller=caller)
    assert await process.wait(30) == 0, process.log_text()[-2000:]
    assert outcome_of(engine, caller).refusal == Refusal.BLOCKED
    assert await engine.pool.fetchval("SELECT count(*) FROM participants WHERE conference_id = $1",
                                      conference.id) == 0
    assert [f["kind"] for f in await dialin.repo.failures(caller=caller)][-1] == "blocked"
