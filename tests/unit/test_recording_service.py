"""The recording service starts nothing after it stopped: a delivery of the bus under way when
the engine stops still calls the listeners it started with."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from engine.services.bus import DomainEvent, EventBus
from engine.services.recording import RecordingService


async def test_a_stopped_recording_service_ignores_a_late_conference_start() -> None:
    asked: list[int] = []

    async def get(conference_id: int, **_: Any) -> None:
        asked.append(conference_id)

    service = RecordingService(cast(Any, None), cast(Any, None), cast(Any, SimpleNamespace(get=get)),
                               nodes=cast(Any, SimpleNamespace(unsubscribe=lambda callback: None)),
                               bus=EventBus(), calls=cast(Any, None))
    await service.stop()
    await service.on_domain_event(DomainEvent("conference.started", 7))
    for _ in range(3):  # a task it had started would ask by now
        await asyncio.sleep(0)
    assert asked == []
