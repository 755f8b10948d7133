"""What every API handler needs: the engine, the authenticated account, a service by name, and
JSON responses."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.app import Engine
from engine.domain.accounts import Account

# request key: the account the authentication middleware admitted (RequestKey needs aiohttp >= 3.12)
ACCOUNT = web.RequestKey("api_account", Account) if hasattr(web, "RequestKey") else "veche.api_account"


def engine(request: web.Request) -> Engine:
    from web.app import ENGINE_KEY

    return request.config_dict[ENGINE_KEY]


def account(request: web.Request) -> Account:
    return request[ACCOUNT]


def service(request: web.Request, name: str) -> Any:
    """``engine.services[name]``, or 503 when this engine runs without it."""
    found = engine(request).services.get(name)
    if found is None:
        raise web.HTTPServiceUnavailable(reason=f"the {name} service is not available")
    return found


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def no_content() -> web.Response:
    return web.Response(status=204)
