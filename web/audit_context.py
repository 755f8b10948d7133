"""Tells the audit log where each request comes from: every portal and API request runs inside
engine.services.audit.acting(address=...), so entries recorded deep in a service carry it."""

from __future__ import annotations

from aiohttp import web

from engine.services.audit import acting
from web.security import Handler, client_address


@web.middleware
async def audit_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    with acting(address=client_address(request)):
        return await handler(request)
