"""Login (phone account + password + image CAPTCHA), logout and the language switch."""

from __future__ import annotations

from aiohttp import web
from aiohttp_session import get_session

from engine.domain.accounts import account_phone
from engine.domain.errors import Forbidden, RateLimited, ValidationError
from web.auth import current_account, end_session, start_login_session
from web.context import services
from web.i18n import LANGUAGES, translate
from web.security import client_address, safe_redirect
from web.views.common import error_text, field, render


async def login_page(request: web.Request, *, error: str | None = None, error_field: str | None = None,
                     phone: str = "", status: int = 200) -> web.Response:
    captcha_id = await services(request).captcha.new(client_address(request))
    return await render(request, "login.html", {
        "captcha_id": captcha_id, "error": error, "error_field": error_field, "phone": phone,
        "next": safe_redirect(request.query.get("next", "") or ""),
    }, status=status)


async def login_form(request: web.Request) -> web.StreamResponse:
    if await current_account(request) is not None:
        raise web.HTTPSeeOther(safe_redirect(request.query.get("next", "")))
    return await login_page(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    phone = form.get("phone", "") if isinstance(form.get("phone"), str) else ""
    password = form.get("password", "") if isinstance(form.get("password"), str) else ""
    target = safe_redirect(field(form, "next"))
    captcha_ok = await services(request).captcha.check(field(form, "captcha_id"), field(form, "captcha"))
    try:
        account_phone(phone)
    except ValidationError as exc:
        return await login_page(request, error=await error_text(request, exc), error_field="phone",
                                phone=phone, status=400)
    if not captcha_ok:
        message = await translate(request, "The code from the picture is wrong; try the new one")
        return await login_page(request, error=message, error_field="captcha", phone=phone, status=400)
    try:
        account = await services(request).accounts.authenticate(phone, password, address=client_address(request))
    except ValidationError as exc:
        return await login_page(request, error=await error_text(request, exc), error_field=exc.field,
                                phone=phone, status=400)
    except RateLimited as exc:
        return await login_page(request, error=await error_text(request, exc), phone=phone, status=429)
    except Forbidden as exc:
        return await login_page(request, error=await error_text(request, exc), phone=phone, status=403)
    await start_login_session(request, account)
    raise web.HTTPSeeOther(target)


async def logout(request: web.Request) -> web.StreamResponse:
    await end_session(request)
    raise web.HTTPSeeOther(request.app.router["login"].url_for())


async def captcha_image(request: web.Request) -> web.StreamResponse:
    image = await services(request).captcha.image(request.match_info["captcha_id"])
    if image is None:
        raise web.HTTPNotFound()
    return web.Response(body=image, content_type="image/png", headers={"Cache-Control": "private, max-age=600"})


async def switch_language(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    chosen = field(form, "lang")
    if chosen not in LANGUAGES:
        raise web.HTTPBadRequest(reason="unknown language")
    account = await current_account(request)
    if account is not None:
        await services(request).accounts.update_profile(account.id, language=chosen)
    session = await get_session(request)
    session["lang"] = chosen
    raise web.HTTPSeeOther(safe_redirect(field(form, "next")))
