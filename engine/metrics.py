"""The engine's Prometheus metrics, in a registry of their own per Engine (tests run several
engines in one process): counters fed by events, and gauges computed when /metrics is scraped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "ScrapeSnapshot", "VecheMetrics"]

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
START_DELAY_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class ScrapeSnapshot:
    """What is read at scrape time: from the database, the AMI links and the FastAGI server."""

    ami_connected: dict[str, bool] = field(default_factory=dict)
    ami_reconnects: dict[str, int] = field(default_factory=dict)
    conferences_running: dict[str, int] = field(default_factory=dict)  # per node
    participants_connected: dict[str, int] = field(default_factory=dict)  # per node
    scheduler_lag_seconds: float = 0.0
    mail_queue: dict[str, int] = field(default_factory=dict)  # per status
    dialin_attempts: int = 0
    dialin_failures: dict[str, int] = field(default_factory=dict)  # per kind: number, pin, blocked
    fastagi_listening: bool = False
    fastagi_sessions_active: int = 0
    fastagi_sessions_ended: dict[str, int] = field(default_factory=dict)  # per reason (engine.agi.END_REASONS)


class _ScrapeCollector(Collector):
    """Turns the latest ScrapeSnapshot into metric families."""

    def __init__(self) -> None:
        self.snapshot = ScrapeSnapshot()

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        ami = GaugeMetricFamily("veche_ami_connected", "1 while the AMI link to the node is logged in",
                                labels=["node"])
        for node, up in sorted(snap.ami_connected.items()):
            ami.add_metric([node], 1.0 if up else 0.0)
        yield ami
        reconnects = CounterMetricFamily("veche_ami_reconnects", "AMI links re-established after a loss",
                                         labels=["node"])
        for node, count in sorted(snap.ami_reconnects.items()):
            reconnects.add_metric([node], count)
        yield reconnects
        running = GaugeMetricFamily("veche_conferences_running", "Conferences in state running", labels=["node"])
        for node, count in sorted(snap.conferences_running.items()):
            running.add_metric([node], count)
        yield running
        connected = GaugeMetricFamily("veche_participants_connected",
                                      "Participants in a ConfBridge room of a running conference", labels=["node"])
        for node, count in sorted(snap.participants_connected.items()):
            connected.add_metric([node], count)
        yield connected
        yield GaugeMetricFamily("veche_scheduler_lag_seconds",
                                "How overdue the most overdue scheduled conference is (0: none is due)",
                                value=snap.scheduler_lag_seconds)
        mail = GaugeMetricFamily("veche_mail_queue_depth", "Mail messages waiting to be sent", labels=["status"])
        for status in sorted({"queued", "retrying", "sending"} | snap.mail_queue.keys()):
            mail.add_metric([status], snap.mail_queue.get(status, 0))
        yield mail
        yield CounterMetricFamily("veche_dialin_attempts", "Dial-in calls that reached the FastAGI route",
                                  value=snap.dialin_attempts)
        failures = CounterMetricFamily("veche_dialin_failures",
                                       "Refused dial-in entries: wrong conference number, wrong PIN, blocked caller",
                                       labels=["kind"])
        for kind in sorted({"number", "pin", "blocked"} | snap.dialin_failures.keys()):
            failures.add_metric([kind], snap.dialin_failures.get(kind, 0))
        yield failures
        yield GaugeMetricFamily("veche_fastagi_listening", "1 while the FastAGI server accepts sessions",
                                value=1.0 if snap.fastagi_listening else 0.0)
        yield GaugeMetricFamily("veche_fastagi_sessions_active", "FastAGI sessions open now",
                                value=snap.fastagi_sessions_active)
        ended = CounterMetricFamily("veche_fastagi_sessions_ended",
                                    "FastAGI sessions ended, by reason (completed, hangup, or why it was cut)",
                                    labels=["reason"])
        for reason, count in sorted(snap.fastagi_sessions_ended.items()):
            ended.add_metric([reason], count)
        yield ended


class VecheMetrics:
    """Every metric of one engine."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.scrape = _ScrapeCollector()
        self.registry.register(self.scrape)
        self.originates = Counter(
            "veche_originates", "Dial-out originates by outcome "
            "(answered, busy, no_answer, rejected, unavailable, congestion, failed)",
            ["node", "outcome"], registry=self.registry)
        self.ami_link_changes = Counter("veche_ami_link_changes", "AMI link lost (down) or back (up)",
                                        ["node", "state"], registry=self.registry)
        self.domain_events = Counter("veche_domain_events", "Domain events published by the services, by kind",
                                     ["kind"], registry=self.registry)
        self.participant_failures = Counter("veche_participant_failures",
                                            "Participants whose call failed, by reason", ["reason"],
                                            registry=self.registry)
        self.dialin_admitted = Counter("veche_dialin_admitted", "Dial-in callers let into a conference",
                                       registry=self.registry)
        self.conference_start_delay = Histogram(
            "veche_conference_start_delay_seconds", "Time from a conference's planned start to its actual start",
            buckets=START_DELAY_BUCKETS, registry=self.registry)
        self.limit_hits = Counter(  # the toll-fraud guard (engine/services/limit_guard.py)
            "veche_account_limit_hits", "Actions refused because an account hit a limit or its number plan",
            ["limit"], registry=self.registry)
        self.limit_alerts = Counter("veche_account_limit_alerts", "Alerts: an account hit a limit repeatedly",
                                    ["limit"], registry=self.registry)
        self.http_latency = Histogram(
            "veche_http_request_duration_seconds", "Time to answer an HTTP request of the portal and API",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=self.registry)

        self.engine_active = Gauge(  # engine/services/leadership.py
            "veche_engine_active", "1 while this engine is the active one of its pair (an engine alone is always "
            "active), 0 once it lost the leader lease", ["engine"], registry=self.registry)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
