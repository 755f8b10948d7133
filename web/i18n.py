"""Translations of the portal: gettext catalogues (web/locale/<lang>/LC_MESSAGES/messages.po,
maintained with Babel) compiled at start, chosen per request from the account's language."""

from __future__ import annotations

import io
import logging
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp_session import get_session
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import pass_context

from web.auth import current_account

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
DOMAIN = "messages"
TRANSLATIONS_KEY = web.AppKey("translations", dict)


def load_catalogs(directory: Path = LOCALE_DIR) -> dict[str, Translations]:
    """One Translations per language: a committed .mo when it is newer than its .po, else the .po
    compiled in memory, so an edited catalogue takes effect at the next start."""
    catalogs: dict[str, Translations] = {}
    for language in LANGUAGES:
        po_path = directory / language / "LC_MESSAGES" / f"{DOMAIN}.po"
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and (not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime):
            with mo_path.open("rb") as fp:
                catalogs[language] = Translations(fp, domain=DOMAIN)
        elif po_path.exists():
            with po_path.open("rb") as fp:
                catalog = read_po(fp, locale=language, domain=DOMAIN)
            buffer = io.BytesIO()
            write_mo(buffer, catalog)
            buffer.seek(0)
            catalogs[language] = Translations(buffer, domain=DOMAIN)
        else:
            log.warning("no %s catalogue in %s; showing source strings", language, directory)
            catalogs[language] = Translations()
    return catalogs


@pass_context
def context_gettext(context: Any, message: str) -> str:
    return context["translations"].gettext(message)


@pass_context
def context_ngettext(context: Any, singular: str, plural: str, n: int) -> str:
    return context["translations"].ngettext(singular, plural, n)


def local_time(value: datetime | None, timezone: str) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(ZoneInfo(timezone))


@pass_context
def format_when(context: Any, value: datetime | None, style: str = "medium") -> str:
    """A datetime in the account's time zone and language: 'd MMM y, HH:mm' or 'HH:mm:ss'."""
    if value is None:
        return "—"
    account = context.get("account")
    zone = account.timezone if account else "Europe/Minsk"
    pattern = {"medium": "d MMM y, HH:mm", "time": "HH:mm:ss", "short": "dd.MM.y HH:mm",
               "date": "d MMMM y"}.get(style, style)
    return format_datetime(value, pattern, tzinfo=ZoneInfo(zone), locale=context.get("lang", DEFAULT_LANGUAGE))


def format_duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


async def language(request: web.Request) -> str:
    """The visitor's language: the account's, else the one chosen in the session, else the default."""
    account = await current_account(request)
    if account is not None and account.language in LANGUAGES:
        return account.language
    session = await get_session(request)
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


async def translations(request: web.Request) -> Translations:
    return request.app[TRANSLATIONS_KEY][await language(request)]


async def translate(request: web.Request, message: str, **values: Any) -> str:
    """``message`` (a catalogue id with %(name)s values) in the visitor's language."""
    text = (await translations(request)).gettext(message)
    return text % values if values else text
