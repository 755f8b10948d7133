"""API handlers of the operator's media nodes (/api/v1/operator/nodes): the list with live load,
drain and resume. Each parses, calls the node service (which refuses anybody who is not an
operator), renders."""

from __future__ import annotations

import re

from aiohttp import web

from engine.domain.errors import NotFound
from engine.domain.nodes import Node
from web.api import render
from web.api.common import account, ok
from web.api.nodes_spec import NODE_ID
from web.context import services

NODE_ITEM = "/operator/nodes/{node}"


def node_json(node: Node) -> dict[str, object]:
    return {**render.plain(node), "load": node.load, "free": node.free}


def _node_id(request: web.Request) -> str:
    node_id = request.match_info["node"]
    if not re.fullmatch(NODE_ID["pattern"], node_id):
        raise NotFound("no such node")
    return node_id


async def list_nodes(request: web.Request) -> web.Response:
    nodes = await services(request).nodes.list(account(request).id)
    return ok({"nodes": [node_json(n) for n in nodes]})


async def drain_node(request: web.Request) -> web.Response:
    node = await services(request).nodes.set_draining(account(request).id, _node_id(request), True)
    return ok(node_json(node))


async def resume_node(request: web.Request) -> web.Response:
    node = await services(request).nodes.set_draining(account(request).id, _node_id(request), False)
    return ok(node_json(node))


# (method, path under /api/v1, handler): registered by web/api/__init__.py with the other routes.
ROUTES = (
    ("GET", "/operator/nodes", list_nodes),
    ("POST", NODE_ITEM + "/drain", drain_node),
    ("POST", NODE_ITEM + "/resume", resume_node),
)
