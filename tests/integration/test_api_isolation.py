"""One customer can never see or touch another's objects through the API: account B gets 404 on
EVERY route that names an object of account A (reads and writes, derived from the route table so a
new route is covered automatically), B's lists never show A's objects, and A's objects are unchanged
afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.api import ApiUser, BusWatcher, connected, new_user, session_client
from web.api import ROUTES

pytestmark = pytest.mark.stack

# A valid body for each write that takes one, so only ownership can refuse the call.
BODIES = {
    ("PATCH", "/conferences/{id}"): {"subject": "hijacked"},
    ("POST", "/conferences/{id}/participants"): {"number": "375290000302", "name": "intruder"},
    ("PATCH", "/conferences/{id}/participants/{pid}"): {"role": "chair"},
    ("POST", "/conferences/{id}/invite"): {"participant_ids": ["<pid>"]},
    ("POST", "/conferences/{id}/extend"): {"minutes": 60},
    ("PUT", "/contacts/{id}"): {"name": "hijacked", "number": "375291234567"},
    ("PUT", "/rooms/{id}"): {"name": "hijacked", "number": "375171234567"},
    ("PATCH", "/templates/{id}"): {"name": "hijacked", "is_default": True},
    ("PATCH", "/series/{id}"): {"subject": "hijacked"},
}


def _plain(path: str) -> str:
    return path.replace(":[0-9]{1,19}", "")


@pytest.fixture(scope="module")
async def owner_a(engine, api_server, pstn) -> dict:
    """Account A with one of everything: a scheduled and a running conference (a connected
    participant), a contact, a room, a template and an extra API token."""
    a = await new_user(engine, api_server)
    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    scheduled = await a.api.post("/conferences", {
        "subject": "A scheduled", "start": later, "duration_minutes": 30, "max_participants": 3,
        "participants": [{"number": "375290000303"}]})
    assert scheduled.status == 201, scheduled.body
    async with BusWatcher(engine) as bus:
        live = await a.api.post("/conferences", {
            "subject": "A live", "start": "now", "duration_minutes": 30, "max_participants": 3,
            "participants": [{"number": "375290000304", "name": "A's guest"}]})
        assert live.status == 201, live.body
        participant_id = live.body["participants"][0]["id"]
        await bus.wait(connected(participant_id))
    contact = await a.api.post("/contacts", {"name": "A contact", "number": "375291110001"})
    room = await a.api.post("/rooms", {"name": "A room", "number": "375172001000"})
    template = await a.api.post("/templates", {"name": "A template", "is_default": True})
    portal = await session_client(engine, api_server, a.account.id)  # tokens come from a portal session
    token = await portal.post("/tokens", {"name": "A second token"})
    recording = await a.api.post(f"/conferences/{live.body['id']}/recording/start")
    assert recording.status == 201, recording.body
    series = await a.api.post("/series", {
        "subject": "A series", "start": (datetime.now(UTC) + timedelta(days=1)).isoformat(), "duration_minutes": 30,
        "max_participants": 2, "recurrence": {"frequency": "weekly", "weekdays": ["mo"], "count": 2}})
    assert series.status == 201, series.body
    permanent_room = await a.api.post("/permanent-rooms", {"subject": "A standing room", "max_participants": 2})
    assert permanent_room.status == 201, permanent_room.body
    objects = {
        "user": a, "scheduled": scheduled.body["id"], "live": live.body["id"], "pid": participant_id,
        "contacts": contact.body["id"], "rooms": room.body["id"], "templates": template.body["id"],
        "tokens": token.body["details"]["id"], "token_secret": token.body["token"],
        "recordings": recording.body["id"], "series": series.body["id"],
        "permanent-rooms": permanent_room.body["id"],
        "snapshot": {"live": (await a.api.get(f"/conferences/{live.body['id']}")).body,
                     "scheduled": (await a.api.get(f"/conferences/{scheduled.body['id']}")).body},
    }
    yield objects
    await a.api.post(f"/conferences/{objects['live']}/end")


@pytest.fixture(scope="module")
async def intruder_b(engine, api_server) -> ApiUser:
    return await new_user(engine, api_server)


def _targets(method: str, path: str, a: dict) -> list[tuple[str, str]]:
    """(concrete path, what it names) for a route template, using A's objects."""
    path = _plain(path)
    kind = path.split("/")[1]
    if kind == "conferences":
        return [(path.replace("{id}", str(a[which])).replace("{pid}", str(a["pid"])), which)
                for which in ("scheduled", "live")]
    assert kind in ("contacts", "rooms", "templates", "tokens", "recordings", "series", "permanent-rooms"), \
        f"route {method} {path} is not in the matrix"
    return [(path.replace("{id}", str(a[kind])), kind)]


