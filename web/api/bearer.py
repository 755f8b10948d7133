"""``Authorization: Bearer <token>``: the account an API token stands for (web/auth.py's
current_account asks here whenever the header is present; there is no fallback to the cookie)."""

from __future__ import annotations

from aiohttp import web

from engine.domain.accounts import Account
from engine.domain.errors import Unauthenticated


async def bearer_account(request: web.Request) -> Account:
    """The token's account; Unauthenticated for a malformed, unknown or revoked token, Forbidden
    when the account is blocked."""
    from web.app import ENGINE_KEY

    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("use Authorization: Bearer <token>")
    return await request.config_dict[ENGINE_KEY].services["tokens"].authenticate(token.strip())
