"""Cross-cutting web protections: security headers on every response and the CSRF check on
every state-changing request made with the portal's session cookie."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp_session import get_session

from web.sessions import COOKIE_NAME

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _add_headers(exc, request)
        raise
    _add_headers(response, request)
    return response


def _add_headers(response: web.StreamResponse, request: web.Request) -> None:
    if response.prepared:  # streamed responses (SSE) set their headers before the first byte
        return
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token, created on first use (for forms and the X-CSRF-Token header)."""
    session = await get_session(request)
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def csrf_valid(request: web.Request) -> bool:
    """True when the request carries the session's CSRF token in the header or the form."""
    session = await get_session(request)
    expected = session.get("csrf")
    if not expected:
        return False
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return bool(given) and secrets.compare_digest(given, expected)


@web.middleware
async def csrf_protection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Portal forms always need the token. API writes need it only when they ride on the session
    cookie (a bearer token is not sent by the browser on its own, so it needs no CSRF check)."""
    if request.method not in SAFE_METHODS:
        is_api = request.path.startswith("/api/")
        cookie_authenticated = COOKIE_NAME in request.cookies and "Authorization" not in request.headers
        if (not is_api or cookie_authenticated) and not await csrf_valid(request):
            if is_api or request.headers.get("Accept", "").startswith("application/json"):
                return web.json_response(
                    {"error": {"code": "csrf", "message": "Missing or wrong CSRF token"}}, status=403)
            raise web.HTTPForbidden(reason="CSRF token missing or wrong")
    return await handler(request)