def _object_routes() -> list[tuple[str, str]]:
    # /operator/... is not owner-scoped: a customer gets 403 there (tests/integration/test_operator.py)
    return [(method, path) for method, path, _handler in ROUTES if "{id" in path and not path.startswith("/operator/")]


@pytest.mark.parametrize(("method", "path"), _object_routes(), ids=lambda v: v if isinstance(v, str) else None)
async def test_b_gets_404_on_every_object_route_of_a(engine, owner_a, intruder_b, method, path) -> None:
    body = BODIES.get((method, _plain(path)))
    if body is not None and "participant_ids" in body:
        body = {"participant_ids": [owner_a["pid"]]}
    for target, which in _targets(method, path, owner_a):
        kwargs = {"json": body} if body is not None else {}
        reply = await intruder_b.api.call(method, target, **kwargs)
        assert reply.status == 404, (method, target, which, reply.status, reply.body)
        assert reply.error["code"] == "not_found"
        assert "A " not in str(reply.body)  # nothing of A's objects leaks into the message


async def test_b_cannot_reach_a_participant_through_its_own_conference(owner_a, intruder_b) -> None:
    mine = await intruder_b.api.post("/conferences", {
        "subject": "B's own", "start": "now", "duration_minutes": 10, "max_participants": 2})
    assert mine.status == 201 and mine.body["state"] == "running"
    cid = mine.body["id"]
    for action in ("invite", "mute", "unmute", "kick"):
        reply = await intruder_b.api.post(f"/conferences/{cid}/participants/{owner_a['pid']}/{action}")
        assert reply.status == 404, (action, reply.body)
    reply = await intruder_b.api.post(f"/conferences/{cid}/invite", {"participant_ids": [owner_a["pid"]]})
    assert reply.status == 404
    assert (await intruder_b.api.post(f"/conferences/{cid}/end")).status == 200


async def test_b_lists_show_nothing_of_a(owner_a, intruder_b) -> None:
    b = intruder_b.api
    conferences = (await b.get("/conferences?state=all")).body["conferences"]
    assert not {owner_a["scheduled"], owner_a["live"]} & {c["id"] for c in conferences}
    history = (await b.get("/history")).body["conferences"]
    assert not {owner_a["scheduled"], owner_a["live"]} & {c["id"] for c in history}
    for kind in ("contacts", "rooms", "templates", "tokens"):
        listed = (await b.get(f"/{kind}")).body[kind]
        assert owner_a[kind] not in {item["id"] for item in listed}, kind
    assert (await b.get("/me")).body["id"] == intruder_b.account.id


async def test_a_is_untouched_after_the_matrix(owner_a, intruder_b) -> None:
    a: ApiUser = owner_a["user"]
    live = (await a.api.get(f"/conferences/{owner_a['live']}")).body
    before = owner_a["snapshot"]["live"]
    assert live["state"] == "running" and live["locked"] is False
    assert live["ends_at"] == before["ends_at"]
    assert [p["id"] for p in live["participants"]] == [owner_a["pid"]]
    assert live["participants"][0]["state"] == "connected" and live["participants"][0]["muted"] is False
    scheduled = (await a.api.get(f"/conferences/{owner_a['scheduled']}")).body
    assert scheduled["subject"] == "A scheduled" and scheduled["state"] == "scheduled"
    assert (await a.api.get(f"/contacts/{owner_a['contacts']}")).body["name"] == "A contact"
    assert (await a.api.get(f"/rooms/{owner_a['rooms']}")).body["name"] == "A room"
    template = (await a.api.get(f"/templates/{owner_a['templates']}")).body
    assert template["name"] == "A template" and template["is_default"] is True
    tokens = {t["id"]: t for t in (await a.api.get("/tokens")).body["tokens"]}
    assert tokens[owner_a["tokens"]]["revoked_at"] is None
