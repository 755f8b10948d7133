"""Help: how to dial in and what each planning setting does."""

from __future__ import annotations

from aiohttp import web

from web.auth import current_account
from web.views.common import render


async def help_page(request: web.Request) -> web.StreamResponse:
    await current_account(request)
    return await render(request, "help.html", {})


async def index(request: web.Request) -> web.StreamResponse:
    if await current_account(request) is None:
        raise web.HTTPSeeOther("/login")
    raise web.HTTPSeeOther("/planning")
