"""API handlers of the operator's voice prompts (/api/v1/operator/prompts): the list per language,
upload of a replacement (the audio file as the request body) and delete (back to the core sound).
Each parses, calls the prompt service (which refuses anybody who is not an operator), renders."""

from __future__ import annotations

from aiohttp import web

from engine.domain import prompts as rules
from engine.domain.errors import NotFound, ValidationError
from web.api import render
from web.api.common import account, no_content, ok
from web.context import services

PROMPT_ITEM = "/operator/prompts/{language}/{name}"
# The longest body read for an upload: beyond the service's limit only so that it can say why.
READ_SLACK = 64 * 1024


def _item(request: web.Request) -> tuple[str, str]:
    """The language and name from the path; 404 for anything outside the fixed lists."""
    language, name = request.match_info["language"], request.match_info["name"]
    try:
        return rules.validate_language(language), rules.validate_name(name)
    except ValidationError:
        raise NotFound("no such prompt") from None


async def read_upload(stream: object, max_bytes: int) -> bytes:
    """At most ``max_bytes`` + 1 bytes of an upload (one byte more tells the service it is too large)."""
    data = bytearray()
    while len(data) <= max_bytes:
        chunk = await stream.read(min(READ_SLACK, max_bytes + 1 - len(data)))  # type: ignore[attr-defined]
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def list_prompts(request: web.Request) -> web.Response:
    prompts = services(request).prompts
    listing = await prompts.list(account(request).id)
    return ok({"limits": {"max_bytes": prompts.limits.max_bytes, "max_seconds": prompts.limits.max_seconds},
               "languages": render.plain(listing)})


async def upload_prompt(request: web.Request) -> web.Response:
    language, name = _item(request)
    prompts = services(request).prompts
    data = await read_upload(request.content, prompts.limits.max_bytes)
    saved = await prompts.upload(account(request).id, language, name, data)
    return ok(render.plain(saved))


async def delete_prompt(request: web.Request) -> web.Response:
    language, name = _item(request)
    await services(request).prompts.delete(account(request).id, language, name)
    return no_content()


ROUTES = (
    ("GET", "/operator/prompts", list_prompts),
    ("PUT", PROMPT_ITEM, upload_prompt),
    ("DELETE", PROMPT_ITEM, delete_prompt),
)
