"""Who is asking: the account of the portal session or of an API bearer token, and the
login/logout session switches (a fresh session id on every login)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp_session import get_session, new_session

from engine.domain.accounts import Account
from engine.domain.errors import Forbidden, NotFound, Unauthenticated
from web.bearer import bearer_account
from web.context import services

ACCOUNT_KEY = web.RequestKey("veche.account", object)
BY_TOKEN_KEY = web.RequestKey("veche.by_token", bool)
_MISSING = object()


async def current_account(request: web.Request) -> Account | None:
    """The logged-in account of this request's session, or None (cached on the request)."""
    cached = request.get(ACCOUNT_KEY, _MISSING)
    if cached is not _MISSING:
        return cached
    if "Authorization" in request.headers:  # API token: raises Unauthenticated / Forbidden
        request[ACCOUNT_KEY] = await bearer_account(request)
        request[BY_TOKEN_KEY] = True
        return request[ACCOUNT_KEY]
    account = None
    session = await get_session(request)
    account_id = session.get("account_id")
    if account_id is not None:
        try:
            account = await services(request).accounts.get(int(account_id))
        except NotFound:
            account = None
        if account is not None and account.blocked:
            account = None
    request[ACCOUNT_KEY] = account
    return account


def by_token(request: web.Request) -> bool:
    """True when this request was authenticated by an API bearer token (not a portal session)."""
    return request.get(BY_TOKEN_KEY, False)


async def start_login_session(request: web.Request, account: Account) -> None:
    """Revokes the pre-login session and opens a new one (new id), so a planted id is useless."""
    old = await get_session(request)
    language = old.get("lang")
    kept_form = old.get("kept_form")  # typed while signed out (web.security.keep_signed_out_form)
    if old.identity:
        await services(request).accounts.revoke_session(old.identity)
    session = await new_session(request)
    session["account_id"] = account.id
    if kept_form:
        session["kept_form"] = kept_form
    if language and not account.language:
        session["lang"] = language
    request[ACCOUNT_KEY] = account


async def end_session(request: web.Request) -> None:
    session = await get_session(request)
    session.invalidate()
    request[ACCOUNT_KEY] = None


async def still_authorized(request: web.Request) -> bool:
    """Whether the credential this request came with still stands (long-lived responses such as
    the SSE stream ask again now and then): the token is neither revoked nor expired, or the
    session is not logged out or ended by a password change; and the account is not blocked."""
    accounts = services(request).accounts
    try:
        if by_token(request):
            await bearer_account(request)
            return True
        session = await get_session(request)
        if not session.identity:
            return False
        stored = await accounts.load_session(session.identity)
        account = request.get(ACCOUNT_KEY)
        if stored is None or account is None or stored.account_id != account.id:
            return False
        return not (await accounts.get(account.id)).blocked
    except (Unauthenticated, Forbidden, NotFound):
        return False


View = Callable[[web.Request], Awaitable[web.StreamResponse]]


def login_required(view: View) -> View:
    """Sends anonymous visitors to the login page (and back afterwards)."""

    @functools.wraps(view)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if await current_account(request) is None:
            target = request.path_qs if request.method == "GET" else "/"
            raise web.HTTPSeeOther(request.app.router["login"].url_for().with_query(next=target))
        return await view(request)

    return wrapper
