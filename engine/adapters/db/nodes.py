"""The nodes' SQL: each Asterisk node as the engine last saw it (the boot identity recovery
compares). Which conferences and participants are on a node is the conference aggregate's
(``ConferenceRepository.finished_rooms``, ``changed_recently``)."""

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
