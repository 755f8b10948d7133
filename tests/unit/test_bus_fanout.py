"""The event bus calls plain subscribers before it awaits the asynchronous ones, and the live
console's fan-out (web/api/events.py Fanout) holds one bus subscription for all its streams,
encodes each event once and wakes each stream of the event's conference with what gathered."""

from __future__ import annotations

import asyncio

from engine.services.bus import DomainEvent, EventBus, Subscriber
from web.api import events
from web.api.events import Fanout


async def test_plain_subscribers_hear_an_event_before_the_asynchronous_ones_finish() -> None:
    bus = EventBus()
    heard: list[str] = []
    release = asyncio.Event()

    async def slow(event: DomainEvent) -> None:
        heard.append("slow started")
        await release.wait()
        heard.append("slow done")

    bus.subscribe(slow)
    bus.subscribe(lambda event: heard.append("plain"))
    publishing = asyncio.create_task(bus.publish(DomainEvent("participant.talking", 1)))
    await asyncio.sleep(0)
    assert heard == ["plain", "slow started"]
    release.set()
    await publishing
    assert heard == ["plain", "slow started", "slow done"]


async def test_a_subscriber_with_kinds_hears_only_those_and_is_not_called_for_the_rest() -> None:
    bus = EventBus()
    heard: list[str] = []
    calls: list[str] = []

    def audit(event: DomainEvent):  # noqa: ANN202 - returns the coroutine an async listener would
        calls.append(event.kind)

        async def write() -> None:
            heard.append(f"audit {event.kind}")
        return write()

    bus.subscribe(audit, kinds={"conference.ended"})
    bus.subscribe(lambda event: heard.append(f"all {event.kind}"))
    await bus.publish(DomainEvent("participant.state", 1))
    await bus.publish(DomainEvent("conference.ended", 1))
    assert calls == ["conference.ended"]  # not even called for a state: no coroutine made
    assert heard == ["all participant.state", "all conference.ended", "audit conference.ended"]
    bus.unsubscribe(audit)
    await bus.publish(DomainEvent("conference.ended", 1))
    assert calls == ["conference.ended"] and bus.subscriber_count == 1


async def publish_then_cancel(bus: EventBus, kind: str, later: Subscriber) -> None:
    """Publish ``kind`` to a first listener that never ends and to ``later``, and cancel the
    publisher while it waits for the first."""

    async def slow(event: DomainEvent) -> None:
        await asyncio.Event().wait()

    bus.subscribe(slow)
    bus.subscribe(later)
    publishing = asyncio.create_task(bus.publish(DomainEvent(kind, 1)))
    await asyncio.sleep(0)
    publishing.cancel()
    await asyncio.gather(publishing, return_exceptions=True)


async def test_a_cancelled_publisher_still_lets_the_later_listeners_hear_the_event() -> None:
    bus = EventBus()
    heard: list[str] = []
    audited = asyncio.Event()

    async def audit(event: DomainEvent) -> None:
        heard.append(event.kind)
        audited.set()

    await publish_then_cancel(bus, "conference.ended", audit)
    await asyncio.wait_for(audited.wait(), 5)
    assert heard == ["conference.ended"]


async def test_settled_waits_for_the_listeners_of_a_cancelled_publisher() -> None:
    """An engine stopping waits for them before it stops the services they call."""
    bus = EventBus()
    release = asyncio.Event()
    heard: list[str] = []

    async def audit(event: DomainEvent) -> None:
        await release.wait()
        heard.append(event.kind)

    await publish_then_cancel(bus, "conference.started", audit)
    settling = asyncio.create_task(bus.settled())
    await asyncio.sleep(0)
    assert not settling.done() and heard == []
    release.set()
    await asyncio.wait_for(settling, 5)
    assert heard == ["conference.started"]


async def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    bus = EventBus()
    heard: list[int] = []

    def broken(event: DomainEvent) -> None:
        raise RuntimeError("boom")

    async def broken_later(event: DomainEvent) -> None:
        raise RuntimeError("boom")

    for callback in (broken, broken_later, lambda event: heard.append(event.conference_id)):
        bus.subscribe(callback)
    await bus.publish(DomainEvent("conference.started", 7))
    assert heard == [7]


async def test_the_fanout_wakes_the_streams_of_the_events_conference_with_one_bus_subscription() -> None:
    bus = EventBus()
    fanout = Fanout(bus)
    first, second, other = fanout.open(1), fanout.open(1), fanout.open(2)
    assert bus.subscriber_count == 1
    await bus.publish(DomainEvent("participant.talking", 1, participant_id=5, data={"talking": True}))
    await bus.publish(DomainEvent("participant.talking", 1, participant_id=5, data={"talking": False}))
    await asyncio.wait_for(first.ready.wait(), 5)
    assert second.ready.is_set() and not other.ready.is_set()
    assert len(first.pending) == 2 and first.pending == second.pending
    assert first.pending[0] is second.pending[0]  # encoded once
    assert first.pending[0].startswith(b'data: {"kind":"participant.talking","conference_id":1,"participant_id":5')
    for viewer in (first, second, other):
        fanout.close(viewer)
    assert bus.subscriber_count == 0


async def test_a_stream_too_far_behind_is_marked_to_end() -> None:
    bus = EventBus()
    fanout = Fanout(bus)
    viewer = fanout.open(1)
    for _ in range(events.QUEUE_LIMIT + 1):
        await bus.publish(DomainEvent("participant.talking", 1, participant_id=5, data={"talking": True}))
    await asyncio.wait_for(viewer.ready.wait(), 5)
    assert viewer.behind and len(viewer.pending) == events.QUEUE_LIMIT
    fanout.close(viewer)
