"""The operator's voice-prompts page: per language, every prompt the nodes play with its
replacement or the core sound it falls back to; upload (WAV or MP3) and delete. Every action goes
through the prompt service (engine/services/prompts.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.domain import prompts as rules
from engine.domain.errors import Forbidden, NotFound, ValidationError
from engine.domain.speech import LANGUAGES
from web.api.prompts import READ_SLACK, read_upload
from web.auth import current_account
from web.context import services
from web.i18n import translate
from web.views.common import error_text, flash, render
from web.views.operator import operator_required

UPLOAD_PATH = "/operator/prompts"
# What a Veche phrase is, and what is played while it has no upload (README, "Replacing prompts").
VECHE_FALLBACKS = {
    rules.VECHE_ONE_F: ("«одна» (1, 21, … minutes)", "said in seconds: «шестьдесят секунд»"),
    rules.VECHE_TWO_F: ("«две» (2, 22, … minutes)", "said in seconds: «сто двадцать секунд»"),
    rules.VECHE_MINUTES_FEW: ("«минуты» (2–4, 22–24, … minutes)", "said in seconds"),
    rules.VECHE_MUTE_GUESTS: ("menu: mute or unmute all guests", "conf-now-muted"),
    rules.VECHE_EXTEND: ("menu: extend by 15 minutes", "conf-extended"),
    rules.VECHE_TIME_LEFT: ("menu: hear the minutes left", "minutes"),
}


@web.middleware
async def upload_limit(request: web.Request, handler: Any) -> web.StreamResponse:
    """The portal's upload form may carry a prompt file: its request body may be as large as the
    prompt limit (every other portal form keeps the application's smaller limit)."""
    if request.method == "POST" and request.path == UPLOAD_PATH:
        request = request.clone(client_max_size=services(request).settings.prompt_max_bytes + READ_SLACK)
    return await handler(request)


async def _operator_id(request: web.Request) -> int:
    account = await current_account(request)
    assert account is not None
    return account.id


async def _page(request: web.Request, *, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                status: int = 200) -> web.StreamResponse:
    prompts = services(request).prompts
    listing = await prompts.list(await _operator_id(request))
    return await render(request, "operator/prompts.html", {
        "languages": LANGUAGES, "listing": listing, "names": rules.NAMES, "fallbacks": VECHE_FALLBACKS,
        "limits": prompts.limits, "errors": errors or {},
        "values": {"language": "", "name": "", **(values or {})}}, status=status)


@operator_required
async def prompts_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@operator_required
async def upload(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    language, name, file = form.get("language"), form.get("name"), form.get("file")
    values = {"language": language if isinstance(language, str) else "", "name": name if isinstance(name, str) else ""}
    prompts = services(request).prompts
    try:
        if not isinstance(file, web.FileField):
            raise ValidationError("choose a WAV or MP3 file", "file")
        data = await read_upload(_FileStream(file), prompts.limits.max_bytes)
        await prompts.upload(await _operator_id(request), values["language"], values["name"], data)
    except ValidationError as exc:
        return await _page(request, errors={exc.field or "file": await error_text(request, exc)}, values=values,
                           status=400)
    await flash(request, await translate(request, "Prompt %(name)s (%(language)s) replaced", name=values["name"],
                                         language=values["language"]))
    raise web.HTTPSeeOther(request.app.router["operator_prompts"].url_for())


@operator_required
async def delete(request: web.Request) -> web.StreamResponse:
    target = request.app.router["operator_prompts"].url_for()
    try:
        await services(request).prompts.delete(await _operator_id(request), request.match_info["language"],
                                                 request.match_info["prompt"])
    except (ValidationError, NotFound, Forbidden) as exc:
        await flash(request, await error_text(request, exc), "error")
        raise web.HTTPSeeOther(target) from None
    await flash(request, await translate(request, "Prompt %(name)s (%(language)s) is the default again",
                                         name=request.match_info["prompt"], language=request.match_info["language"]))
    raise web.HTTPSeeOther(target)


class _FileStream:
    """An uploaded form file read like a request stream (read_upload)."""

    def __init__(self, field: web.FileField) -> None:
        self.file = field.file

    async def read(self, size: int) -> bytes:
        return self.file.read(size)


def setup_prompt_routes(app: web.Application) -> None:
    app.middlewares.insert(0, upload_limit)
    app.router.add_get(UPLOAD_PATH, prompts_page, name="operator_prompts")
    app.router.add_post(UPLOAD_PATH, upload)
    app.router.add_post(r"/operator/prompts/{language:ru|en}/{prompt:[a-z0-9-]{1,40}}/delete", delete,
                        name="operator_prompt_delete")
