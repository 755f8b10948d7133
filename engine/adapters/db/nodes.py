"""SQL of the Asterisk nodes as the engine last saw them (the boot identity recovery compares)."""

from __future__ import annotations

import asyncpg


class NodeRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def swap_boot(self, node_id: str, boot: str) -> str | None:
        """Store ``boot`` as the node's current boot and return the one stored before (None the
        first time the node is seen)."""
        async with self.pool.acquire() as conn, conn.transaction():
            previous = await conn.fetchval(
                "SELECT boot FROM asterisk_nodes WHERE node_id = $1 FOR UPDATE", node_id)
            await conn.execute(
                "INSERT INTO asterisk_nodes (node_id, boot) VALUES ($1, $2) ON CONFLICT (node_id) "
                "DO UPDATE SET boot = EXCLUDED.boot, seen_at = now()", node_id, boot)
        return previous

    async def finished_rooms(self, node_id: str, rooms: list[str]) -> list[tuple[int, str]]:
        """(conference id, room) of the node's conferences that are over but whose room is in ``rooms``."""
        rows = await self.pool.fetch(
            "SELECT id, room FROM conferences WHERE node_id = $1 AND room = ANY($2::text[]) "
            "AND state IN ('ended', 'cancelled', 'failed')", node_id, rooms)
        return [(r["id"], r["room"]) for r in rows]

    async def changed_recently(self, participant_ids: list[int], seconds: float) -> set[int]:
        """Those of the participants whose row changed during the last ``seconds``."""
        rows = await self.pool.fetch(
            "SELECT id FROM participants WHERE id = ANY($1::bigint[]) "
            "AND updated_at > now() - make_interval(secs => $2)", participant_ids, float(seconds))
        return {r["id"] for r in rows}
