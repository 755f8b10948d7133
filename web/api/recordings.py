"""API handlers of conference recordings: start and stop in a running conference, the list of
a conference's recordings, the file (with HTTP range requests) and its deletion, owner only."""

from __future__ import annotations

from aiohttp import web

from web.api import parse, render
from web.api.common import account, no_content, ok
from web.context import services


async def start_recording(request: web.Request) -> web.Response:
    row = await services(request).recording.start_recording(account(request).id, parse.path_id(request))
    return ok(render.recording(row), status=201)


async def stop_recording(request: web.Request) -> web.Response:
    await services(request).recording.stop_recording(account(request).id, parse.path_id(request))
    return no_content()


async def list_recordings(request: web.Request) -> web.Response:
    me = account(request)
    conference_id = parse.path_id(request)
    await services(request).planning.get(me.id, conference_id)  # NotFound for another account's
    rows = await services(request).recording.list_for(me.id, [conference_id])
    return ok({"recordings": [render.recording(r) for r in rows]})


async def recording_file(request: web.Request) -> web.FileResponse:
    row, path = await services(request).recording.file(account(request).id, parse.path_id(request))
    return web.FileResponse(path, headers={
        "Content-Type": "audio/ogg",
        "Content-Disposition": f'attachment; filename="conference-{row["conference_id"]}-{row["id"]}.ogg"'})


async def delete_recording(request: web.Request) -> web.Response:
    await services(request).recording.delete(account(request).id, parse.path_id(request))
    return no_content()
