"""The media nodes: their rows kept true (configured at start, seen by a heartbeat over each
node's AMI link), the list with live load for the operator, draining a node, and placing a
starting conference on the node the placement rule picks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Protocol

from engine.adapters.db.conferences import ConferenceRepository
from engine.adapters.db.nodes import NodeRepository
from engine.adapters.db.operator import OperatorRepository
from engine.config import NodeSpec
from engine.domain.errors import Forbidden, NotFound
from engine.domain.model import Conference
from engine.domain.nodes import Node, place
from engine.services.audit import AuditLog

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0  # how often each node's state and last-seen time are stored
DOWN_AFTER_SECONDS = 5.0  # a node whose AMI link stays lost this long has failed: its rooms move
NO_NODE = "node_capacity"  # the end reason and alert kind of a conference no node had room for


class NodeLink(Protocol):
    """What the heartbeat asks of a node's AMI link."""

    @property
    def connected(self) -> bool: ...


class Alerts(Protocol):
    """Where an operator alert goes (engine.services.operator.LimitGuard shows it on the dashboard)."""

    def alert(self, account_id: int, limit: str, detail: str, hits: int = 1) -> None: ...


class Placement(Protocol):
    """What starting a conference asks of the media nodes (NodeService provides it)."""

    async def fits(self, seats: int) -> bool: ...

    async def place(self, conference: Conference) -> str | None: ...

    def no_node_alert(self, conference: Conference) -> None: ...


class Failover(Protocol):
    """What is done when a node fails (engine.services.failover.NodeFailover)."""

    async def node_failed(self, node_id: str) -> list[int]: ...


class NodeService:
    """See the module docstring; draining and resuming go to the audit log."""

    def __init__(self, repo: NodeRepository, conferences: ConferenceRepository, accounts: OperatorRepository,
                 audit: AuditLog, *,
                 specs: tuple[NodeSpec, ...], links: Mapping[str, NodeLink], alerts: Alerts,
                 failover: Failover | None = None, down_after: float = DOWN_AFTER_SECONDS) -> None:
        self.repo = repo
        self.conferences = conferences
        self.failover = failover
        self.down_after = down_after
        self._lost_since: dict[str, float] = {}  # node id -> when its AMI link was first seen lost
        self._failed: set[str] = set()  # nodes whose conferences were moved during this outage
        self._moving: set[asyncio.Task[list[int]]] = set()
        self.accounts = accounts
        self.audit = audit
        self.alerts = alerts
        self.specs = specs
        self.links = links
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def node_ids(self) -> list[str]:
        return [spec.node_id for spec in self.specs]

    async def start(self) -> None:
        """Store the configured nodes, then keep their state and last-seen time."""
        await self.repo.register([(s.node_id, s.ami_url, s.sip_address, s.capacity) for s in self.specs])
        await self.beat()
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="node-heartbeat")

    async def stop(self) -> None:
        for task in list(self._moving):
            task.cancel()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    async def beat(self) -> None:
        """Store each node's state; with several nodes, one silent for ``down_after`` seconds has
        failed: its running conferences move to other nodes (once per outage)."""
        now = time.monotonic()
        for node_id in self.node_ids:
            link = self.links.get(node_id)
            reachable = link is not None and link.connected
            await self.repo.mark_seen(node_id, reachable)
            if reachable:
                self._lost_since.pop(node_id, None)
                self._failed.discard(node_id)
                continue
            lost_since = self._lost_since.setdefault(node_id, now)
            if now - lost_since >= self.down_after and node_id not in self._failed \
                    and self.failover and len(self.specs) > 1:
                self._failed.add(node_id)
                log.warning("node %s silent for %.0f s: it has failed", node_id, now - lost_since)
                task = asyncio.create_task(self.failover.node_failed(node_id), name=f"failover-{node_id}")
                self._moving.add(task)
                task.add_done_callback(self._moving.discard)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)  # a period, not a wait for an event
            try:
                await self.beat()
            except Exception:  # noqa: BLE001 - the next beat tries again
                log.exception("node heartbeat failed")

    async def placement(self, seats: int) -> Node | None:
        """The node the placement rule (engine.domain.nodes.place) picks now for ``seats`` participants."""
        return place(await self.repo.list(self.node_ids), seats)

    async def fits(self, seats: int) -> bool:
        """Whether a conference of ``seats`` participants fits a node now."""
        return await self.placement(seats) is not None

    async def place(self, conference: Conference) -> str | None:
        """Put a conference that is about to start (or takes its first early caller) on the node
        with the most free capacity for its planned seats, with all its participants; a
        conference already running or with someone in a call stays where it is. The node id,
        None when it fits no node."""
        node_id, moved = await self.conferences.place(conference.id, self.node_ids,
                                               lambda nodes: place(nodes, conference.max_participants))
        if moved:
            log.info("conference %s (%d seats) placed on node %s", conference.id, conference.max_participants,
                     node_id)
        return node_id

    def no_node_alert(self, conference: Conference) -> None:
        """Tell the operator that a scheduled conference could not start: no node had its seats free."""
        log.warning("conference %s not started: no media node has %d seats free", conference.id,
                    conference.max_participants)
        self.alerts.alert(conference.owner_id, NO_NODE,
                          f"conference {conference.id}: {conference.max_participants} seats, no node free")

    # ----------------------------------------------------------------- the operator's view

    async def _operator(self, operator_id: int) -> None:
        account = await self.accounts.get_account(operator_id)
        if account is None or account["role"] != "operator" or account["blocked"]:
            raise Forbidden("only an operator may do this")

    async def list(self, operator_id: int) -> list[Node]:
        """Every configured node with its state, last-seen time and live load."""
        await self._operator(operator_id)
        return await self.repo.list(self.node_ids)

    async def set_draining(self, operator_id: int, node_id: str, draining: bool) -> Node:
        """Drain a node (its running rooms finish, no new ones start there) or let it take rooms again."""
        await self._operator(operator_id)
        if node_id not in self.node_ids:
            raise NotFound("no such node")
        await self.repo.set_draining(node_id, draining)
        await self.audit.record("node.drained" if draining else "node.resumed", actor=f"operator:{operator_id}",
                                actor_id=operator_id, detail={"node_id": node_id})
        if not draining:
            await self.beat()  # an unreachable node shows as down at once
        (node,) = await self.repo.list([node_id])
        return node
