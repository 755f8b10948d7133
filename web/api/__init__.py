"""The JSON API under /api/v1 for operators' integrations and the portal's console: a sub-application
with its own error and authentication middlewares, mounted by ``setup_api(app)``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.domain.errors import Unauthenticated
from web.api import addressbook, conferences, events, nodes, operator, prompts, recordings, series
from web.api.common import ACCOUNT, ok
from web.api.errors import api_errors
from web.api.openapi import build_spec
from web.api.ratelimit import install_api_rate_limit
from web.auth import current_account
from web.context import SERVICES

PREFIX = "/api/v1"
CONF = "/conferences/{id:[0-9]{1,19}}"
PARTICIPANT = CONF + "/participants/{pid:[0-9]{1,19}}"
ITEM = "/{id:[0-9]{1,19}}"
PUBLIC_PATHS = frozenset({PREFIX + "/openapi.json", PREFIX + "/password-reset", PREFIX + "/password-reset/confirm"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (method, path under PREFIX, handler); web/api/openapi.py describes each one (a test checks it).
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/me", addressbook.me),
    ("GET", "/conferences", conferences.list_conferences),
    ("POST", "/conferences", conferences.create_conference),
    ("GET", CONF, conferences.get_conference),
    ("PATCH", CONF, conferences.update_conference),
    ("DELETE", CONF, conferences.cancel_conference),
    ("POST", CONF + "/start", conferences.start_conference),
    ("POST", CONF + "/participants", conferences.add_participant),
    ("PATCH", PARTICIPANT, conferences.update_participant),
    ("POST", CONF + "/invite", conferences.invite_participants),
    ("POST", PARTICIPANT + "/invite", conferences.invite_participant),
    ("POST", PARTICIPANT + "/mute", conferences.mute_participant),
    ("POST", PARTICIPANT + "/unmute", conferences.unmute_participant),
    ("POST", PARTICIPANT + "/kick", conferences.kick_participant),
    ("POST", CONF + "/lock", conferences.lock_conference),
    ("POST", CONF + "/unlock", conferences.unlock_conference),
    ("POST", CONF + "/extend", conferences.extend_conference),
    ("POST", CONF + "/end", conferences.end_conference),
    ("GET", CONF + "/quality", conferences.conference_quality),
    ("GET", CONF + "/log", conferences.conference_log),
    ("GET", CONF + "/deliveries", conferences.conference_deliveries),
    ("GET", CONF + "/events", events.conference_events),
    ("GET", "/history", conferences.history),
    ("GET", "/series", series.list_series),
    ("POST", "/series", series.create_series),
    ("GET", "/series" + ITEM, series.get_series),
    ("PATCH", "/series" + ITEM, series.update_series),
    ("DELETE", "/series" + ITEM, series.cancel_series),
    ("POST", "/series" + ITEM + "/pins", series.reissue_pins),
    ("GET", "/permanent-rooms", series.list_rooms),
    ("POST", "/permanent-rooms", series.create_room),
    ("GET", "/permanent-rooms" + ITEM, series.get_room),
    ("DELETE", "/permanent-rooms" + ITEM, series.close_room),
    ("POST", "/permanent-rooms" + ITEM + "/pins", series.reissue_pins),
    ("GET", "/contacts", addressbook.list_contacts),
    ("POST", "/contacts", addressbook.create_contact),
    ("GET", "/contacts" + ITEM, addressbook.get_contact),
    ("PUT", "/contacts" + ITEM, addressbook.update_contact),
    ("DELETE", "/contacts" + ITEM, addressbook.delete_contact),
    ("GET", "/rooms", addressbook.list_rooms),
    ("POST", "/rooms", addressbook.create_room),
    ("GET", "/rooms" + ITEM, addressbook.get_room),
    ("PUT", "/rooms" + ITEM, addressbook.update_room),
    ("DELETE", "/rooms" + ITEM, addressbook.delete_room),
    ("GET", "/templates", addressbook.list_templates),
    ("POST", "/templates", addressbook.create_template),
    ("GET", "/templates" + ITEM, addressbook.get_template),
    ("PATCH", "/templates" + ITEM, addressbook.update_template),
    ("DELETE", "/templates" + ITEM, addressbook.delete_template),
    ("GET", "/tokens", addressbook.list_tokens),
    ("POST", "/tokens", addressbook.create_token),
    ("DELETE", "/tokens" + ITEM, addressbook.revoke_token),
    ("POST", "/password-reset", addressbook.request_password_reset),
    ("POST", "/password-reset/confirm", addressbook.confirm_password_reset),
    ("POST", CONF + "/recording/start", recordings.start_recording),
    ("POST", CONF + "/recording/stop", recordings.stop_recording),
    ("GET", CONF + "/recordings", recordings.list_recordings),
    ("GET", "/recordings" + ITEM + "/file", recordings.recording_file),
    ("DELETE", "/recordings" + ITEM, recordings.delete_recording),
    *operator.ROUTES,  # /operator/...
    *prompts.ROUTES,  # /operator/prompts (voice prompts per language)
    *nodes.ROUTES,  # /operator/nodes (media nodes: load, drain)
)


@web.middleware
async def api_authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token or portal session; a blocked account is refused (CSRF for cookie writes is
    checked by web.security.csrf_protection before this)."""
    if request.path not in PUBLIC_PATHS:
        found = await current_account(request)
        if found is None:
            raise Unauthenticated("log in, or send Authorization: Bearer <token>")
        request[ACCOUNT] = found
    return await handler(request)


async def openapi_json(request: web.Request) -> web.Response:
    return ok(build_spec(PREFIX))


def setup_api(app: web.Application) -> web.Application:
    """Mount the API on the portal's application (which holds the services and the session setup)."""
    api = web.Application(middlewares=[api_errors, api_authentication])
    install_api_rate_limit(api, app[SERVICES].settings.api_requests_per_minute)  # 429 per account
    api[events.STOPPING] = asyncio.Event()
    api[events.OPEN_STREAMS] = Counter()
    api[events.FANOUT] = events.Fanout(app[SERVICES].bus)
    api.on_shutdown.append(events.stop_streams)
    api.router.add_get("/openapi.json", openapi_json)
    for method, path, handler in ROUTES:
        api.router.add_route(method, path, handler)
    app.add_subapp(PREFIX, api)
    return api
