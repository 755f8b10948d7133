"""The placement rule (engine/domain/nodes.py): a conference goes whole to the node with the most
free capacity among the nodes that are up; none when it fits nowhere."""

from __future__ import annotations

from engine.domain.nodes import Node, NodeState, place


def node(node_id: str, *, capacity: int = 100, planned: int = 0, in_use: int = 0,
         state: NodeState = NodeState.UP) -> Node:
    return Node(node_id, f"ami://veche@{node_id}:5038", f"{node_id}:5060", capacity, state, None,
                conferences=1 if planned else 0, seats_planned=planned, in_use=in_use)


def test_the_node_with_most_free_capacity_wins() -> None:
    nodes = [node("ast1", planned=60), node("ast2", planned=20), node("ast3", capacity=50)]
    assert place(nodes, 10).node_id == "ast2"  # 80 free beats 50 and 40


def test_seats_in_use_beyond_the_plan_count() -> None:
    nodes = [node("ast1", planned=10, in_use=70), node("ast2", planned=40)]
    assert place(nodes, 10).node_id == "ast2"
    assert node("ast1", planned=10, in_use=70).load == 70


def test_draining_and_down_nodes_take_no_conference() -> None:
    nodes = [node("ast1", state=NodeState.DRAINING), node("ast2", state=NodeState.DOWN), node("ast3", planned=90)]
    assert place(nodes, 10).node_id == "ast3"
    assert place(nodes, 11) is None


def test_a_conference_is_never_split() -> None:
    nodes = [node("ast1", planned=60), node("ast2", planned=60)]
    assert place(nodes, 41) is None  # 80 seats free in all, 40 on each


def test_ties_go_to_the_lowest_id() -> None:
    assert place([node("ast2"), node("ast1")], 5).node_id == "ast1"
