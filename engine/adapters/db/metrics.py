"""Read-only SQL behind the metrics and /healthz: counts of running conferences, connected
participants, due conferences, the mail queue and refused dial-ins, taken at scrape time."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg


@dataclass
class DatabaseCounts:
    conferences_running: dict[str, int] = field(default_factory=dict)  # per node
    participants_connected: dict[str, int] = field(default_factory=dict)  # per node
    scheduler_lag_seconds: float = 0.0
    mail_queue: dict[str, int] = field(default_factory=dict)  # per status
    dialin_failures: dict[str, int] = field(default_factory=dict)  # per kind


class MetricsRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ping(self) -> None:
        """Raise when PostgreSQL does not answer a trivial query."""
        async with self.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1", timeout=2)

    async def counts(self) -> DatabaseCounts:
        counts = DatabaseCounts()
        async with self.pool.acquire(timeout=5) as conn:
            # tables of other parts may not exist yet on an older schema; count what is there
            present = await conn.fetchrow(
                "SELECT to_regclass('mail_outbox') IS NOT NULL AS mail, "
                "to_regclass('dialin_failures') IS NOT NULL AS dialin")
            for row in await conn.fetch(
                    "SELECT node_id, count(*) AS n FROM conferences WHERE state = 'running' GROUP BY node_id"):
                counts.conferences_running[row["node_id"]] = row["n"]
            for row in await conn.fetch(
                    "SELECT coalesce(p.node_id, c.node_id) AS node_id, count(*) AS n FROM participants p "
                    "JOIN conferences c ON c.id = p.conference_id "
                    "WHERE p.state = 'connected' AND c.state = 'running' GROUP BY 1"):
                counts.participants_connected[row["node_id"]] = row["n"]
            lag = await conn.fetchval(
                "SELECT extract(epoch FROM now() - min(starts_at)) FROM conferences "
                "WHERE state = 'scheduled' AND starts_at <= now()")
            counts.scheduler_lag_seconds = max(0.0, float(lag or 0.0))
            if present["mail"]:
                for row in await conn.fetch(
                        "SELECT status, count(*) AS n FROM mail_outbox "
                        "WHERE status IN ('queued', 'retrying', 'sending') GROUP BY status"):
                    counts.mail_queue[row["status"]] = row["n"]
            if present["dialin"]:
                for row in await conn.fetch("SELECT kind, count(*) AS n FROM dialin_failures GROUP BY kind"):
                    counts.dialin_failures[row["kind"]] = row["n"]
        return counts

    async def start_delay_seconds(self, conference_id: int) -> float | None:
        """Seconds between a conference's planned and actual start (None if it has not started)."""
        delay = await self.pool.fetchval(
            "SELECT extract(epoch FROM started_at - starts_at) FROM conferences "
            "WHERE id = $1 AND started_at IS NOT NULL", conference_id)
        return None if delay is None else max(0.0, float(delay))
