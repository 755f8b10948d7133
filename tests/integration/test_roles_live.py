"""Start now within the account's limits, and a dial-in caller's role changed in the call: a
SIPp caller who joined with the guest PIN is made chair and back; ConfBridge reports the member's
Admin and MarkedUser flags accordingly, the call stays up (same channel, never marked left), and
the event log and the bus say what changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.domain.errors import LimitExceeded, NotFound, StateConflict, ValidationError
from engine.domain.model import ConferencePlan, ConferenceState, ParticipantState, Role
from tests.integration.test_dialin import CALL_SETUP_TIMEOUT, dial_in_and_join, hang_up_all, member
from tests.support.api import BusWatcher
from tests.support.dialin_factories import create_conference, random_caller
from tests.support.factories import create_account

pytestmark = pytest.mark.stack


async def test_dial_in_guest_made_chair_and_back_in_the_call(engine, sipp) -> None:
    planning, live = engine.services.planning, engine.services.live
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id)
    event, process = await dial_in_and_join(engine, sipp, conference, conference.guest_pin, random_caller())
    uniqueid, channel = event.get("Uniqueid"), event.get("Channel")
    listed = await member(engine, conference.room, uniqueid)
    assert (listed.get("Admin"), listed.get("MarkedUser")) == ("No", "No")
    stored = await planning.get(None, conference.id)
    caller = next(p for p in stored.participants if p.call_id == uniqueid)
    assert caller.role == Role.GUEST and caller.state == ParticipantState.CONNECTED

    async with BusWatcher(engine, conference.id) as bus:
        chair = await live.set_role(conference.owner_id, conference.id, caller.id, "chair")
        assert chair.role == Role.CHAIR and chair.state == ParticipantState.CONNECTED
        listed = await member(engine, conference.room, uniqueid)
        assert (listed.get("Admin"), listed.get("MarkedUser"), listed.get("Channel")) == ("Yes", "Yes", channel)
        guest = await live.set_role(conference.owner_id, conference.id, caller.id, Role.GUEST)
        assert guest.role == Role.GUEST
        listed = await member(engine, conference.room, uniqueid)
        assert (listed.get("Admin"), listed.get("MarkedUser")) == ("No", "No")
        assert [e.data["role"] for e in bus.events if e.kind == "participant.role"] == ["chair", "guest"]
        assert not [e for e in bus.events if e.kind == "participant.state"]  # never left the call
    assert process.process.returncode is None  # the caller's call is still up

    with pytest.raises(ValidationError, match="chair or guest"):
        await live.set_role(conference.owner_id, conference.id, caller.id, "boss")
    current = next(p for p in (await planning.get(None, conference.id)).participants if p.id == caller.id)
    assert current.state == ParticipantState.CONNECTED and current.left_at is None
    kinds = [e["kind"] for e in await planning.events(None, conference.id)]
    assert kinds.count("participant.role") == 2 and "participant.left" not in kinds
    await hang_up_all(engine, conference.room)
    assert await process.wait(CALL_SETUP_TIMEOUT) == 0


async def test_start_now_is_answered_with_the_start_the_scheduler_made_meanwhile(
        engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting early makes the conference due at once, so the scheduler's pass may start it
    before the request does: the request is answered with that start, not refused."""
    planning, lifecycle = engine.services.planning, engine.services.lifecycle
    owner = await create_account(engine.pool)
    scheduled = await planning.plan(owner, ConferencePlan(
        subject="soon", start=datetime.now(UTC) + timedelta(hours=5), duration_minutes=30, max_participants=3))
    start_conference = lifecycle.start_conference

    async def the_scheduler_first(conference_id: int, actor: str = "engine") -> object:
        await start_conference(conference_id)  # the scheduler's pass, due to it from the move on
        return await start_conference(conference_id, actor=actor)

    monkeypatch.setattr(lifecycle, "start_conference", the_scheduler_first)
    started = await planning.start_now(owner, scheduled.id)
    assert started.state == ConferenceState.RUNNING
    await engine.services.live.end(owner, scheduled.id)


async def test_start_now_respects_the_concurrent_conference_limit(engine) -> None:
    """Starting early moves the conference into the present: over the account's limit of
    conferences at the same time it is refused and stays scheduled at its time."""
    planning, live = engine.services.planning, engine.services.live
    owner = await create_account(engine.pool, max_concurrent_conferences=1)
    running = await planning.plan(owner, ConferencePlan(subject="now", start=None, duration_minutes=30,
                                                        max_participants=3))
    later = datetime.now(UTC) + timedelta(hours=5)
    scheduled = await planning.plan(owner, ConferencePlan(subject="later", start=later, duration_minutes=30,
                                                          max_participants=3))
    with pytest.raises(LimitExceeded, match="at most 1"):
        await planning.start_now(owner, scheduled.id)
    kept = await planning.get(owner, scheduled.id)
    assert kept.state == ConferenceState.SCHEDULED and kept.starts_at == scheduled.starts_at
    with pytest.raises(NotFound):
        await planning.start_now(await create_account(engine.pool), scheduled.id)
    await live.end(owner, running.id)
    started = await planning.start_now(owner, scheduled.id)
    assert started.state == ConferenceState.RUNNING and started.starts_at < later
    assert started.ends_at - started.starts_at == planning.records.minutes(30)
    with pytest.raises(StateConflict):
        await planning.start_now(owner, scheduled.id)
    await live.end(owner, scheduled.id)
