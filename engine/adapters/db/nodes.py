"""SQL of the Asterisk media nodes: as configured, as last seen (state, the boot identity
recovery compares) and with their live load. Which conferences and participants are on a node is
the conference aggregate's (``ConferenceRepository.finished_rooms``, ``changed_recently``, and
``place``/``rehome``, which put a conference on a node by this module's load figures)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from engine.domain.nodes import Node, NodeState

NODE_COLUMNS = """n.node_id, n.ami_url, n.sip_address, n.capacity, n.state, n.seen_at,
    coalesce(l.conferences, 0) AS conferences, coalesce(l.seats_planned, 0) AS seats_planned,
    coalesce(l.in_use, 0) AS in_use"""
NODE_LOAD = """LEFT JOIN (
    SELECT c.node_id, count(*) AS conferences, sum(c.max_participants) AS seats_planned,
           sum((SELECT count(*) FROM participants p WHERE p.conference_id = c.id AND p.state = 'connected'))
               AS in_use
    FROM conferences c WHERE c.state = 'running' GROUP BY c.node_id) l ON l.node_id = n.node_id"""


def node_from_row(row: asyncpg.Record) -> Node:
    return Node(node_id=row["node_id"], ami_url=row["ami_url"], sip_address=row["sip_address"],
                capacity=row["capacity"], state=NodeState(row["state"]), last_seen=row["seen_at"],
                conferences=int(row["conferences"]), seats_planned=int(row["seats_planned"]),
                in_use=int(row["in_use"]))


class NodeRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def register(self, nodes: Sequence[tuple[str, str, str, int]]) -> None:
        """Store the configured nodes (id, AMI URL, SIP address, capacity); a node's state and
        boot stay as they are."""
        await self.pool.executemany(
            "INSERT INTO asterisk_nodes (node_id, ami_url, sip_address, capacity) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (node_id) DO UPDATE SET ami_url = EXCLUDED.ami_url, "
            "sip_address = EXCLUDED.sip_address, capacity = EXCLUDED.capacity", nodes)

    async def mark_seen(self, node_id: str, reachable: bool) -> None:
        """A reachable node is up and seen now, an unreachable one down; a draining node stays draining."""
        await self.pool.execute(
            "UPDATE asterisk_nodes SET seen_at = CASE WHEN $2 THEN now() ELSE seen_at END, "
            "state = CASE WHEN state = 'draining' THEN state WHEN $2 THEN 'up' ELSE 'down' END "
            "WHERE node_id = $1", node_id, reachable)

    async def set_draining(self, node_id: str, draining: bool) -> None:
        """Drain a node (no new rooms), or let it take rooms again (up; the next heartbeat marks
        an unreachable one down)."""
        await self.pool.execute("UPDATE asterisk_nodes SET state = $2 WHERE node_id = $1", node_id,
                                NodeState.DRAINING if draining else NodeState.UP)

    async def list(self, node_ids: Sequence[str]) -> list[Node]:
        """These nodes with their live load, by id."""
        rows = await self.pool.fetch(
            f"SELECT {NODE_COLUMNS} FROM asterisk_nodes n {NODE_LOAD} "
            "WHERE n.node_id = ANY($1::text[]) ORDER BY n.node_id", list(node_ids))
        return [node_from_row(r) for r in rows]

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
