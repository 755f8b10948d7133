"""OpenAPI description of the operator's media-node endpoints (merged into web/api/openapi.py)."""

from __future__ import annotations

from typing import Any

from engine.domain.nodes import NodeState
from web.api import spec_parts as spec

NODE_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$", "examples": ["ast1"]}


def node_schemas() -> dict[str, Any]:
    node = spec._obj({
        "node_id": {"type": "string"}, "ami_url": {"type": "string", "description": "the AMI link, no secret"},
        "sip_address": {"type": "string"}, "capacity": {"type": "integer", "description": "participants at most"},
        "state": {"type": "string", "enum": [s.value for s in NodeState],
                  "description": "up: takes new rooms; draining: running rooms finish, no new ones; "
                                 "down: the engine lost its AMI link"},
        "last_seen": spec.NULL_DATETIME, "conferences": {"type": "integer", "description": "running conferences"},
        "seats_planned": {"type": "integer"}, "in_use": {"type": "integer", "description": "participants connected"},
        "load": {"type": "integer", "description": "seats taken: planned seats, or more while more are in"},
        "free": {"type": "integer"},
    }, ("node_id", "state", "capacity", "in_use", "load", "free"), closed=False)
    return {"MediaNode": node,
            "MediaNodeList": spec._obj({"nodes": {"type": "array", "items": spec._ref("MediaNode")}}, ("nodes",),
                                       closed=False)}


def node_paths() -> dict[str, Any]:
    item = [{"name": "node", "in": "path", "required": True, "description": "the node's id", "schema": NODE_ID}]
    return {
        "/operator/nodes": {
            "get": spec._op("operator_list_nodes", "Every media node with its state, last-seen time and live load",
                            {"200": spec._json("MediaNodeList", "nodes")}, tag="operator", errors=("401", "403")),
        },
        "/operator/nodes/{node}/drain": {
            "post": spec._op("operator_drain_node", "Drain a node: its running conferences finish, no new ones "
                             "start there", {"200": spec._json("MediaNode", "the node")}, tag="operator",
                             params=item),
        },
        "/operator/nodes/{node}/resume": {
            "post": spec._op("operator_resume_node", "Let a drained node take new conferences again",
                             {"200": spec._json("MediaNode", "the node")}, tag="operator", params=item),
        },
    }
