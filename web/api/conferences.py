"""API handlers of conferences: planning, listing, changing and cancelling, live control
(participants, lock, extend, end), quality, the event log and history. Each parses, calls one
service method of engine.services, renders."""

from __future__ import annotations

import json

from aiohttp import web

from engine.domain.model import Conference, ConferenceState
from engine.services.idempotency import Answer
from web.api import parse, render
from web.api.common import account, no_content, ok
from web.api.spec_parts import STATE_FILTER
from web.context import services

DEFAULT_STATES = frozenset({ConferenceState.SCHEDULED, ConferenceState.RUNNING})


def _conference(request: web.Request, conference: Conference) -> dict:
    return render.conference(conference, services(request).settings.access_number)


def _etag(conference: Conference) -> dict[str, str]:
    """The ETag header of a conference: its version, which moves on every change."""
    return {"ETag": f'"{conference.version}"'}


def _states(raw: str) -> set[ConferenceState] | None:
    if not raw:
        return set(DEFAULT_STATES)
    return None if raw == "all" else {ConferenceState(part) for part in raw.split(",")}


async def create_conference(request: web.Request) -> web.Response:
    me = account(request)
    data = await parse.body(request, "ConferenceCreate")

    async def plan() -> Answer:
        conference = await services(request).planning.plan(me.id, parse.conference_plan(data, me.timezone))
        return Answer(201, json.dumps(_conference(request, conference)),
                      {"Location": f"{request.path.rstrip('/')}/{conference.id}", **_etag(conference)})

    key = request.headers.get("Idempotency-Key")
    answer = await plan() if key is None else \
        await services(request).idempotency.once(me.id, key, "create_conference", data, plan)
    headers = {**answer.headers, **({"Idempotent-Replayed": "true"} if answer.replayed else {})}
    return web.Response(status=answer.status, text=answer.body, content_type="application/json", headers=headers)


async def list_conferences(request: web.Request) -> web.Response:
    states = _states(parse.query(request, "state", STATE_FILTER))
    conferences = await services(request).planning.list(account(request).id, states)
    return ok({"conferences": [_conference(request, c) for c in conferences]})


async def get_conference(request: web.Request) -> web.Response:
    conference = await services(request).planning.get(account(request).id, parse.path_id(request))
    return ok(_conference(request, conference), headers=_etag(conference))


async def update_conference(request: web.Request) -> web.Response:
    me = account(request)
    conference_id = parse.path_id(request)
    changes = parse.conference_changes(await parse.body(request, "ConferenceUpdate"), me.timezone)
    conference = await services(request).planning.update(me.id, conference_id, changes,
                                                         expected_version=parse.if_match(request))
    return ok(_conference(request, conference), headers=_etag(conference))


async def cancel_conference(request: web.Request) -> web.Response:
    conference = await services(request).planning.cancel(account(request).id, parse.path_id(request))
    return ok(_conference(request, conference))


async def start_conference(request: web.Request) -> web.Response:
    conference = await services(request).planning.start_now(account(request).id, parse.path_id(request))
    return ok(_conference(request, conference))


async def update_participant(request: web.Request) -> web.Response:
    conference_id, participant_id = parse.path_id(request), parse.path_id(request, "pid")
    data = await parse.body(request, "ParticipantUpdate")
    participant = await services(request).live.set_role(
        account(request).id, conference_id, participant_id, data["role"])
    return ok(render.participant(participant))


async def add_participant(request: web.Request) -> web.Response:
    conference_id = parse.path_id(request)
    data = await parse.body(request, "ParticipantAdd")
    participant = await services(request).live.add_participant(
        account(request).id, conference_id, parse.participant_plan(data), invite=data.get("invite", True))
    return ok(render.participant(participant), status=201)


async def invite_participants(request: web.Request) -> web.Response:
    conference_id = parse.path_id(request)
    data = await parse.body(request, "InviteRequest")
    await services(request).live.invite(account(request).id, conference_id, data["participant_ids"])
    return no_content()


async def invite_participant(request: web.Request) -> web.Response:
    await services(request).live.invite(
        account(request).id, parse.path_id(request), [parse.path_id(request, "pid")])
    return no_content()


async def mute_participant(request: web.Request) -> web.Response:
    await services(request).live.mute(
        account(request).id, parse.path_id(request), parse.path_id(request, "pid"), True)
    return no_content()


async def unmute_participant(request: web.Request) -> web.Response:
    await services(request).live.mute(
        account(request).id, parse.path_id(request), parse.path_id(request, "pid"), False)
    return no_content()


async def kick_participant(request: web.Request) -> web.Response:
    await services(request).live.kick(
        account(request).id, parse.path_id(request), parse.path_id(request, "pid"))
    return no_content()


async def lock_conference(request: web.Request) -> web.Response:
    await services(request).live.lock(account(request).id, parse.path_id(request), True)
    return no_content()


async def unlock_conference(request: web.Request) -> web.Response:
    await services(request).live.lock(account(request).id, parse.path_id(request), False)
    return no_content()


async def extend_conference(request: web.Request) -> web.Response:
    conference_id = parse.path_id(request)
    data = await parse.body(request, "ExtendRequest")
    conference = await services(request).live.extend(account(request).id, conference_id, data["minutes"])
    return ok(_conference(request, conference))


async def end_conference(request: web.Request) -> web.Response:
    conference = await services(request).live.end(account(request).id, parse.path_id(request))
    return ok(_conference(request, conference))


async def conference_quality(request: web.Request) -> web.Response:
    rows = await services(request).quality.report(account(request).id, parse.path_id(request))
    return ok({"participants": render.plain(rows)})


async def conference_deliveries(request: web.Request) -> web.Response:
    rows = await services(request).mail_delivery.delivery_status(account(request).id, parse.path_id(request))
    return ok({"deliveries": [render.delivery(row) for row in rows]})


async def conference_log(request: web.Request) -> web.Response:
    entries = await services(request).planning.events(account(request).id, parse.path_id(request))
    return ok({"events": render.plain(entries)})


async def history(request: web.Request) -> web.Response:
    me = account(request)
    since, until = parse.period(request, me.timezone)
    conferences = await services(request).planning.history(me.id, since, until)
    return ok({"from": since.isoformat(), "to": until.isoformat(),
               "conferences": [_conference(request, c) for c in conferences]})
