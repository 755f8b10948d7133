"""Observability service: feeds the engine's Prometheus metrics from domain events, AMI events and
link changes (without the other services knowing), reads gauges at scrape time, and checks health."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

from engine.adapters.ami import AmiAdapter, AmiEvent
from engine.adapters.db.metrics import MetricsRepository
from engine.metrics import ScrapeSnapshot, VecheMetrics
from engine.services.bus import Bus, DomainEvent

log = logging.getLogger(__name__)

DIALOUT_CONTEXT = "@veche-dialout"
# DIALSTATUS of veche-trunk's Dial, reported by UserEvent VecheDialResult
DIAL_STATUS_OUTCOMES = {"ANSWER": "answered", "BUSY": "busy", "NOANSWER": "no_answer", "CONGESTION": "congestion",
                        "CANCEL": "cancelled"}
CAUSE_CALL_REJECTED = "21"
# OriginateResponse Reason when the dialplan left no VecheDialResult (e.g. refused by veche-dialout)
ORIGINATE_REASON_OUTCOMES = {"4": "answered", "5": "busy", "3": "no_answer", "8": "congestion"}
REMEMBERED_DIAL_RESULTS = 4096
DIAL_RESULT_GRACE = 3.0  # seconds a failed OriginateResponse waits for its VecheDialResult
# label values exposed as 0 from the start, so dashboards and alerts see every series
OUTCOMES = ("answered", "busy", "no_answer", "rejected", "unavailable", "congestion", "cancelled", "failed")
FAILURE_REASONS = ("busy", "no_answer", "congestion", "rejected", "invalid_number", "cancelled", "error")
KNOWN_EVENT_KINDS = (
    "conference.scheduled", "conference.updated", "conference.cancelled", "conference.started",
    "conference.extended", "conference.locked", "conference.unlocked", "conference.ended", "conference.failed",
    "participant.added", "participant.state", "participant.muted", "participant.unmuted", "participant.kicked",
    "participant.talking",
)


def originate_outcome(response: AmiEvent, dial_result: AmiEvent | None) -> str:
    """answered, busy, no_answer, rejected, unavailable, congestion, cancelled or failed."""
    if response.get("Response") == "Success":
        return "answered"
    if dial_result is not None:
        status = dial_result.get("DialStatus")
        if status == "CHANUNAVAIL":
            return "rejected" if dial_result.get("Cause") == CAUSE_CALL_REJECTED else "unavailable"
        if status in DIAL_STATUS_OUTCOMES and status != "ANSWER":
            return DIAL_STATUS_OUTCOMES[status]
    return ORIGINATE_REASON_OUTCOMES.get(response.get("Reason"), "failed")


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

    def __init__(self, repo: MetricsRepository, *, bus: Bus, nodes: Mapping[str, AmiAdapter], agi: AgiStats,
                 dial_result_grace: float = DIAL_RESULT_GRACE) -> None:
        self.metrics = VecheMetrics()
        self.dial_result_grace = dial_result_grace  # seconds a failed Originate waits for its dial result
        self.repo = repo
        self.bus = bus
        self.nodes = nodes
        self.agi = agi
        self._dial_results: OrderedDict[str, AmiEvent] = OrderedDict()
        self._waiting_responses: dict[str, tuple[AmiEvent, asyncio.TimerHandle]] = {}
        self._running = False

    async def start(self) -> None:
        self._running = True
        for kind in KNOWN_EVENT_KINDS:
            self.metrics.domain_events.labels(kind)
        for reason in FAILURE_REASONS:
            self.metrics.participant_failures.labels(reason)
        self.bus.subscribe(self.on_domain_event)
        for node, adapter in self.nodes.items():
            for outcome in OUTCOMES:
                self.metrics.originates.labels(node, outcome)
            for state in ("up", "down"):
                self.metrics.ami_link_changes.labels(node, state)
            adapter.subscribe(self.on_ami_event, ("OriginateResponse", "UserEvent"))
            adapter.on_link_change(self.on_link_change)

    async def stop(self) -> None:
        self._running = False
        self.bus.unsubscribe(self.on_domain_event)
        for adapter in self.nodes.values():
            adapter.unsubscribe(self.on_ami_event)
        for response, timer in self._waiting_responses.values():
            timer.cancel()
            self._count_originate(response, None)
        self._waiting_responses.clear()

    # ----------------------------------------------------------------- event feeds

    def on_ami_event(self, event: AmiEvent) -> None:
        # A failed Originate's OriginateResponse and the dialplan's VecheDialResult arrive in either
        # order (the Local channel passes busy/congestion on before the dialplan reports), so
        # whichever comes first waits for the other, a failure at most ``dial_result_grace`` seconds.
        if event.name == "UserEvent":
            call_id = event.get("Call")
            if event.get("UserEvent") != "VecheDialResult" or not call_id:
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
        if event.name != "OriginateResponse" or DIALOUT_CONTEXT not in event.get("Channel"):
            return
        call_id = event.get("Uniqueid")
        dial_result = self._dial_results.pop(call_id, None)
        if dial_result is not None or event.get("Response") == "Success" or not call_id:
            self._count_originate(event, dial_result)
            return
        timer = asyncio.get_running_loop().call_later(self.dial_result_grace, self._no_dial_result, call_id)
        self._waiting_responses[call_id] = (event, timer)

    def _no_dial_result(self, call_id: str) -> None:
        waiting = self._waiting_responses.pop(call_id, None)
        if waiting is not None:
            self._count_originate(waiting[0], None)

    def _count_originate(self, response: AmiEvent, dial_result: AmiEvent | None) -> None:
        self.metrics.originates.labels(response.node_id, originate_outcome(response, dial_result)).inc()

    def on_link_change(self, node_id: str, up: bool) -> None:
        if self._running:
            self.metrics.ami_link_changes.labels(node_id, "up" if up else "down").inc()

    async def on_domain_event(self, event: DomainEvent) -> None:
        self.metrics.domain_events.labels(event.kind).inc()
        if event.kind == "participant.state" and event.data.get("state") == "failed":
            self.metrics.participant_failures.labels(str(event.data.get("reason") or "unknown")).inc()
        elif event.kind == "participant.added" and event.data.get("origin") == "dialin":
            self.metrics.dialin_admitted.inc()
        elif event.kind == "conference.started":
            delay = await self.repo.start_delay_seconds(event.conference_id)
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

