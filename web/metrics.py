"""HTTP side of observability: GET /metrics (Prometheus) on a listener of its own
(VECHE_METRICS_HOST/PORT, loopback by default, optionally behind VECHE_METRICS_TOKEN), never on
the web port; GET /healthz; and a middleware that times every request of the portal and API."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.domain.errors import VecheError
from engine.metrics import CONTENT_TYPE_LATEST
from engine.services.metrics import MetricsService
from web.context import SERVICES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS_SERVICE_KEY = web.AppKey("metrics_service", MetricsService)
METRICS_TOKEN_KEY = web.AppKey("metrics_token", str)
METRICS_RUNNER_KEY = web.AppKey("metrics_runner", web.AppRunner)
log = logging.getLogger(__name__)


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
    expected = request.app.get(METRICS_TOKEN_KEY, "")
    if expected:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected.encode()):
            raise web.HTTPUnauthorized(text="send Authorization: Bearer <VECHE_METRICS_TOKEN>",
                                       headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    service = _service(request.app)
    if service is None:
        raise web.HTTPNotFound(text="metrics are not enabled")
    body = await service.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health_response(service: MetricsService) -> web.Response:
    """200 when PostgreSQL, every AMI link and FastAGI are up, else 503; each reported separately."""
    report = await service.health()
    return web.json_response(report, status=200 if report["healthy"] else 503)


def metrics_app(service: MetricsService, token: str = "") -> web.Application:
    """The Prometheus listener's application: only GET /metrics."""
    app = web.Application()
    app[METRICS_SERVICE_KEY] = service
    app[METRICS_TOKEN_KEY] = token
    app.router.add_get("/metrics", metrics, name="metrics")
    return app


async def start_metrics_listener(app: web.Application) -> None:
    """on_startup of the portal: serve /metrics on VECHE_METRICS_HOST:VECHE_METRICS_PORT
    (port 0 picks a free port; ``metrics_address(app)`` tells which)."""
    settings = app[SERVICES].settings
    runner = web.AppRunner(metrics_app(app[METRICS_SERVICE_KEY], settings.metrics_token), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
    except OSError as exc:
        await runner.cleanup()
        raise VecheError(f"cannot listen for /metrics on {settings.metrics_host}:{settings.metrics_port}: "
                         f"{exc.strerror} (set VECHE_METRICS_HOST / VECHE_METRICS_PORT)") from None
    app[METRICS_RUNNER_KEY] = runner
    log.info("metrics listening on %s:%s", *metrics_address(app))


async def stop_metrics_listener(app: web.Application) -> None:
    runner = app.get(METRICS_RUNNER_KEY)
    if runner is not None:
        await runner.cleanup()


def metrics_address(app: web.Application) -> tuple[str, int]:
    """(host, port) the /metrics listener of this portal is bound to."""
    runner = app[METRICS_RUNNER_KEY]
    host, port = runner.addresses[0][:2]
    return host, port


def setup_metrics(app: web.Application, service: MetricsService) -> None:
    """The request timer on the portal and the separate /metrics listener that starts and stops
    with it (call after the services are in the app)."""
    app[METRICS_SERVICE_KEY] = service
    app.middlewares.insert(0, http_latency)  # outermost: times error pages and redirects too
    app.on_startup.append(start_metrics_listener)
    app.on_cleanup.append(stop_metrics_listener)
