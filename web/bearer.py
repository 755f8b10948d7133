"""``Authorization: Bearer <token>``: the account an API token stands for (web/auth.py's
current_account asks here whenever the header is present; there is no fallback to the cookie)."""

from __future__ import annotations

from aiohttp import web

from engine.domain.accounts import Account
from engine.domain.errors import Unauthenticated
from web.context import services


async def bearer_account(request: web.Request) -> Account:
    """The token's account; Unauthenticated for a malformed, unknown or revoked token, Forbidden
    when the account is blocked."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("use Authorization: Bearer <token>")
    return await services(request).tokens.authenticate(token.strip())
