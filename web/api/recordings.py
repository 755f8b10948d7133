"""API handlers of conference recordings: start and stop in a running conference, the list of
a conference's recordings, the file (with HTTP range requests) and its deletion, owner only."""

from __future__ import annotations

from aiohttp import web

from web.api import parse, render
from web.api.common import account, no_content, ok
from web.context import services

RECORDING_FIELDS = ("id", "conference_id", "state", "duration_seconds", "size_bytes", "error", "started_at",
                    "stopped_at", "created_at")


def recording(row: dict) -> dict:
    return {name: render.plain(row.get(name)) for name in RECORDING_FIELDS}


async def start_recording(request: web.Request) -> web.Response:
    row = await services(request).recording.start_recording(account(request).id, parse.path_id(request))
    return ok(recording(row), status=201)


async def stop_recording(request: web.Request) -> web.Response:
    await services(request).recording.stop_recording(account(request).id, parse.path_id(request))
    return no_content()


async def list_recordings(request: web.Request) -> web.Response:
    me = account(request)
    conference_id = parse.path_id(request)
    await services(request).conferences.get(me.id, conference_id)  # NotFound for another account's
    rows = await services(request).recording.list_for(me.id, [conference_id])
    return ok({"recordings": [recording(r) for r in rows]})


async def recording_file(request: web.Request) -> web.FileResponse:
    row, path = await services(request).recording.file(account(request).id, parse.path_id(request))
    return web.FileResponse(path, headers={
        "Content-Type": "audio/ogg",
        "Content-Disposition": f'attachment; filename="conference-{row["conference_id"]}-{row["id"]}.ogg"'})


async def delete_recording(request: web.Request) -> web.Response:
    await services(request).recording.delete(account(request).id, parse.path_id(request))
    return no_content()
