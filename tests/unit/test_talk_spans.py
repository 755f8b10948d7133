"""Talking spans as the pictures service keeps them (engine/services/pictures.py), over a fake of
our own repository: a span opened before the engine started is closed when its participant
leaves, and a participant who never talked leaves without a write."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from engine.config import Settings
from engine.services.bus import DomainEvent, EventBus
from engine.services.pictures import PicturesService

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class FakeSpans:
    """The talk-span part of PicturesRepository; the sampling the service also does finds nothing."""

    def __init__(self, open_spans: dict[int, int]) -> None:
        self.open = dict(open_spans)  # participant id -> conference id
        self.writes: list[tuple[str, Any]] = []

    async def open_spans(self) -> dict[int, int]:
        return dict(self.open)

    async def talk_started(self, conference_id: int, participant_id: int, at: datetime) -> None:
        self.writes.append(("started", participant_id))
        self.open.setdefault(participant_id, conference_id)

    async def talks_stopped(self, stops: Mapping[int, datetime]) -> None:
        self.writes.append(("stopped", sorted(stops)))
        for participant_id in stops:
            self.open.pop(participant_id, None)

    async def close_talks(self, conference_id: int, at: datetime) -> None:
        self.writes.append(("closed", conference_id))

    def __getattr__(self, name: str) -> Any:
        async def nothing(*args: Any, **kwargs: Any) -> list:
            return []
        return nothing


def left(participant_id: int) -> DomainEvent:
    return DomainEvent(kind="participant.state", conference_id=7, participant_id=participant_id,
                       data={"state": "left"}, at=AT)


async def test_a_span_open_before_the_start_closes_at_the_leave_and_silence_costs_no_write() -> None:
    repo, bus = FakeSpans({1: 7}), EventBus()
    service = PicturesService(Settings(test_mode=True), repo, bus, planning=None, quality=None)  # type: ignore[arg-type]
    await service.start()
    try:
        await bus.publish(left(2))  # never talked
        await bus.publish(left(1))  # talked before this engine started
        await bus.publish(DomainEvent(kind="participant.talking", conference_id=7, participant_id=3,
                                      data={"talking": True}, at=AT))
        await bus.publish(left(3))
        assert repo.writes == [("stopped", [1]), ("started", 3), ("stopped", [3])] and repo.open == {}
    finally:
        await service.stop()
