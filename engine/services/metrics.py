"""Observability service: feeds the engine's Prometheus metrics from domain events, the media
nodes' dial outcomes and link changes (without the other services knowing), reads gauges at
scrape time, and checks health."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from engine.adapters.asterisk import CallPlaced, DialOutcome, LinkChanged, MediaNodes, NodeEvent
from engine.adapters.asterisk.contract import originate_outcome
from engine.adapters.db.metrics import MetricsRepository
from engine.metrics import ScrapeSnapshot, VecheMetrics
from engine.services.bus import Bus, DomainEvent

log = logging.getLogger(__name__)

REMEMBERED_DIAL_RESULTS = 4096
DIAL_RESULT_GRACE = 3.0  # seconds a failed dial's CallPlaced waits for its DialOutcome
# label values exposed as 0 from the start, so dashboards and alerts see every series
OUTCOMES = ("answered", "busy", "no_answer", "rejected", "unavailable", "congestion", "cancelled", "failed")
FAILURE_REASONS = ("busy", "no_answer", "congestion", "rejected", "invalid_number", "cancelled", "error")
KNOWN_EVENT_KINDS = (
    "conference.scheduled", "conference.updated", "conference.cancelled", "conference.started",
    "conference.extended", "conference.locked", "conference.unlocked", "conference.ended", "conference.failed",
    "participant.added", "participant.state", "participant.muted", "participant.unmuted", "participant.kicked",
    "participant.talking",
)


class AgiStats(Protocol):
    """What metrics and health read of the FastAGI server (engine.agi.AgiServer)."""

    @property
    def listening(self) -> bool: ...

    @property
    def active(self) -> int: ...

    @property
    def sessions(self) -> Mapping[str, int]: ...

    @property
    def ended(self) -> Mapping[str, int]: ...


class MetricsService:
    """Owns the engine's metrics registry."""

    def __init__(self, repo: MetricsRepository, *, bus: Bus, nodes: MediaNodes, agi: AgiStats,
                 dial_result_grace: float = DIAL_RESULT_GRACE) -> None:
        self.metrics = VecheMetrics()
        self.dial_result_grace = dial_result_grace  # seconds a failed dial waits for its dial result
        self.repo = repo
        self.bus = bus
        self.nodes = nodes
        self.agi = agi
        self._dial_results: OrderedDict[str, DialOutcome] = OrderedDict()
        self._waiting_responses: dict[str, tuple[CallPlaced, asyncio.TimerHandle]] = {}
        self._running = False

    async def start(self) -> None:
        self._running = True
        for kind in KNOWN_EVENT_KINDS:
            self.metrics.domain_events.labels(kind)
        for reason in FAILURE_REASONS:
            self.metrics.participant_failures.labels(reason)
        self.bus.subscribe(self.on_domain_event)
        for node in self.nodes:
            for outcome in OUTCOMES:
                self.metrics.originates.labels(node, outcome)
            for state in ("up", "down"):
                self.metrics.ami_link_changes.labels(node, state)
        self.nodes.subscribe(self.on_node_event)

    async def stop(self) -> None:
        self._running = False
        self.bus.unsubscribe(self.on_domain_event)
        self.nodes.unsubscribe(self.on_node_event)
        for response, timer in self._waiting_responses.values():
            timer.cancel()
            self._count_originate(response, None)
        self._waiting_responses.clear()

    # ----------------------------------------------------------------- event feeds

    def on_node_event(self, event: NodeEvent) -> None:
        # A failed dial's CallPlaced and the dialplan's DialOutcome arrive in either order (the
        # Local channel passes busy/congestion on before the dialplan reports), so whichever
        # comes first waits for the other, a failure at most ``dial_result_grace`` seconds.
        if isinstance(event, LinkChanged):
            self.on_link_change(event.node_id, event.up)
            return
        if isinstance(event, DialOutcome):
            call_id = event.call_id
            if not call_id:
                return
            waiting = self._waiting_responses.pop(call_id, None)
            if waiting is not None:
                response, timer = waiting
                timer.cancel()
                self._count_originate(response, event)
                return
            self._dial_results[call_id] = event
            while len(self._dial_results) > REMEMBERED_DIAL_RESULTS:
                self._dial_results.popitem(last=False)
            return
        if not isinstance(event, CallPlaced) or not event.dialout:
            return
        call_id = event.call_id
        dial_result = self._dial_results.pop(call_id, None)
        if dial_result is not None or event.answered or not call_id:
            self._count_originate(event, dial_result)
            return
        timer = asyncio.get_running_loop().call_later(self.dial_result_grace, self._no_dial_result, call_id)
        self._waiting_responses[call_id] = (event, timer)

    def _no_dial_result(self, call_id: str) -> None:
        waiting = self._waiting_responses.pop(call_id, None)
        if waiting is not None:
            self._count_originate(waiting[0], None)

    def _count_originate(self, response: CallPlaced, dial_result: DialOutcome | None) -> None:
        outcome = originate_outcome(response.answered, response.reason, dial_result and dial_result.status,
                                    dial_result and dial_result.cause)
        self.metrics.originates.labels(response.node_id, outcome).inc()

    def on_link_change(self, node_id: str, up: bool) -> None:
        if self._running:
            self.metrics.ami_link_changes.labels(node_id, "up" if up else "down").inc()

    def on_domain_event(self, event: DomainEvent) -> Awaitable[None] | None:
        """Counts every event as it is published; only a start's delay needs the database (the
        bus awaits what this returns with the other asynchronous listeners)."""
        self.metrics.domain_events.labels(event.kind).inc()
        if event.kind == "participant.state" and event.data.get("state") == "failed":
            self.metrics.participant_failures.labels(str(event.data.get("reason") or "unknown")).inc()
        elif event.kind == "participant.added" and event.data.get("origin") == "dialin":
            self.metrics.dialin_admitted.inc()
        elif event.kind == "conference.started":
            return self._observe_start_delay(event.conference_id)
        return None

    async def _observe_start_delay(self, conference_id: int) -> None:
        delay = await self.repo.start_delay_seconds(conference_id)
        if delay is not None:
            self.metrics.conference_start_delay.observe(delay)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        self.metrics.http_latency.labels(method, route, str(status)).observe(seconds)

    # ----------------------------------------------------------------- scrape and health

    async def refresh(self) -> ScrapeSnapshot:
        """Read the gauges that are computed at scrape time."""
        nodes = self.nodes
        agi = self.agi
        snapshot = ScrapeSnapshot(
            ami_connected={node: adapter.connected for node, adapter in nodes.items()},
            ami_reconnects={node: adapter.reconnects for node, adapter in nodes.items()},
            conferences_running=dict.fromkeys(nodes, 0),
            participants_connected=dict.fromkeys(nodes, 0),
            dialin_attempts=agi.sessions.get("dialin", 0),
            fastagi_listening=agi.listening,
            fastagi_sessions_active=agi.active,
            fastagi_sessions_ended=dict(agi.ended),
        )
        try:
            counts = await asyncio.wait_for(self.repo.counts(), 5)
        except Exception as exc:  # noqa: BLE001 - a scrape must answer even with the database down
            log.warning("metrics: cannot read the database: %s", exc)
        else:
            snapshot.conferences_running.update(counts.conferences_running)
            snapshot.participants_connected.update(counts.participants_connected)
            snapshot.scheduler_lag_seconds = counts.scheduler_lag_seconds
            snapshot.mail_queue = counts.mail_queue
            snapshot.dialin_failures = counts.dialin_failures
        self.metrics.scrape.snapshot = snapshot
        return snapshot

    async def exposition(self) -> bytes:
        await self.refresh()
        return self.metrics.exposition()

    async def health(self) -> dict[str, Any]:
        """PostgreSQL, AMI (every node) and FastAGI, each checked on its own."""
        details: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.repo.ping(), 3)
            postgres = True
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            postgres = False
            details["postgres"] = str(exc) or type(exc).__name__
        nodes = {node: adapter.connected for node, adapter in self.nodes.items()}
        ami = bool(nodes) and all(nodes.values())
        if not ami:
            down = [node for node, up in nodes.items() if not up] or ["(none)"]
            details["ami"] = "AMI link down: " + ", ".join(down)
        agi = self.agi
        fastagi = agi.listening
        if not fastagi:
            details["fastagi"] = "FastAGI server is not listening"
        checks = {"postgres": postgres, "ami": ami, "fastagi": fastagi}
        return {"healthy": all(checks.values()), "checks": checks, "nodes": nodes, "details": details}

