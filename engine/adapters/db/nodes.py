"""SQL of the Asterisk media nodes: as configured, as last seen (state, the boot identity
recovery compares) and with their live load. Which conferences and participants are on a node is
the conference aggregate's (``ConferenceRepository.finished_rooms``, ``changed_recently``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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

    async def place(self, conference_id: int, node_ids: Sequence[str],
                    choose: Callable[[list[Node]], Node | None]) -> tuple[str | None, bool]:
        """Put a scheduled conference with nobody in a call yet on the node ``choose`` picks from
        these nodes with their live load, it and all its participants; one placement at a time
        (a transaction-scoped advisory lock), so two starts never both take the last seats.
        Returns (node id, moved): the chosen node, or the node it stays on when it is no longer
        scheduled or someone is in a call (already placed); (None, False) when nothing fits."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('veche.placement'))")
            row = await conn.fetchrow(
                "SELECT c.node_id, c.state = 'scheduled' AND NOT EXISTS (SELECT 1 FROM participants p "
                "  WHERE p.conference_id = c.id AND p.state IN ('calling', 'ringing', 'connected')) AS open "
                "FROM conferences c WHERE c.id = $1 FOR NO KEY UPDATE", conference_id)
            if row is None or not row["open"]:
                return (row["node_id"] if row else None), False
            rows = await conn.fetch(
                f"SELECT {NODE_COLUMNS} FROM asterisk_nodes n {NODE_LOAD} "
                "WHERE n.node_id = ANY($1::text[]) ORDER BY n.node_id", list(node_ids))
            node = choose([node_from_row(r) for r in rows])
            if node is None:
                return None, False
            await conn.execute("UPDATE conferences SET node_id = $2 WHERE id = $1", conference_id, node.node_id)
            await conn.execute("UPDATE participants SET node_id = $2 WHERE conference_id = $1",
                               conference_id, node.node_id)
            return node.node_id, True

    async def rehome(self, conference_id: int, dead: str, node_ids: Sequence[str],
                     choose: Callable[[list[Node]], Node | None]) -> str | None:
        """Move a running conference off the failed node ``dead`` to the node ``choose`` picks, it
        and all its participants, under the placement lock; None when it is no longer running
        there or nothing fits."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('veche.placement'))")
            on_dead = await conn.fetchval(
                "SELECT true FROM conferences WHERE id = $1 AND node_id = $2 AND state = 'running' "
                "FOR NO KEY UPDATE", conference_id, dead)
            if not on_dead:
                return None
            rows = await conn.fetch(
                f"SELECT {NODE_COLUMNS} FROM asterisk_nodes n {NODE_LOAD} "
                "WHERE n.node_id = ANY($1::text[]) AND n.node_id <> $2 ORDER BY n.node_id", list(node_ids), dead)
            node = choose([node_from_row(r) for r in rows])
            if node is None:
                return None
            await conn.execute("UPDATE conferences SET node_id = $2 WHERE id = $1", conference_id, node.node_id)
            await conn.execute("UPDATE participants SET node_id = $2 WHERE conference_id = $1",
                               conference_id, node.node_id)
            return node.node_id

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
