"""The operator's Outbox page: the messages the local mail sink kept (run/mail/). A message's HTML
is shown only inside a sandboxed frame served with a sandbox CSP, never in the portal's origin."""

from __future__ import annotations

from aiohttp import web

from web.context import services
from web.views.common import render
from web.views.operator import operator_required

NAME = r"{message:[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-f]{8}\.eml}"
# The message's HTML runs in a unique opaque origin: no scripts, no forms, nothing fetched.
HTML_POLICY = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
               "form-action 'none'; base-uri 'none'; frame-ancestors 'self'")


@operator_required
async def outbox(request: web.Request) -> web.StreamResponse:
    box = services(request).outbox
    return await render(request, "operator/outbox.html", {
        "messages": await box.messages(), "sink_enabled": box.enabled})


@operator_required
async def outbox_message(request: web.Request) -> web.StreamResponse:
    message = await services(request).outbox.message(request.match_info["message"])
    return await render(request, "operator/outbox_message.html", {"message": message})


@operator_required
async def outbox_html(request: web.Request) -> web.StreamResponse:
    message = await services(request).outbox.message(request.match_info["message"])
    return web.Response(text=message.html, content_type="text/html", headers={
        "Content-Security-Policy": HTML_POLICY, "X-Frame-Options": "SAMEORIGIN"})


@operator_required
async def outbox_raw(request: web.Request) -> web.StreamResponse:
    message = await services(request).outbox.message(request.match_info["message"])
    if request.match_info["part"] == "invite.ics":
        return web.Response(text=message.calendar, content_type="text/plain",
                            headers={"Content-Disposition": 'attachment; filename="invite.ics"'})
    raise web.HTTPNotFound()


def setup_outbox_routes(app: web.Application) -> None:
    add = app.router
    add.add_get("/operator/outbox", outbox, name="operator_outbox")
    add.add_get("/operator/outbox/" + NAME, outbox_message, name="operator_outbox_message")
    add.add_get("/operator/outbox/" + NAME + "/body.html", outbox_html, name="operator_outbox_html")
    add.add_get("/operator/outbox/" + NAME + "/{part:invite\\.ics}", outbox_raw, name="operator_outbox_part")
