"""HTTP side of observability: GET /metrics (Prometheus), GET /healthz, and a middleware that
times every request of the portal and API into the engine's metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.metrics import CONTENT_TYPE_LATEST
from engine.services.metrics import MetricsService

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS_SERVICE_KEY = web.AppKey("metrics_service", MetricsService)


def _service(app: web.Application) -> MetricsService | None:
    return app.get(METRICS_SERVICE_KEY)


def _route_name(request: web.Request) -> str:
    """The route's template (/conferences/{id}), never the raw path, so labels stay few."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def http_latency(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        service = _service(request.app)
        if service is not None:
            service.observe_http(request.method, _route_name(request), status, time.perf_counter() - started)


async def metrics(request: web.Request) -> web.Response:
    service = _service(request.app)
    if service is None:
        raise web.HTTPNotFound(text="metrics are not enabled")
    body = await service.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health_response(service: MetricsService) -> web.Response:
    """200 when PostgreSQL, every AMI link and FastAGI are up, else 503; each reported separately."""
    report = await service.health()
    return web.json_response(report, status=200 if report["healthy"] else 503)


def setup_metrics(app: web.Application, service: MetricsService) -> None:
    """Add /metrics and the request timer to the portal."""
    app[METRICS_SERVICE_KEY] = service
    app.middlewares.insert(0, http_latency)  # outermost: times error pages and redirects too
    app.router.add_get("/metrics", metrics, name="metrics")
