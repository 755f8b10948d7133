"""SQL of the pictures: talking spans, sampled network numbers per participant and the
system's load over time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg


class PicturesRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ----------------------------------------------------------------- talking

    async def talk_started(self, conference_id: int, participant_id: int, at: datetime) -> None:
        """Open a talking span, unless the participant has one open already."""
        await self.pool.execute(
            "INSERT INTO talk_spans (conference_id, participant_id, started_at) "
            "SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM participants WHERE id = $2 AND conference_id = $1) "
            "ON CONFLICT (participant_id) WHERE ended_at IS NULL DO NOTHING",
            conference_id, participant_id, at)

    async def open_spans(self) -> dict[int, int]:
        """The participants with a talking span open, each with its conference."""
        rows = await self.pool.fetch("SELECT participant_id, conference_id FROM talk_spans WHERE ended_at IS NULL")
        return {row["participant_id"]: row["conference_id"] for row in rows}

    async def talks_stopped(self, stops: Mapping[int, datetime]) -> None:
        """Close the open span of each participant at its time, in one statement (bound as
        text[], whose codec asyncpg has without asking)."""
        ids = list(stops)
        await self.pool.execute(
            "UPDATE talk_spans t SET ended_at = greatest(t.started_at, s.at::timestamptz) "
            "FROM unnest($1::text[], $2::text[]) AS s(participant_id, at) "
            "WHERE t.participant_id = s.participant_id::bigint AND t.ended_at IS NULL",
            [str(i) for i in ids], [stops[i].isoformat() for i in ids])

    async def close_talks(self, conference_id: int, at: datetime) -> None:
        """Close every open span of a conference (it ended)."""
        await self.pool.execute(
            "UPDATE talk_spans SET ended_at = greatest(started_at, $2) "
            "WHERE conference_id = $1 AND ended_at IS NULL", conference_id, at)

    async def talk_spans(self, conference_id: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT participant_id, started_at, ended_at FROM talk_spans WHERE conference_id = $1 "
            "ORDER BY started_at, id", conference_id)
        return [dict(r) for r in rows]

    # ----------------------------------------------------------------- network quality

    async def running_conference_ids(self) -> list[int]:
        return [r["id"] for r in await self.pool.fetch(
            "SELECT id FROM conferences WHERE state = 'running' ORDER BY id")]

    async def add_quality_samples(self, conference_id: int, at: datetime,
                                  rows: list[tuple[int, float, float, float | None, float | None]]) -> None:
        """``rows``: (participant_id, jitter_ms, loss_percent, rtt_ms, mos)."""
        if not rows:
            return
        await self.pool.executemany(
            "INSERT INTO quality_samples (conference_id, participant_id, at, jitter_ms, loss_percent, rtt_ms, mos) "
            "SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS "
            "(SELECT 1 FROM participants WHERE id = $2 AND conference_id = $1)",
            [(conference_id, pid, at, jitter, loss, rtt, mos) for pid, jitter, loss, rtt, mos in rows])

    async def quality_samples(self, conference_id: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT participant_id, at, jitter_ms, loss_percent, rtt_ms, mos FROM quality_samples "
            "WHERE conference_id = $1 ORDER BY at, id", conference_id)
        return [dict(r) for r in rows]

    # ----------------------------------------------------------------- load

    async def add_load_sample(self, at: datetime) -> dict[str, Any]:
        """Count running conferences, calls (dialling or connected) and connected participants
        now and keep the counts at ``at``."""
        row = await self.pool.fetchrow(
            "INSERT INTO load_samples (at, conferences, calls, participants) "
            "SELECT $1, (SELECT count(*) FROM conferences WHERE state = 'running'), "
            "count(*) FILTER (WHERE p.state IN ('calling', 'ringing', 'connected')), "
            "count(*) FILTER (WHERE p.state = 'connected') "
            "FROM participants p JOIN conferences c ON c.id = p.conference_id AND c.state = 'running' "
            "ON CONFLICT (at) DO UPDATE SET conferences = EXCLUDED.conferences, calls = EXCLUDED.calls, "
            "participants = EXCLUDED.participants "
            "RETURNING at, conferences, calls, participants", at)
        return dict(row)

    async def load_samples(self, since: datetime) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT at, conferences, calls, participants FROM load_samples WHERE at >= $1 ORDER BY at", since)
        return [dict(r) for r in rows]

    async def purge_samples(self, before: datetime) -> int:
        """Delete load and network samples taken before ``before``; how many."""
        async with self.pool.acquire() as conn, conn.transaction():
            load = await conn.execute("DELETE FROM load_samples WHERE at < $1", before)
            network = await conn.execute("DELETE FROM quality_samples WHERE at < $1", before)
        return int(load.split()[-1]) + int(network.split()[-1])
