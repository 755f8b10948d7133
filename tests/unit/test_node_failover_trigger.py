"""When a node counts as failed (engine/services/nodes.py: NodeService.beat) and which node an
AGI call says it is on (engine/agi.py: AgiCall.node_id)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from engine.agi import AgiCall
from engine.config import Settings
from engine.services.nodes import NodeService


@dataclass
class Link:
    connected: bool = True


@dataclass
class NodeRows:
    seen: list[tuple[str, bool]] = field(default_factory=list)

    async def mark_seen(self, node_id: str, reachable: bool) -> None:
        self.seen.append((node_id, reachable))


@dataclass
class Failover:
    failed: list[str] = field(default_factory=list)

    async def node_failed(self, node_id: str) -> list[int]:
        self.failed.append(node_id)
        return []


def service(links: dict[str, Link], failover: Failover, nodes: int = 2, down_after: float = 0.0) -> NodeService:
    specs = Settings(node_count=nodes).media_nodes
    return NodeService(NodeRows(), None, None, None, specs=specs, links=links, alerts=None,  # type: ignore[arg-type]
                       failover=failover, down_after=down_after)


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_silent_node_fails_once_per_outage() -> None:
    links, failover = {"ast1": Link(), "ast2": Link(connected=False)}, Failover()
    nodes = service(links, failover)
    await nodes.beat()
    await nodes.beat()
    await settle()
    assert failover.failed == ["ast2"]
    assert nodes.repo.seen[-2:] == [("ast1", True), ("ast2", False)]
    links["ast2"].connected = True
    await nodes.beat()
    links["ast2"].connected = False
    await nodes.beat()
    await settle()
    assert failover.failed == ["ast2", "ast2"]  # a new outage after the node came back


async def test_a_short_outage_or_a_single_node_moves_nothing() -> None:
    failover = Failover()
    brief = service({"ast1": Link(), "ast2": Link(connected=False)}, failover, down_after=60.0)
    await brief.beat()
    single = service({"ast1": Link(connected=False)}, failover, nodes=1)
    await single.beat()
    await settle()
    assert failover.failed == []


def test_the_agi_call_names_its_node_from_the_script_query() -> None:
    def call(script: str) -> AgiCall:
        return AgiCall(None, None, {"agi_network_script": script})  # type: ignore[arg-type]

    assert call("dialin?node=ast2").node_id == "ast2"
    assert call("keypad?node=ast1&x=1").node_id == "ast1"
    assert call("dialin").node_id is None
    assert call("dialin?node=ast2%0Aevil").node_id is None
