"""What every portal view shares: the template context (account, language, CSRF token, flash
messages), translations for Python-side messages, and small form-parsing helpers."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session
from multidict import MultiDictProxy

from engine.domain.errors import VecheError
from web.auth import current_account
from web.context import services
from web.i18n import TRANSLATIONS_KEY, language, translations
from web.security import CSRF_FIELD, csrf_token


def N_(message: str) -> str:
    """Marks a message for the catalogue; it is translated where it is shown."""
    return message


NAVIGATION = (
    ("planning", N_("Planning")),
    ("conferences", N_("Conferences")),
    ("history", N_("History")),
    ("settings", N_("Settings")),
    ("help", N_("Help")),
)

OPERATOR_NAVIGATION = (("operator", N_("Operator")),)  # shown to operators only (web/views/operator.py)


async def translate_later(request: web.Request, message: str) -> str:
    """Translates a message marked elsewhere with N_()."""
    return (await translations(request)).gettext(message)


async def error_text(request: web.Request, error: VecheError) -> str:
    """A domain error's message in the visitor's language (catalogued messages are translated;
    an error with ``message_id`` and ``values``, such as the text rule's, is formatted after)."""
    catalogue = await translations(request)
    message_id = getattr(error, "message_id", None)
    if message_id is not None:
        values = getattr(error, "values", None) or {}
        # a value may itself be a catalogued sentence (the reason in a refusal): translated too
        values = {k: catalogue.gettext(v) if isinstance(v, str) and v else v for k, v in values.items()}
        return catalogue.gettext(message_id) % values if values else catalogue.gettext(message_id)
    return catalogue.gettext(str(error))


async def flash(request: web.Request, message: str, kind: str = "ok") -> None:
    """A one-time notice shown on the next page (message already translated)."""
    session = await get_session(request)
    session["flash"] = [*session.get("flash", []), {"kind": kind, "text": message}]


async def base_context(request: web.Request) -> dict[str, Any]:
    account = await current_account(request)
    session = await get_session(request)
    flashes = session.pop("flash", []) if "flash" in session else []
    kept_form = session.get("kept_form")
    if kept_form and account is not None and request.method == "GET" and \
            request.path_qs in (kept_form.get("page"), kept_form.get("action")):
        session.pop("kept_form")  # refilled on this page by veche.js
    else:
        kept_form = None
    lang = await language(request)
    router = request.app.router
    return {
        "account": account,
        "lang": lang,
        "translations": request.app[TRANSLATIONS_KEY][lang],
        "csrf_token": await csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "flashes": flashes,
        "kept_form": kept_form,
        "navigation": NAVIGATION + (OPERATOR_NAVIGATION if account is not None and account.role == "operator" else ()),
        "current_path": request.path,
        "access_number": services(request).settings.access_number,
        "url": lambda name, **parts: str(router[name].url_for(**{k: str(v) for k, v in parts.items()})),
        "static": lambda path: str(router["static"].url_for(filename=path, append_version=True)),
    }


def field(form: MultiDictProxy, name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value.strip() if isinstance(value, str) else default


def checkbox(form: MultiDictProxy, name: str) -> bool:
    return form.get(name) in ("on", "1", "true", "yes")


def int_param(value: str, *, default: int | None = None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def path_id(request: web.Request, name: str = "id") -> int:
    value = int_param(request.match_info.get(name, ""))
    if value is None or value <= 0 or value > 2**62:
        raise web.HTTPNotFound()
    return value


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


async def render(request: web.Request, template: str, context: dict[str, Any] | None = None, *,
                 status: int = 200) -> web.Response:
    """Renders a page with the shared context, computed after the view did its work."""
    values = await base_context(request)
    values.update(context or {})
    return aiohttp_jinja2.render_template(template, request, values, status=status)
