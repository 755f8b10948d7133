"""Media nodes as the engine sees them, and the placement rule: a conference goes whole to the
node with the most free capacity among those that take new rooms."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# The extension a node's context veche-internode answers for a dial-in handed over by another node.
HANDOVER_EXTENSION = "join"


class NodeState(StrEnum):
    UP = "up"  # takes new rooms
    DRAINING = "draining"  # an operator's choice: running rooms finish, no new ones
    DOWN = "down"  # the engine lost its AMI link


@dataclass(frozen=True)
class Node:
    """One media node with its live load."""

    node_id: str
    ami_url: str
    sip_address: str
    capacity: int  # participants at most
    state: NodeState
    last_seen: datetime | None
    conferences: int  # running conferences on the node
    seats_planned: int  # the planned seats of those conferences (max participants each)
    in_use: int  # participants connected now

    @property
    def load(self) -> int:
        """Seats taken: each running conference holds its planned seats, or more while more are in it."""
        return max(self.seats_planned, self.in_use)

    @property
    def free(self) -> int:
        return self.capacity - self.load


def place(nodes: Iterable[Node], seats: int) -> Node | None:
    """The node a conference of ``seats`` participants starts on: of the nodes that are up and
    have ``seats`` free, the one with the most free capacity (ties: the lowest id); None when the
    conference fits no node (it is never split)."""
    fitting = [n for n in nodes if n.state is NodeState.UP and n.free >= seats]
    if not fitting:
        return None
    return min(fitting, key=lambda n: (-n.free, n.node_id))
