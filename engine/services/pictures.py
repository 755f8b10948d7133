"""Data behind the pictures: talking spans recorded from the live events, each connected
participant's network numbers sampled every VECHE_QUALITY_SAMPLE_SECONDS, the system's load
sampled every VECHE_LOAD_SAMPLE_SECONDS (both kept VECHE_SAMPLE_RETENTION_DAYS), and the spans and
series the history detail, the network report and the operator dashboard draw."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.adapters.db.pictures import PicturesRepository
from engine.config import Settings
from engine.domain import timeline as rules
from engine.domain.model import Conference
from engine.services.batches import Coalescer
from engine.services.bus import Bus, DomainEvent
from engine.services.conference_planning import ConferencePlanning
from engine.services.quality import QualityService

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 3600.0


@dataclass(frozen=True)
class Timeline:
    conference: Conference
    start: datetime
    end: datetime
    connected: dict[int, list[rules.Span]]
    talking: dict[int, list[rules.Span]]


@dataclass(frozen=True)
class NetworkSeries:
    conference: Conference
    start: datetime
    end: datetime
    jitter: dict[int, list[tuple[datetime, float]]]
    loss: dict[int, list[tuple[datetime, float]]]


class PicturesService:
    def __init__(self, settings: Settings, repo: PicturesRepository, bus: Bus, planning: ConferencePlanning,
                 quality: QualityService) -> None:
        self.settings = settings
        self.repo = repo
        self.bus = bus
        self.planning = planning
        self.quality = quality
        self._tasks: set[asyncio.Task] = set()
        # spans that end together (a conference ending, its participants leaving at once) are
        # closed in one statement
        self._stops: Coalescer[int, datetime, None] = Coalescer(self._close_spans, missing=None)
        # participant id -> conference id of each open span: a participant who never talked
        # leaves without a write
        self._open: dict[int, int] = {}

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        self._open = await self.repo.open_spans()
        self.bus.subscribe(self.on_domain_event,
                           kinds=("participant.talking", "participant.state", "conference.ended"))
        for coro, name in ((self._every(self.settings.quality_sample_seconds, self.sample_quality), "quality-sample"),
                           (self._every(self.settings.load_sample_seconds, self.sample_load), "load-sample"),
                           (self._every(PURGE_INTERVAL_SECONDS, self.purge), "load-purge")):
            task = asyncio.create_task(coro, name=name)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        self.bus.unsubscribe(self.on_domain_event)
        await self._stops.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _every(self, seconds: float, work: Any) -> None:
        while True:
            try:
                await work()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("%s failed", work.__name__)
            await asyncio.sleep(seconds)

    # ----------------------------------------------------------------- recording

    def on_domain_event(self, event: DomainEvent) -> Awaitable[None] | None:
        """The talk spans follow the talking changes, a participant's end and the conference's
        end; any other state (a burst's calling and connected) costs no coroutine."""
        if event.kind == "participant.talking" and event.participant_id is not None:
            return self._talking(event.participant_id, event.conference_id, bool(event.data.get("talking")),
                                 event.at)
        if event.kind == "participant.state" and event.participant_id is not None \
                and event.data.get("state") in ("left", "failed"):
            return self._stop_talk(event.participant_id, event.at)
        if event.kind == "conference.ended":
            return self._conference_ended(event.conference_id, event.at)
        return None

    async def _talking(self, participant_id: int, conference_id: int, talking: bool, at: datetime) -> None:
        if talking:
            await self.repo.talk_started(conference_id, participant_id, at)
            self._open[participant_id] = conference_id
        else:
            await self._stop_talk(participant_id, at)

    async def _conference_ended(self, conference_id: int, at: datetime) -> None:
        await self.repo.close_talks(conference_id, at)
        for participant_id in [p for p, c in self._open.items() if c == conference_id]:
            del self._open[participant_id]

    async def _stop_talk(self, participant_id: int, at: datetime) -> None:
        if self._open.pop(participant_id, None) is not None:
            await self._stops.submit(participant_id, at)

    async def _close_spans(self, stops: dict[int, datetime]) -> dict[int, None]:
        await self.repo.talks_stopped(stops)
        return {}

    async def sample_quality(self) -> int:
        """Store the network numbers of every participant of every running conference who has
        been in the room for a whole sampling interval; how many samples were stored. A call that
        joined since has no RTCP report to speak of yet, and asking its media node costs up to
        three AMI actions per participant: a burst of them when a large dial-out has just joined."""
        stored = 0
        settled = datetime.now(UTC) - timedelta(seconds=self.settings.quality_sample_seconds)
        for conference_id in await self.repo.running_conference_ids():
            try:
                report = await self.quality.report(None, conference_id, joined_before=settled)
            except Exception as exc:  # noqa: BLE001 - a conference ending meanwhile skips one round
                log.info("no quality sample of conference %s: %s", conference_id, exc)
                continue
            rows = [(r["participant_id"], r["jitter_ms"], r["loss_percent"], r["rtt_ms"], r["mos"])
                    for r in report if r["jitter_ms"] is not None and r["loss_percent"] is not None]
            await self.repo.add_quality_samples(conference_id, datetime.now(UTC), rows)
            stored += len(rows)
        return stored

    async def sample_load(self) -> dict[str, Any]:
        return await self.repo.add_load_sample(datetime.now(UTC).replace(microsecond=0))

    async def purge(self) -> int:
        before = datetime.now(UTC) - timedelta(days=self.settings.sample_retention_days)
        return await self.repo.purge_samples(before)

    # ----------------------------------------------------------------- reading

    @staticmethod
    def _window(conference: Conference) -> tuple[datetime, datetime]:
        now = datetime.now(UTC)
        joined = [p.joined_at for p in conference.participants if p.joined_at is not None]
        start = conference.started_at or min(joined, default=None) or conference.starts_at or now
        end = conference.ended_at or (now if conference.state == "running" else None) \
            or max([p.left_at for p in conference.participants if p.left_at], default=None) or now
        return start, max(start, end)

    async def timeline(self, owner_id: int | None, conference_id: int) -> Timeline:
        """Connected and talking spans per participant (NotFound if not the owner's)."""
        conference = await self.planning.get(owner_id, conference_id)
        events = await self.planning.events(owner_id, conference_id)
        start, end = self._window(conference)
        connected = rules.connected_spans(events, conference.participants, end)
        talking = rules.talk_spans(await self.repo.talk_spans(conference_id), end)
        moments = [moment for spans in (*connected.values(), *talking.values()) for span in spans for moment in span]
        return Timeline(conference, min([start, *moments]), max([end, *moments]), connected, talking)

    async def network(self, owner_id: int | None, conference_id: int) -> NetworkSeries:
        """Jitter and loss over time per participant (NotFound if not the owner's)."""
        conference = await self.planning.get(owner_id, conference_id)
        samples = await self.repo.quality_samples(conference_id)
        start, end = self._window(conference)
        moments = [sample["at"] for sample in samples]
        return NetworkSeries(conference, min([start, *moments]), max([end, *moments]),
                             rules.series_by_participant(samples, "jitter_ms"),
                             rules.series_by_participant(samples, "loss_percent"))

    async def load(self, hours: int = 24) -> list[dict[str, Any]]:
        """Load samples of the last ``hours`` hours, oldest first."""
        return await self.repo.load_samples(datetime.now(UTC) - timedelta(hours=hours))

