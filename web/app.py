"""aiohttp application factory: ``init_app(services)`` wires the portal's pages (and the API's
routes) to the engine's services, with sessions, CSRF, security headers and translations."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web

from engine.services.container import Services
from web import i18n
from web.api import setup_api
from web.audit_context import audit_context
from web.context import SERVICES
from web.metrics import health_response, setup_metrics
from web.security import TRUSTED_PROXIES, csrf_protection, security_headers
from web.sessions import PostgresSessionStorage
from web.views import error_pages, setup_routes

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATE_DIR = WEB_DIR / "templates"


async def healthz(request: web.Request) -> web.Response:
    return await health_response(request.app[SERVICES].metrics)  # PostgreSQL, AMI, FastAGI (web/metrics.py)


def _jinja_environment(app: web.Application) -> jinja2.Environment:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(("html", "xml"), default=True),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.context_gettext, i18n.context_ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = i18n.format_when
    env.filters["duration"] = i18n.format_duration
    return env


def init_app(services: Services) -> web.Application:
    """The portal with the JSON API under /api/v1, on the engine's services."""
    app = web.Application(middlewares=[security_headers, error_pages], client_max_size=256 * 1024)
    app[SERVICES] = services
    app[TRUSTED_PROXIES] = tuple(services.settings.trusted_proxies)  # web/security.py client_address
    setup_metrics(app, services.metrics)  # the HTTP latency middleware and the /metrics listener (web/metrics.py)
    app[i18n.TRANSLATIONS_KEY] = i18n.load_catalogs()
    _jinja_environment(app)
    aiohttp_session.setup(app, PostgresSessionStorage(services.accounts, secret_key=services.settings.secret_key))
    app.middlewares.append(csrf_protection)
    app.middlewares.append(audit_context)  # the client's address for the audit log
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    setup_routes(app)
    setup_api(app)
    return app
