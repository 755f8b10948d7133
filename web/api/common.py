"""What every API handler needs: the engine, the authenticated account, a service by name, and
JSON responses."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.domain.accounts import Account

# request key: the account the authentication middleware admitted (RequestKey needs aiohttp >= 3.12)
ACCOUNT = web.RequestKey("api_account", Account) if hasattr(web, "RequestKey") else "veche.api_account"


def account(request: web.Request) -> Account:
    return request[ACCOUNT]


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def no_content() -> web.Response:
    return web.Response(status=204)
