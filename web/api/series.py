"""API handlers of recurring series: plan, list, read, change or cancel the whole series and
re-issue its PINs. One occurrence is changed or cancelled through /conferences/{id}."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.domain.errors import NotFound
from web.api import parse, render
from web.api.common import account, ok
from web.context import services


def _series(request: web.Request, series: dict[str, Any]) -> dict[str, Any]:
    access_number = services(request).settings.access_number
    body = {key: render.plain(series[key]) for key in (
        "id", "kind", "state", "subject", "recurrence", "first_start", "timezone", "conference_number",
        "chair_pin", "guest_pin", "plan", "guests_wait_for_chair")}
    body["access_number"] = access_number
    body["conferences"] = [render.conference(c, access_number) for c in series.get("conferences", ())]
    return body


async def create_series(request: web.Request) -> web.Response:
    me = account(request)
    data = await parse.body(request, "SeriesCreate")
    plan = parse.conference_plan(data, me.timezone)
    series = await services(request).series.plan_series(me.id, plan, data["recurrence"])
    return ok(_series(request, series), status=201, headers={"Location": f"{request.path.rstrip('/')}/{series['id']}"})


async def list_series(request: web.Request) -> web.Response:
    items = await services(request).series.list(account(request).id, "recurring")
    return ok({"series": [_series(request, s) for s in items]})


async def get_series(request: web.Request) -> web.Response:
    series = await services(request).series.get(account(request).id, parse.path_id(request))
    return ok(_series(request, series))


async def update_series(request: web.Request) -> web.Response:
    me = account(request)
    changes = parse.conference_changes(await parse.body(request, "SeriesUpdate"), me.timezone)
    series = await services(request).series.update_series(me.id, parse.path_id(request), changes)
    return ok(_series(request, series))


async def cancel_series(request: web.Request) -> web.Response:
    series = await services(request).series.cancel_series(account(request).id, parse.path_id(request))
    return ok(_series(request, series))


async def reissue_pins(request: web.Request) -> web.Response:
    series = await services(request).series.reissue_pins(account(request).id, parse.path_id(request))
    return ok(_series(request, series))


async def create_room(request: web.Request) -> web.Response:
    me = account(request)
    data = await parse.body(request, "RoomCreate")
    plan = parse.conference_plan({**data, "duration_minutes": 1}, me.timezone)
    room = await services(request).rooms.plan_room(me.id, plan, data.get("guests_wait_for_chair", False))
    return ok(_series(request, room), status=201, headers={"Location": f"{request.path.rstrip('/')}/{room['id']}"})


async def list_rooms(request: web.Request) -> web.Response:
    items = await services(request).series.list(account(request).id, "permanent")
    return ok({"series": [_series(request, s) for s in items]})


async def get_room(request: web.Request) -> web.Response:
    room = await services(request).series.get(account(request).id, parse.path_id(request))
    if room["kind"] != "permanent":
        raise NotFound("no such room")
    return ok(_series(request, room))


async def close_room(request: web.Request) -> web.Response:
    room = await services(request).rooms.close_room(account(request).id, parse.path_id(request))
    return ok(_series(request, room))
