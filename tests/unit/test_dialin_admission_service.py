"""Dial-in admission and back-off through the service (engine/services/dialin.py) over fakes of
our own call and repository interfaces: what an admitted caller's channel is told, who a full or
locked room turns away, a permanent room's session, and the growing wait after wrong PINs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.adapters.asterisk.contract import PARTICIPANT_VARIABLE, is_dialin_token
from engine.config import Settings
from engine.domain.dialin import DialinPolicy, Refusal
from engine.domain.errors import LimitExceeded
from engine.domain.model import ConferenceState, Role
from engine.services.bus import DomainEvent, EventBus
from engine.services.dialin import DialinService
from engine.services.pin_guard import PinGuard
from tests.unit.fakes import FakeCall, FakeDialinRepo, FakeRooms, NoRooms, conference

NUMBER, CHAIR, GUEST = "123456", "111111", "222222"


def service(rooms: Any = None, **policy: Any) -> tuple[DialinService, FakeDialinRepo, list[DomainEvent]]:
    bus = EventBus()
    events: list[DomainEvent] = []
    bus.subscribe(events.append)
    repo = FakeDialinRepo()
    guard = PinGuard(repo, bus, DialinPolicy(base_delay_seconds=0, max_delay_seconds=0, **policy))  # type: ignore[arg-type]
    instance = DialinService(Settings(test_mode=True), repo, bus, rooms or NoRooms(), guard)  # type: ignore[arg-type]
    return instance, repo, events


async def test_an_admitted_chair_is_sent_into_the_room_with_its_profile_and_seats() -> None:
    dialin, repo, events = service()
    repo.conferences[NUMBER] = conference(max_participants=4, language="en")
    call = FakeCall([NUMBER, CHAIR])
    outcome = await dialin.answer(call)
    await dialin.stop()  # the bus listeners run after the call entered
    assert (outcome.role, outcome.refusal, outcome.participant_id) == (Role.CHAIR, None, 99)
    assert call.variables["VECHE_ROOM"] == "veche-1" and call.variables["VECHE_PROFILE"] == "veche_chair"
    assert call.variables["VECHE_MAX_MEMBERS"] == "6"  # the announcer's and the recorder's seats
    assert call.variables["CHANNEL(language)"] == "en"
    token = call.variables[PARTICIPANT_VARIABLE]
    assert is_dialin_token(token) and repo.callers[0]["call_id"] == token and repo.callers[0]["channel"] is None
    assert [(e.kind, e.data) for e in events] == [("participant.added", {"origin": "dialin", "role": "chair"})]


@pytest.mark.parametrize(("changes", "seats", "refusal", "prompt"), [
    ({"locked": True}, 0, Refusal.LOCKED, "conf-locked"),
    ({"max_participants": 3}, 3, Refusal.FULL, "conf-full"),
])
async def test_a_guest_is_turned_away_where_a_chair_enters(changes: dict, seats: int, refusal: Refusal,
                                                          prompt: str) -> None:
    dialin, repo, _ = service()
    repo.conferences[NUMBER] = conference(**changes)
    repo.seats = seats
    guest = FakeCall([NUMBER, GUEST])
    assert (await dialin.answer(guest)).refusal == refusal
    assert guest.heard[-2:] == [f"play {prompt}", "play goodbye"] and "VECHE_ROOM" not in guest.variables
    chair = FakeCall([NUMBER, CHAIR])
    assert (await dialin.answer(chair)).refusal is None and chair.variables["VECHE_ROOM"]


async def test_without_a_guest_pin_a_lone_hash_is_a_guest_and_waits_for_the_chair_when_asked() -> None:
    dialin, repo, _ = service()
    repo.conferences[NUMBER] = conference(guest_pin_required=False, wait_for_chair=True)
    call = FakeCall([NUMBER, ""])
    assert (await dialin.answer(call)).role == Role.GUEST
    assert call.variables["VECHE_PROFILE"] == "veche_guest_wait"


async def test_too_early_and_over_are_refused_after_the_pin() -> None:
    dialin, repo, _ = service(join_early_minutes=10)
    now = datetime.now(UTC)
    repo.conferences[NUMBER] = conference(state=ConferenceState.SCHEDULED, starts_at=now + timedelta(minutes=30),
                                          ends_at=now + timedelta(minutes=60))
    assert (await dialin.answer(FakeCall([NUMBER, GUEST]))).refusal == Refusal.NOT_STARTED
    repo.conferences[NUMBER] = conference(state=ConferenceState.SCHEDULED, starts_at=now + timedelta(minutes=5),
                                          ends_at=now + timedelta(minutes=35))
    assert (await dialin.answer(FakeCall([NUMBER, GUEST]))).refusal is None  # early enough
    repo.conferences[NUMBER] = conference(state=ConferenceState.CANCELLED)
    assert (await dialin.answer(FakeCall([NUMBER, CHAIR]))).refusal == Refusal.ENDED


async def test_a_permanent_room_opens_its_session_on_a_correct_pin_only() -> None:
    room = conference(id=0, series_id=8, state=ConferenceState.SCHEDULED)
    rooms = FakeRooms(room, conference(id=31, series_id=8, room="veche-31"))
    dialin, _, _ = service(rooms)
    wrong = await dialin.answer(FakeCall([NUMBER, "999999", "999998", "999997"]))
    assert wrong.wrong_entries == 3 and rooms.opened == []
    call = FakeCall([NUMBER, GUEST])
    assert (await dialin.answer(call)).conference_id == 31
    assert rooms.opened == [8] and call.variables["VECHE_ROOM"] == "veche-31"
    rooms.refuse = LimitExceeded("too many conferences at the same time")
    full = FakeCall([NUMBER, CHAIR])
    assert (await dialin.answer(full)).refusal == Refusal.FULL
    assert full.heard[-2:] == ["play conf-full", "play goodbye"]


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The brute-force brake's waits, recorded instead of slept (nothing else in these calls sleeps)."""
    recorded: list[float] = []
    real_sleep: Callable[..., Any] = asyncio.sleep

    async def sleep(delay: float, *args: Any) -> None:
        recorded.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return recorded


async def test_the_wait_after_a_wrong_pin_doubles_per_failure_of_the_caller(waits: list[float]) -> None:
    bus = EventBus()
    repo = FakeDialinRepo()
    repo.conferences[NUMBER] = conference()
    guard = PinGuard(repo, bus, DialinPolicy(base_delay_seconds=1, max_delay_seconds=8,  # type: ignore[arg-type]
                                             max_wrong_entries=5))
    dialin = DialinService(Settings(test_mode=True), repo, bus, NoRooms(), guard)  # type: ignore[arg-type]
    await dialin.answer(FakeCall([NUMBER, "1", "2", "3", "4", "5"]))
    assert waits == [1, 2, 4, 8, 8]


async def test_many_callers_guessing_one_number_slow_each_other_down(waits: list[float]) -> None:
    repo = FakeDialinRepo()
    bus = EventBus()
    guard = PinGuard(repo, bus, DialinPolicy(base_delay_seconds=1, max_delay_seconds=8,  # type: ignore[arg-type]
                                             conference_failures_per_step=3, max_wrong_entries=1))
    dialin = DialinService(Settings(test_mode=True), repo, bus, NoRooms(), guard)  # type: ignore[arg-type]
    for n in range(7):  # an unknown number: slowed exactly like a real one
        await dialin.answer(FakeCall(["654321", "1"], caller_number=f"37529000000{n}"))
    assert waits == [1, 1, 1, 1, 1, 2, 2]
