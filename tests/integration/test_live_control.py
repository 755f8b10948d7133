"""Live control on the real stack: mute, kick, re-dial, add, lock, extend and end each change
what Asterisk reports (ConfbridgeList / ConfbridgeListRooms) and the stored state; the deadline
warns, auto-extends while someone is connected and ends on time otherwise."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from engine.adapters.asterisk.ami import AmiEvent
from engine.app import Engine
from engine.config import Settings
from engine.domain.errors import NotFound, StateConflict, ValidationError
from engine.domain.model import ConferencePlan, ConferenceState, ParticipantPlan
from engine.stack import free_port
from tests.support.factories import create_account, wait_for_bus_event, wait_until

pytestmark = pytest.mark.stack

NUMBERS = ("375290007200", "375290008200", "375290009200")
LATE = "375290010200"


async def members_by_uid(engine, room: str) -> dict[str, AmiEvent]:
    return {m.get("Uniqueid"): m for m in await engine.ami.confbridge_members(room)}


async def room_info(engine, room: str) -> AmiEvent | None:
    return next((r for r in await engine.ami.confbridge_rooms() if r.get("Conference") == room), None)


async def all_connected(engine, owner: int, conference_id: int, count: int):
    planning = engine.services.planning

    async def check():
        current = await planning.get(owner, conference_id)
        connected = [p for p in current.participants if p.state == "connected"]
        return current if len(connected) == count else None

    return await wait_until(engine, check, timeout=20, what=f"{count} connected")


async def test_live_control(engine) -> None:
    planning, live = engine.services.planning, engine.services.live
    owner = await create_account(engine.pool)
    stranger = await create_account(engine.pool)
    conference = await planning.plan(owner, ConferencePlan(
        subject="live", start=None, duration_minutes=30, max_participants=5,
        participants=tuple(ParticipantPlan(n) for n in NUMBERS)))
    conference = await all_connected(engine, owner, conference.id, 3)
    first, second, third = conference.participants
    room = conference.room

    # mute / unmute
    with pytest.raises(NotFound):
        await live.mute(stranger, conference.id, first.id, True)
    await live.mute(owner, conference.id, first.id, True)
    assert (await members_by_uid(engine, room))[first.call_id].get("Muted") == "Yes"
    assert (await planning.get(owner, conference.id)).participants[0].muted is True
    await live.mute(owner, conference.id, first.id, False)
    assert (await members_by_uid(engine, room))[first.call_id].get("Muted") == "No"
    assert (await planning.get(owner, conference.id)).participants[0].muted is False

    # kick, then re-dial the same participant
    await live.kick(owner, conference.id, second.id)
    assert second.call_id not in await members_by_uid(engine, room)
    kicked = (await planning.get(owner, conference.id)).participants[1]
    assert kicked.state == "left"
    with pytest.raises(StateConflict):
        await live.mute(owner, conference.id, second.id, True)  # not in the room
    await live.invite(owner, conference.id, [second.id])
    conference = await all_connected(engine, owner, conference.id, 3)
    redialled = conference.participants[1]
    assert redialled.attempts == 2 and redialled.call_id != second.call_id
    assert redialled.call_id in await members_by_uid(engine, room)

    # add a participant while running
    added = await live.add_participant(owner, conference.id, ParticipantPlan(LATE, "Late"))
    conference = await all_connected(engine, owner, conference.id, 4)
    assert added.id in [p.id for p in conference.participants]
    assert len(await members_by_uid(engine, room)) == 4

    # lock / unlock
    await live.lock(owner, conference.id, True)
    assert (await room_info(engine, room)).get("Locked") == "Yes"
    assert (await planning.get(owner, conference.id)).locked is True
    await live.lock(owner, conference.id, False)
    assert (await room_info(engine, room)).get("Locked") == "No"
    assert (await planning.get(owner, conference.id)).locked is False

    # extend
    before = await planning.get(owner, conference.id)
    with pytest.raises(ValidationError):
        await live.extend(owner, conference.id, 20)
    extended = await live.extend(owner, conference.id, 15)
    assert extended.ends_at - before.ends_at == timedelta(minutes=15)
    assert extended.extended_minutes == 15

    # end: everyone leaves, the room closes
    ended = await live.end(owner, conference.id)
    assert ended.state == ConferenceState.ENDED and ended.end_reason == "ended_by_owner"
    assert all(p.state == "left" for p in ended.participants)
    assert await room_info(engine, room) is None
    with pytest.raises(StateConflict):
        await live.end(owner, conference.id)
    with pytest.raises(StateConflict):
        await live.kick(owner, conference.id, first.id)
    kinds = [e["kind"] for e in await planning.events(owner, conference.id)]
    for kind in ("participant.muted", "participant.unmuted", "participant.kicked", "participant.added",
                 "conference.locked", "conference.unlocked", "conference.extended", "conference.ended"):
        assert kind in kinds, kind


@pytest.fixture
async def fast_engine(settings: Settings, engine):
    """An engine whose conference "minute" lasts 0.3 s, on its own node label."""
    instance = Engine(settings.with_(node_id="fast-node", agi_port=free_port(), minute_seconds=0.3,
                                     warning_seconds=1.5, extend_cap_minutes=15))
    await instance.start()
    yield instance
    await instance.stop()


async def test_deadline_warns_extends_once_then_ends(fast_engine) -> None:
    """A 10-"minute" (3 s) conference with a connected participant hears the warning, is
    auto-extended by its 15-minute step, and ends at the next deadline because of the cap."""
    planning = fast_engine.services.planning
    owner = await create_account(fast_engine.pool)
    announcer_joined = asyncio.get_running_loop().create_future()

    conference = await planning.plan(owner, ConferencePlan(
        subject="auto-extend", start=None, duration_minutes=10, max_participants=3, auto_extend_minutes=15,
        participants=(ParticipantPlan("375290011200"),)))

    def on_join(event: AmiEvent) -> None:
        if (event.get("Conference") == conference.room and event.get("Uniqueid").startswith("an-")
                and not announcer_joined.done()):
            announcer_joined.set_result(event)

    fast_engine.ami.subscribe(on_join, ("ConfbridgeJoin",))
    try:
        await all_connected(fast_engine, owner, conference.id, 1)
        extended = await wait_for_bus_event(fast_engine, lambda e: e.kind == "conference.extended"
                                            and e.conference_id == conference.id, timeout=10)
        assert extended.data["auto"] is True and extended.data["minutes"] == 15
        await asyncio.wait_for(announcer_joined, 5)  # the warning was played into the room
    finally:
        fast_engine.ami.unsubscribe(on_join)
    current = await planning.get(owner, conference.id)
    assert current.state == ConferenceState.RUNNING and current.extended_minutes == 15
    assert current.ends_at - conference.ends_at == timedelta(seconds=15 * 0.3)
    await wait_for_bus_event(fast_engine, lambda e: e.kind == "conference.ended"
                             and e.conference_id == conference.id, timeout=15)
    final = await planning.get(owner, conference.id)
    assert final.state == ConferenceState.ENDED and final.end_reason == "deadline"
    assert abs((final.ended_at - final.ends_at).total_seconds()) < 1.0
    assert final.participants[0].state == "left"
    kinds = [e["kind"] for e in await planning.events(owner, conference.id)]
    assert "conference.warned" in kinds and "conference.extend_refused" in kinds


async def test_deadline_ends_on_time_when_nobody_is_connected(fast_engine) -> None:
    planning = fast_engine.services.planning
    owner = await create_account(fast_engine.pool)
    conference = await planning.plan(owner, ConferencePlan(
        subject="empty", start=None, duration_minutes=5, max_participants=3, auto_extend_minutes=15))
    await wait_for_bus_event(fast_engine, lambda e: e.kind == "conference.ended"
                             and e.conference_id == conference.id, timeout=10)
    final = await planning.get(owner, conference.id)
    assert final.state == ConferenceState.ENDED and final.extended_minutes == 0
    assert abs((final.ended_at - conference.ends_at).total_seconds()) < 1.0


async def test_lock_before_anyone_joined_applies_when_the_room_opens(engine) -> None:
    planning, live = engine.services.planning, engine.services.live
    owner = await create_account(engine.pool)
    conference = await planning.plan(owner, ConferencePlan(subject="locked early", start=None, duration_minutes=10,
                                                           max_participants=3))
    await live.lock(owner, conference.id, True)  # no room exists in Asterisk yet
    assert await room_info(engine, conference.room) is None
    await live.add_participant(owner, conference.id, ParticipantPlan("375290018200"))
    await all_connected(engine, owner, conference.id, 1)
    info = await room_info(engine, conference.room)
    assert info is not None and info.get("Locked") == "Yes"
    await live.end(owner, conference.id)
