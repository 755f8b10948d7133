"""Where the portal and the API find the engine's services: the application key the composition
root's container is stored under, and the one typed accessor handlers use
(``services(request).planning``). It imports nothing of web's views or API."""

from __future__ import annotations

from aiohttp import web

from engine.services.container import Services

SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    """The engine's services, from the portal's application or the API mounted in it."""
    return request.config_dict[SERVICES]
