"""aiohttp application factory: ``init_app(engine)`` wires routes to the engine's services."""

from __future__ import annotations

from aiohttp import web

from engine.app import Engine

ENGINE_KEY = web.AppKey("engine", Engine)


async def healthz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    checks = {
        "postgres": engine.pool is not None and not engine.pool.is_closing(),
        "ami": bool(engine.nodes) and all(a.connected for a in engine.nodes.values()),
        "fastagi": engine.agi is not None and engine.agi.listening,
    }
    if checks["postgres"]:
        try:
            await engine.pool.fetchval("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure means unhealthy
            checks["postgres"] = False
    healthy = all(checks.values())
    return web.json_response({"healthy": healthy, "checks": checks}, status=200 if healthy else 503)


async def index(request: web.Request) -> web.Response:
    return web.Response(text="Veche", content_type="text/plain")


def init_app(engine: Engine) -> web.Application:
    app = web.Application()
    app[ENGINE_KEY] = engine
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    return app
