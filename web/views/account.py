"""Account self-service pages: password reset by e-mail from the login page, confirming a new
e-mail address, and the API tokens page in Settings (create with a name and expiry, shown once,
list, revoke)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from engine.domain.errors import NotFound, RateLimited, ValidationError
from engine.domain.tokens import MAX_LIFETIME_DAYS
from web.auth import ACCOUNT_KEY, current_account, login_required
from web.context import services
from web.i18n import translate
from web.security import client_address
from web.views.common import error_text, field, flash, path_id, render

LINK = r"{secret:[A-Za-z0-9_-]{20,100}}"


async def forgot_form(request: web.Request) -> web.StreamResponse:
    return await render(request, "password_forgot.html", {"sent": False, "error": None, "phone": ""})


async def forgot_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    phone = field(form, "phone")
    try:
        await services(request).selfservice.request_password_reset(phone, client_address(request))
    except ValidationError as exc:
        return await render(request, "password_forgot.html", {
            "sent": False, "error": await error_text(request, exc), "phone": phone}, status=400)
    except RateLimited as exc:
        return await render(request, "password_forgot.html", {
            "sent": False, "error": await error_text(request, exc), "phone": phone}, status=429)
    return await render(request, "password_forgot.html", {"sent": True, "error": None, "phone": ""})


async def reset_form(request: web.Request) -> web.StreamResponse:
    usable = await services(request).selfservice.reset_link_usable(request.match_info["secret"])
    return await render(request, "password_reset.html", {"usable": usable, "errors": {}},
                        status=200 if usable else 410)


async def reset_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    secret = request.match_info["secret"]
    try:
        if field(form, "new_password") != field(form, "new_password_again"):
            raise ValidationError("The new passwords do not match", "new_password_again")
        await services(request).selfservice.reset_password(
            secret, form.get("new_password", "") if isinstance(form.get("new_password"), str) else "",
            address=client_address(request))
    except ValidationError as exc:
        usable = exc.field != "link"
        return await render(request, "password_reset.html", {
            "usable": usable, "errors": {exc.field: await error_text(request, exc)}},
            status=400 if usable else 410)
    await flash(request, await translate(request, "Password changed; log in with the new password"))
    raise web.HTTPSeeOther(request.app.router["login"].url_for())


async def email_confirm_form(request: web.Request) -> web.StreamResponse:
    pending = await services(request).selfservice.email_change_pending(request.match_info["secret"])
    return await render(request, "settings/email_confirm.html", {"pending": pending},
                        status=200 if pending else 410)


async def email_confirm_submit(request: web.Request) -> web.StreamResponse:
    try:
        account = await services(request).selfservice.confirm_email_change(request.match_info["secret"])
    except ValidationError:
        return await render(request, "settings/email_confirm.html", {"pending": None}, status=410)
    request.pop(ACCOUNT_KEY, None)
    await flash(request, await translate(request, "Your e-mail address is now %(email)s", email=account.email))
    target = "settings" if await current_account(request) is not None else "login"
    raise web.HTTPSeeOther(request.app.router[target].url_for())


async def _tokens_page(request: web.Request, *, issued: object = None, errors: dict | None = None,
                       status: int = 200) -> web.Response:
    account = await current_account(request)
    tokens = await services(request).tokens.list(account.id)
    return await render(request, "settings/tokens.html", {
        "section": "tokens", "tokens": tokens, "issued": issued, "errors": errors or {},
        "now": datetime.now(UTC)}, status=status)


@login_required
async def tokens(request: web.Request) -> web.StreamResponse:
    return await _tokens_page(request)


@login_required
async def token_create(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    form = await request.post()
    raw_days = field(form, "expires_in_days")
    try:
        days = None
        if raw_days:
            try:
                days = int(raw_days)
            except ValueError:
                raise ValidationError("a token expires in 1 to %(days)d days", "expires_in_days",
                                      days=MAX_LIFETIME_DAYS) from None
        issued = await services(request).tokens.issue(account.id, field(form, "name"), expires_in_days=days)
    except ValidationError as exc:
        return await _tokens_page(request, errors={exc.field: await error_text(request, exc)}, status=400)
    # The secret is in this response only: it is stored hashed and never shown again.
    return await _tokens_page(request, issued=issued)


@login_required
async def token_revoke(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    try:
        await services(request).tokens.revoke(account.id, path_id(request))
    except NotFound:
        raise web.HTTPNotFound() from None
    await flash(request, await translate(request, "Token revoked"))
    raise web.HTTPSeeOther(request.app.router["settings_tokens"].url_for())


def setup_account_routes(app: web.Application) -> None:
    add = app.router
    add.add_get("/password/forgot", forgot_form, name="password_forgot")
    add.add_post("/password/forgot", forgot_submit)
    add.add_get("/password/reset/" + LINK, reset_form, name="password_reset")
    add.add_post("/password/reset/" + LINK, reset_submit)
    add.add_get("/settings/email/" + LINK, email_confirm_form, name="email_confirm")
    add.add_post("/settings/email/" + LINK, email_confirm_submit)
    add.add_get("/settings/tokens", tokens, name="settings_tokens")
    add.add_post("/settings/tokens", token_create)
    add.add_post(r"/settings/tokens/{id:\d+}/revoke", token_revoke, name="settings_token_revoke")
