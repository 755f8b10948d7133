"""Cross-cutting web protections: security headers on every response, the CSRF check on every
state-changing request made with the portal's session cookie, the one check of a redirect target
taken from a request, and the one rule for the client address that rate limits count."""

from __future__ import annotations

import functools
import ipaddress
import secrets
import unicodedata
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp_session import get_session
from yarl import URL

from web.i18n import DEFAULT_LANGUAGE, LANGUAGES, TRANSLATIONS_KEY, translate
from web.sessions import COOKIE_NAME

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _add_headers(exc, request)
        raise
    _add_headers(response, request)
    return response


def _add_headers(response: web.StreamResponse, request: web.Request) -> None:
    if response.prepared:  # streamed responses (SSE) set their headers before the first byte
        return
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token, created on first use (for forms and the X-CSRF-Token header)."""
    session = await get_session(request)
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def csrf_valid(request: web.Request) -> bool:
    """True when the request carries the session's CSRF token in the header or the form."""
    session = await get_session(request)
    expected = session.get("csrf")
    if not expected:
        return False
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return bool(given) and secrets.compare_digest(given, expected)


@web.middleware
async def csrf_protection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Portal forms always need the token. API writes need it only when they ride on the session
    cookie (a bearer token is not sent by the browser on its own, so it needs no CSRF check)."""
    if request.method not in SAFE_METHODS:
        is_api = request.path.startswith("/api/")
        cookie_authenticated = COOKIE_NAME in request.cookies and "Authorization" not in request.headers
        if (not is_api or cookie_authenticated) and not await csrf_valid(request):
            if is_api or request.headers.get("Accept", "").startswith("application/json"):
                message = "Missing or wrong CSRF token"
                if not is_api:  # the portal's own scripts show the message to a person
                    message = await translate(request, message)
                return web.json_response({"error": {"code": "csrf", "message": message}}, status=403)
            login = await keep_signed_out_form(request)
            if login is not None:
                raise web.HTTPSeeOther(login)
            raise web.HTTPForbidden(reason="CSRF token missing or wrong")
    return await handler(request)


KEPT_FORM = "kept_form"  # session key: a form typed while signed out, refilled after logging in
KEPT_FORM_MAX_CHARACTERS = 50_000
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
SIGNED_OUT_FORMS = ("/login", "/logout", "/password", "/language", "/email")  # forms of signed-out visitors
SIGNED_OUT_NOTICE = ("You were logged out (perhaps in another tab), so nothing was saved. Log in again: "
                     "what you typed is kept and filled in again.")


async def keep_signed_out_form(request: web.Request) -> str | None:
    """A portal form that arrives after its session ended (logged out in another tab, expired) is
    not an attack to refuse but work to keep: what was typed (never passwords or the old CSRF
    token) goes into the visitor's new session, and the answer is the login page, which returns
    to the form's page afterwards. None when the visitor is signed in (a real CSRF failure)."""
    session = await get_session(request)
    if session.get("account_id") is not None or request.content_type not in FORM_TYPES \
            or request.path.startswith(SIGNED_OUT_FORMS):
        return None
    # Only this site's own pages may leave input to refill: another site could otherwise plant
    # values in a form the visitor later submits.
    origin = URL(request.headers.get("Origin") or request.headers.get("Referer") or "")
    if origin.host != request.url.host or origin.port != request.url.port:
        return None
    form = await request.post()
    fields = [[name, value] for name, value in form.items()
              if isinstance(value, str) and name != CSRF_FIELD and "password" not in name][:500]
    referer = URL(request.headers.get("Referer", ""))
    same_site = referer.host == request.url.host and referer.port == request.url.port
    page = referer.path_qs if same_site and referer.path_qs else request.path
    page = safe_redirect(page, request.path)
    if sum(len(name) + len(value) for name, value in fields) <= KEPT_FORM_MAX_CHARACTERS:
        session[KEPT_FORM] = {"action": request.path, "page": page, "fields": fields}
    if "lang" not in session:  # the signed-out session lost the account's language: the browser's
        preferred = request.headers.get("Accept-Language", "").split(",")[0].split("-")[0].strip().lower()
        if preferred in ("ru", "en"):
            session["lang"] = preferred

    session["flash"] = [*session.get("flash", []),
                        {"kind": "warning", "text": _signed_out_notice(request, session.get("lang"))}]
    return str(URL("/login").with_query(next=page))


def _signed_out_notice(request: web.Request, language: str | None) -> str:
    """SIGNED_OUT_NOTICE in the signed-out visitor's language (the session's, else the default)."""
    catalogues = request.config_dict[TRANSLATIONS_KEY]
    return catalogues[language if language in LANGUAGES else DEFAULT_LANGUAGE].gettext(SIGNED_OUT_NOTICE)


DEFAULT_LANDING = "/planning"
TRUSTED_PROXIES = web.AppKey("veche.trusted_proxies", tuple)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def safe_redirect(target: str | None, default: str = DEFAULT_LANDING) -> str:
    """``target`` when it is a path on this site, else ``default``: every redirect whose target
    comes from the request goes through here. Refused: anything with a scheme or host, ``//`` or
    ``/\\`` at the start, a backslash anywhere, and any control, space or format character
    (browsers and yarl drop a tab or newline, so ``/\t/evil.example`` would become ``//evil.example``)."""
    if not target or len(target) > 2000 or not target.startswith("/") or "\\" in target:
        return default
    if any(unicodedata.category(char)[0] in "CZ" for char in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return default
    url = URL(target)
    if url.is_absolute() or url.host is not None or not url.path.startswith("/") or url.path.startswith("//"):
        return default
    return target


@functools.lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _address(text: str) -> IpAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.split(":", 1)[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def forwarded_client(peer: str | None, forwarded_for: list[str], trusted: tuple[str, ...]) -> str | None:
    """The client address that rate limits and the audit log count: the TCP peer, unless the peer
    is a trusted proxy; then the rightmost X-Forwarded-For hop that is not itself a trusted proxy
    (hops further left were written by the client and prove nothing)."""
    networks = _networks(trusted)
    peer_address = _address(peer or "")
    if peer_address is None or not networks:
        return peer

    def is_trusted(address: IpAddress) -> bool:
        return any(address in network for network in networks)

    if not is_trusted(peer_address):
        return str(peer_address)
    client = peer_address
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # a malformed hop: keep the last hop a trusted proxy vouched for
        client = address
        if not is_trusted(address):
            break
    return str(client)


def client_address(request: web.Request) -> str | None:
    """The requesting client's address (see forwarded_client), with the portal's trusted proxies
    (TRUSTED_PROXIES, set from VECHE_TRUSTED_PROXIES by init_app)."""
    trusted = request.config_dict.get(TRUSTED_PROXIES, ())
    return forwarded_client(request.remote, request.headers.getall("X-Forwarded-For", []), trusted)
