"""The portal's pages: routes, and the error pages shown instead of bare HTTP errors."""

from __future__ import annotations

import logging

from aiohttp import web

from engine.domain.errors import NotFound
from web.security import Handler
from web.views import conferences, help, history, login, planning, series, settings
from web.views.account import setup_account_routes
from web.views.common import N_, render
from web.views.nodes import setup_node_routes
from web.views.operator import setup_operator_routes
from web.views.outbox import setup_outbox_routes
from web.views.prompts import setup_prompt_routes

log = logging.getLogger(__name__)


def setup_routes(app: web.Application) -> None:
    add = app.router
    add.add_get("/", help.index, name="index")
    add.add_get("/login", login.login_form, name="login")
    add.add_post("/login", login.login_submit)
    add.add_post("/logout", login.logout, name="logout")
    add.add_post("/language", login.switch_language, name="language")
    add.add_get(r"/captcha/{captcha_id:[A-Za-z0-9_-]{8,64}}.png", login.captcha_image, name="captcha")
    add.add_get("/help", help.help_page, name="help")

    add.add_get("/planning", planning.planning, name="planning")
    add.add_post("/planning", planning.schedule)
    add.add_post("/planning/template", planning.create_template, name="planning_template")

    add.add_get("/conferences", conferences.conferences, name="conferences")
    add.add_get(r"/conferences/{id:\d+}", conferences.card, name="conference")
    add.add_get(r"/conferences/{id:\d+}/edit", conferences.edit, name="conference_edit")
    add.add_post(r"/conferences/{id:\d+}/edit", conferences.edit_submit)
    add.add_post(r"/conferences/{id:\d+}/cancel", conferences.cancel, name="conference_cancel")
    add.add_get(r"/conferences/{id:\d+}/console", conferences.console, name="console")
    add.add_get(r"/conferences/{id:\d+}/state", conferences.console_state, name="console_state")
    add.add_get(r"/conferences/{id:\d+}/quality", conferences.quality, name="quality")
    add.add_post(r"/conferences/{id:\d+}/participants", conferences.add_participant, name="add_participant")
    add.add_post(r"/conferences/{id:\d+}/invite", conferences.invite, name="invite")
    add.add_post(r"/conferences/{id:\d+}/participants/{pid:\d+}/{action:[a-z]+}", conferences.participant_action)
    add.add_post(r"/conferences/{id:\d+}/{action:start|lock|unlock|extend|end}", conferences.conference_action)

    add.add_get(r"/series/{id:\d+}", series.series_page, name="series")
    add.add_post(r"/series/{id:\d+}/{action:edit|pins|cancel|close}", series.series_action)
    add.add_get("/meeting-rooms", series.rooms_page, name="meeting_rooms")
    add.add_post("/meeting-rooms", series.create_room)
    add.add_get("/history", history.history, name="history")
    add.add_get("/history.csv", history.history_csv, name="history_csv")
    add.add_get(r"/history/{id:\d+}", history.history_detail, name="history_detail")
    add.add_get(r"/recordings/{id:\d+}.ogg", history.recording_file, name="recording_file")
    add.add_post(r"/recordings/{id:\d+}/delete", history.recording_delete, name="recording_delete")

    add.add_get("/settings", settings.profile, name="settings")
    add.add_post("/settings/profile", settings.profile_submit, name="settings_profile")
    add.add_post("/settings/password", settings.password_submit, name="settings_password")
    add.add_get("/settings/templates", settings.templates, name="templates")
    add.add_get(r"/settings/templates/{id:\d+}", settings.template_edit, name="template")
    add.add_post(r"/settings/templates/{id:\d+}", settings.template_save)
    add.add_post(r"/settings/templates/{id:\d+}/default", settings.template_default)
    add.add_post(r"/settings/templates/{id:\d+}/delete", settings.template_delete)
    add.add_get(r"/settings/{kind:contacts|rooms}", settings.entries, name="entries")
    add.add_post(r"/settings/{kind:contacts|rooms}", settings.entry_save)
    add.add_post(r"/settings/{kind:contacts|rooms}/{id:\d+}", settings.entry_save)
    add.add_post(r"/settings/{kind:contacts|rooms}/{id:\d+}/delete", settings.entry_delete)
    setup_operator_routes(app)  # /operator/... pages
    setup_outbox_routes(app)  # /operator/outbox: the local mail sink
    setup_prompt_routes(app)  # /operator/prompts: voice prompts per language
    setup_node_routes(app)  # /operator/nodes: media nodes, drain
    setup_account_routes(app)  # password reset, e-mail confirmation, Settings > API tokens


ERROR_TITLES = {
    400: N_("The request could not be understood"),
    403: N_("This action is not allowed"),
    404: N_("Page not found"),
    405: N_("This action is not allowed"),
    413: N_("The form is too large"),
    429: N_("Too many requests"),
    500: N_("Something went wrong"),
    503: N_("The service is temporarily unavailable"),
}


async def _error_page(request: web.Request, status: int) -> web.StreamResponse:
    title = ERROR_TITLES.get(status, ERROR_TITLES[500] if status >= 500 else ERROR_TITLES[400])
    try:
        return await render(request, "error.html", {"status": status, "title": title}, status=status)
    except Exception:  # noqa: BLE001 - the error page itself must never fail
        log.exception("error page failed")
        return web.Response(text=f"{status} {title}", status=status, content_type="text/plain")


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Friendly pages for the portal; the API under /api/ keeps its own JSON errors."""
    if request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith("/static/"):
            raise
        return await _error_page(request, exc.status)
    except NotFound:
        return await _error_page(request, 404)
    except Exception:
        log.exception("portal page %s %s failed", request.method, request.path)
        return await _error_page(request, 500)
