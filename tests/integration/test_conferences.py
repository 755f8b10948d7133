"""Conferences on the real stack: an immediate conference dials its participants through
Asterisk and SIPp, and a scheduled one starts on time, also after the engine was replaced."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from engine.app import Engine
from engine.config import Settings
from engine.domain.errors import LimitExceeded, NotFound, RateLimited, StateConflict, ValidationError
from engine.domain.model import ConferencePlan, ConferenceState, ParticipantPlan, Role
from engine.stack import free_port
from tests.support.factories import create_account, states, wait_for_bus_event, wait_until

pytestmark = pytest.mark.stack

ANSWER = ("375290001200", "375290002200", "375290003200")
BUSY = "375290004486"
NO_ANSWER = "375290005408"


async def test_immediate_conference_dials_everyone(engine) -> None:
    planning, live = engine.services.planning, engine.services.live
    owner = await create_account(engine.pool)
    plan = ConferencePlan(
        subject="Планёрка", start=None, duration_minutes=30, max_participants=10,
        participants=(ParticipantPlan(ANSWER[0], "Chair", role=Role.CHAIR),
                      *(ParticipantPlan(n) for n in ANSWER[1:]), ParticipantPlan(BUSY), ParticipantPlan(NO_ANSWER)))
    published: list = []
    engine.bus.subscribe(published.append)
    started = datetime.now(UTC)
    conference = await planning.plan(owner, plan)
    assert conference.state == ConferenceState.RUNNING
    assert conference.node_id == engine.settings.node_id
    assert conference.chair_pin != conference.guest_pin

    async def settled():
        current = await planning.get(owner, conference.id)
        done = all(p.state in ("connected", "failed") for p in current.participants)
        announced = {e.participant_id for e in published
                     if e.kind == "participant.state" and e.data["state"] in ("connected", "failed")}
        return current if done and announced >= {p.id for p in current.participants} else None

    try:
        final = await wait_until(engine, settled, timeout=30, what="all participants connected or failed")
    finally:
        engine.bus.unsubscribe(published.append)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    assert states(final) == {**{n: "connected" for n in ANSWER}, BUSY: "failed", NO_ANSWER: "failed"}
    by_number = {p.number: p for p in final.participants}
    assert (by_number[BUSY].failure_reason, by_number[BUSY].hangup_cause) == ("busy", 17)
    assert (by_number[NO_ANSWER].failure_reason, by_number[NO_ANSWER].hangup_cause) == ("no_answer", 19)
    assert elapsed < 8, elapsed  # ring timeout is 3 s in tests
    assert all(p.node_id == engine.settings.node_id for p in final.participants)
    for participant in final.participants:  # each went through the invite state machine in order
        seen = [e.data["state"] for e in published
                if e.kind == "participant.state" and e.participant_id == participant.id]
        # ringing is told unless the call was answered before its ringing was stored (connected
        # supersedes it: these SIPp callees answer at once)
        expected = ["calling", "connected"] if participant.number in ANSWER else ["calling", "failed"]
        assert seen in (expected, [expected[0], "ringing", expected[1]]), (participant, seen)

    members = await engine.ami.confbridge_members(final.room)
    assert sorted(m.get("Uniqueid") for m in members) == sorted(by_number[n].call_id for n in ANSWER)
    chair = next(m for m in members if m.get("Uniqueid") == by_number[ANSWER[0]].call_id)
    assert chair.get("Admin") == "Yes" and chair.get("MarkedUser") == "Yes"

    kinds = [e["kind"] for e in await planning.events(owner, conference.id)]
    assert kinds[:2] == ["conference.scheduled", "conference.started"]
    assert kinds.count("participant.joined") == 3 and kinds.count("participant.failed") == 2

    ended = await live.end(owner, conference.id)
    assert ended.state == ConferenceState.ENDED
    assert all(p.state in ("left", "failed") for p in ended.participants)
    assert final.room not in [r.get("Conference") for r in await engine.ami.confbridge_rooms()]
    # the leaves of the ending are stored together: each with its log entry, then its hang-up cause
    left = {p.id for p in ended.participants if p.number in ANSWER}
    entries = [e for e in await planning.events(owner, conference.id) if e["kind"] == "participant.left"]
    assert sorted(e["participant_id"] for e in entries) == sorted(left)
    assert all("connected_seconds" in e["detail"] for e in entries)

    async def causes():
        current = await planning.get(owner, conference.id)
        found = {p.id: p.hangup_cause for p in current.participants if p.id in left}
        return found if all(found.values()) else None

    assert set((await wait_until(engine, causes, timeout=10, what="hang-up causes stored")).values()) == {16}


async def test_plan_rules(engine) -> None:
    planning, live = engine.services.planning, engine.services.live
    owner = await create_account(engine.pool, max_participants=5, max_concurrent_conferences=1)
    other = await create_account(engine.pool)
    base = ConferencePlan(subject="x", start=datetime.now(UTC) + timedelta(hours=1), duration_minutes=30,
                          max_participants=5)
    with pytest.raises(LimitExceeded):
        await planning.plan(owner, ConferencePlan(**{**base.__dict__, "max_participants": 6}))
    for field, value in [("subject", ""), ("duration_minutes", 0), ("duration_minutes", 721),
                         ("auto_extend_minutes", 20), ("reminder_minutes", 0),
                         ("participants", (ParticipantPlan("+375291234567"),)),
                         ("participants", tuple(ParticipantPlan(f"37529000{i:04d}") for i in range(6)))]:
        with pytest.raises(ValidationError) as info:
            await planning.plan(owner, ConferencePlan(**{**base.__dict__, field: value}))
        assert info.value.field.startswith(field)
    scheduled = await planning.plan(owner, base)
    assert scheduled.state == ConferenceState.SCHEDULED
    with pytest.raises(LimitExceeded):
        await planning.plan(owner, base)  # one at a time for this account
    with pytest.raises(NotFound):
        await planning.get(other, scheduled.id)
    with pytest.raises(StateConflict):
        await live.mute(owner, scheduled.id, 1, True)
    updated = await planning.update(owner, scheduled.id, {"subject": "y", "participants": [ParticipantPlan(ANSWER[0])]})
    assert updated.subject == "y" and [p.number for p in updated.participants] == [ANSWER[0]]
    cancelled = await planning.cancel(owner, scheduled.id)
    assert cancelled.state == ConferenceState.CANCELLED
    with pytest.raises(StateConflict):
        await planning.cancel(owner, scheduled.id)
    window = (datetime.now(UTC), datetime.now(UTC) + timedelta(hours=2))
    assert [c.id for c in await planning.history(owner, *window)] == [scheduled.id]
    assert await planning.history(other, *window) == []
    assert [c.id for c in await planning.list(owner, {ConferenceState.CANCELLED})] == [scheduled.id]
    assert await planning.list(owner, {ConferenceState.RUNNING}) == []
    log = await planning.events(owner, scheduled.id)
    assert [e["kind"] for e in log] == ["conference.scheduled", "conference.updated", "conference.cancelled"]
    assert log[1]["detail"] == {"changed": ["participants", "subject"]} and log[1]["actor"] == f"account:{owner}"


async def test_scheduled_conference_starts_on_time_after_engine_restart(settings: Settings, engine) -> None:
    """Plan with one engine, replace it with a new Engine while the conference waits: the new
    one starts it within 1 s of its time and dials its participant."""
    node_settings = settings.with_(node_id="sched-node", agi_port=free_port())
    first = Engine(node_settings)
    await first.start()
    owner = await create_account(first.pool)
    starts_at = datetime.now(UTC) + timedelta(seconds=4)
    try:
        conference = await first.services.planning.plan(owner, ConferencePlan(
            subject="scheduled", start=starts_at, duration_minutes=10, max_participants=3,
            participants=(ParticipantPlan("375290006200"),)))
        assert conference.state == ConferenceState.SCHEDULED
    finally:
        await first.stop()
    second = Engine(node_settings.with_(agi_port=free_port()))
    await second.start()
    try:
        event = await wait_for_bus_event(second, lambda e: e.kind == "conference.started"
                                         and e.conference_id == conference.id, timeout=15)
        planning, live = second.services.planning, second.services.live
        current = await planning.get(owner, conference.id)
        assert current.state == ConferenceState.RUNNING
        assert abs((current.started_at - starts_at).total_seconds()) < 1.0, current.started_at - starts_at
        assert abs((event.at - starts_at).total_seconds()) < 1.0

        async def connected():
            return (await planning.get(owner, conference.id)).participants[0].state == "connected"

        await wait_until(second, connected, timeout=20, what="participant connected")
        await live.end(owner, conference.id)
    finally:
        await second.stop()


async def test_many_conferences_due_at_once(engine) -> None:
    planning, live = engine.services.planning, engine.services.live
    owner = await create_account(engine.pool, max_concurrent_conferences=10)
    starts_at = datetime.now(UTC) + timedelta(seconds=3)
    ids = [(await planning.plan(owner, ConferencePlan(subject=f"batch {i}", start=starts_at, duration_minutes=5,
                                                      max_participants=2))).id for i in range(6)]

    async def all_running():
        current = [await planning.get(owner, i) for i in ids]
        return current if all(c.state == ConferenceState.RUNNING for c in current) else None

    running = await wait_until(engine, all_running, timeout=15, what="all conferences running")
    for conference in running:
        assert abs((conference.started_at - starts_at).total_seconds()) < 1.0
        await live.end(owner, conference.id)


async def test_dialout_rate_limit(engine) -> None:
    planning, live = engine.services.planning, engine.services.live
    owner = await create_account(engine.pool, max_dialouts_per_minute=2)
    conference = await planning.plan(owner, ConferencePlan(
        subject="rate", start=None, duration_minutes=10, max_participants=5,
        participants=tuple(ParticipantPlan(n) for n in ("375290012200", "375290013200", "375290014200"))))
    by_number = {p.number: p for p in conference.participants}
    refused = by_number["375290014200"]
    assert (refused.state, refused.failure_reason) == ("failed", "error")
    with pytest.raises(RateLimited):
        await live.invite(owner, conference.id, [refused.id])
    await wait_until(engine, lambda: _connected(planning, owner, conference.id, 2), timeout=20,
                     what="two connected")
    await live.end(owner, conference.id)


async def _connected(service, owner: int, conference_id: int, count: int) -> bool:
    current = await service.get(owner, conference_id)
    return sum(p.state == "connected" for p in current.participants) == count


async def test_busy_callee_is_retried(settings: Settings, engine) -> None:
    """With one retry for busy, a busy callee is dialled twice and then stays failed (busy)."""
    retrying = Engine(settings.with_(node_id="retry-node", agi_port=free_port(), retry_busy=1,
                                     retry_delay_seconds=0.5))
    await retrying.start()
    try:
        planning, live = retrying.services.planning, retrying.services.live
        owner = await create_account(retrying.pool)
        conference = await planning.plan(owner, ConferencePlan(
            subject="retry", start=None, duration_minutes=10, max_participants=2,
            participants=(ParticipantPlan("375290015486"),)))

        async def retried_and_failed():
            participant = (await planning.get(owner, conference.id)).participants[0]
            kinds = [e["kind"] for e in await planning.events(owner, conference.id)]
            logged = kinds.count("participant.failed") == 2  # the event follows the state change
            return participant if participant.attempts == 2 and participant.state == "failed" and logged else None

        participant = await wait_until(retrying, retried_and_failed, timeout=20, what="second busy")
        assert (participant.failure_reason, participant.hangup_cause) == ("busy", 17)
        kinds = [e["kind"] for e in await planning.events(owner, conference.id)]
        assert kinds.count("participant.dialing") == 2 and kinds.count("participant.failed") == 2
        await live.end(owner, conference.id)
    finally:
        await retrying.stop()


async def test_conference_missed_while_engine_was_down(engine) -> None:
    """A scheduled conference whose whole time passed is marked failed, never started or dialled."""
    planning = engine.services.planning
    owner = await create_account(engine.pool)
    conference = await planning.plan(owner, ConferencePlan(
        subject="missed", start=datetime.now(UTC) + timedelta(hours=1), duration_minutes=10, max_participants=2,
        participants=(ParticipantPlan("375290016200"),)))
    # as if the engine had been down: move the plan into the past behind the scheduler's back
    await engine.pool.execute("UPDATE conferences SET starts_at = now() - interval '1 hour', "
                              "ends_at = now() - interval '50 minutes' WHERE id = $1", conference.id)
    engine.services.scheduler.wake()
    event = await wait_for_bus_event(engine, lambda e: e.kind == "conference.failed"
                                     and e.conference_id == conference.id, timeout=10)
    assert event.data["reason"] == "missed"
    current = await planning.get(owner, conference.id)
    assert current.state == ConferenceState.FAILED and current.participants[0].state == "planned"


async def test_new_engine_adopts_a_dial_out_in_progress(settings: Settings, engine) -> None:
    """The engine is replaced while a callee is still ringing: the new engine records how that
    call ended (no answer, cause 19) instead of leaving it 'calling' forever."""
    node_settings = settings.with_(node_id="adopt-node", agi_port=free_port())
    first = Engine(node_settings)
    await first.start()
    owner = await create_account(first.pool)
    try:
        ringing = asyncio.ensure_future(wait_for_bus_event(
            first, lambda e: e.kind == "participant.state" and e.data["state"] == "ringing"))
        conference = await first.services.planning.plan(owner, ConferencePlan(
            subject="adopt", start=None, duration_minutes=10, max_participants=2,
            participants=(ParticipantPlan("375290017408"),)))
        await ringing
    finally:
        await first.stop()
    second = Engine(node_settings.with_(agi_port=free_port()))
    await second.start()
    try:
        planning, live = second.services.planning, second.services.live

        async def failed():
            participant = (await planning.get(owner, conference.id)).participants[0]
            return participant if participant.state == "failed" else None

        participant = await wait_until(second, failed, timeout=15, what="the adopted call's outcome")
        assert (participant.failure_reason, participant.hangup_cause, participant.attempts) == ("no_answer", 19, 1)
        await live.end(owner, conference.id)
    finally:
        await second.stop()
