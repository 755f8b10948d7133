"""The operator's media-nodes page: every Asterisk node with its state, capacity, live load and
last-seen time, and a button to drain it (no new rooms) or let it take rooms again. Every
action goes through the node service (engine/services/nodes.py)."""

from __future__ import annotations

from aiohttp import web

from engine.domain.errors import Forbidden, NotFound
from web.context import services
from web.i18n import translate
from web.views.common import error_text, flash, render
from web.views.operator import _operator_id, operator_required

NODE_PATH = r"/operator/nodes/{node_id:[A-Za-z0-9_-]{1,40}}"


@operator_required
async def nodes_page(request: web.Request) -> web.StreamResponse:
    nodes = await services(request).nodes.list(await _operator_id(request))
    return await render(request, "operator/nodes.html", {"nodes": nodes})


async def _set_draining(request: web.Request, draining: bool) -> web.StreamResponse:
    target = request.app.router["operator_nodes"].url_for()
    node_id = request.match_info["node_id"]
    try:
        await services(request).nodes.set_draining(await _operator_id(request), node_id, draining)
    except (NotFound, Forbidden) as exc:
        await flash(request, await error_text(request, exc), "error")
        raise web.HTTPSeeOther(target) from None
    message = "Node %(node)s is draining: no new conferences start there" if draining \
        else "Node %(node)s takes new conferences again"
    await flash(request, await translate(request, message, node=node_id))
    raise web.HTTPSeeOther(target)


@operator_required
async def drain(request: web.Request) -> web.StreamResponse:
    return await _set_draining(request, True)


@operator_required
async def resume(request: web.Request) -> web.StreamResponse:
    return await _set_draining(request, False)


def setup_node_routes(app: web.Application) -> None:
    app.router.add_get("/operator/nodes", nodes_page, name="operator_nodes")
    app.router.add_post(NODE_PATH + "/drain", drain, name="operator_node_drain")
    app.router.add_post(NODE_PATH + "/resume", resume, name="operator_node_resume")
