"""The JSON API /api/v1 against the real engine (Postgres, Asterisk, SIPp callees): every endpoint,
its validation errors, authentication (bearer and portal session with CSRF) and the OpenAPI
description's agreement with the routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.web_urldispatcher import PrefixedSubAppResource
from openapi_spec_validator import validate as validate_openapi

from tests.support.api import ApiClient, BusWatcher, connected, exercised, new_user, record_operation, session_client
from web.api import ROUTES
from web.api.openapi import build_spec

pytestmark = pytest.mark.stack

ANSWERS = "375290000100"  # SIPp callee that answers and waits (tests/sipp/pstn.xml)
ANSWERS_RTP = "375290000201"  # answers and sends RTP
BUSY = "375290000486"


def _later(minutes: int = 120) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


@pytest.fixture(scope="module", autouse=True)
def every_route_is_exercised(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the module's tests, in whatever order they ran: each operation of the description was
    called by them (the operator's routes have their own tests in test_operator.py). Checked when
    every test of the module was selected and passed; a part of the module (``-k``) proves nothing."""
    failed = request.session.testsfailed
    with exercised() as seen:
        yield
    defined = {name for name, value in vars(request.module).items() if name.startswith("test_") and callable(value)}
    selected = {item.originalname for item in request.session.items
                if getattr(item, "module", None) is request.module}
    if selected != defined or request.session.testsfailed != failed:
        return
    described = {op["operationId"] for path, item in build_spec()["paths"].items() for op in item.values()
                 if not path.startswith("/operator/")}
    assert described - seen == set(), "operations none of the tests of test_api.py called"


@pytest.fixture(scope="module")
async def user(engine, api_server):
    return await new_user(engine, api_server)


@pytest.fixture(scope="module")
async def api(user) -> ApiClient:
    return user.api


# --- description and authentication ------------------------------------------------------------

async def test_openapi_is_valid_public_and_describes_every_route(api_server) -> None:
    reply = await ApiClient(api_server).get("/openapi.json")
    assert reply.status == 200
    spec = reply.body
    validate_openapi(spec)
    assert spec["openapi"].startswith("3.1")
    described = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    routed = {("GET", "/openapi.json")}
    for method, path, _handler in ROUTES:
        plain = path.replace(":[0-9]{1,19}", "")
        routed.add((method, plain))
    assert routed == described
    # and the application really serves exactly these routes under /api/v1
    api_app = next(r._app for r in api_server.app.router.resources() if isinstance(r, PrefixedSubAppResource))
    served = {(route.method, route.resource.canonical.removeprefix("/api/v1"))
              for route in api_app.router.routes() if route.method != "HEAD"}
    assert served == described
    assert spec == build_spec("/api/v1")


async def test_requests_without_valid_credentials_get_401(api_server, engine, user) -> None:
    anonymous = ApiClient(api_server)
    reply = await anonymous.get("/conferences")
    assert reply.status == 401 and reply.error["code"] == "unauthenticated"
    assert reply.headers.get("WWW-Authenticate", "").startswith("Bearer")
    for header in ("Bearer nonsense", "Bearer veche_" + "x" * 43, "Basic dXNlcjpwYXNz", "Bearer"):
        reply = await anonymous.get("/me", headers={"Authorization": header})
        assert reply.status == 401, header
        assert reply.error["code"] == "unauthenticated"
    reply = await anonymous.post("/conferences", {"subject": "x"})
    assert reply.status == 401


async def test_me_returns_the_token_account(api, user) -> None:
    reply = await api.get("/me")
    assert reply.status == 200
    assert reply.body["id"] == user.account.id and reply.body["phone"] == user.account.phone
    assert "password_hash" not in reply.body


async def test_tokens_are_listed_revocable_and_record_use(engine, api_server) -> None:
    owner = await new_user(engine, api_server)
    portal = await session_client(engine, api_server, owner.account.id)  # a token cannot mint tokens
    created = await portal.post("/tokens", {"name": "integration"})
    assert created.status == 201
    secret = created.body["token"]
    assert secret.startswith("veche_") and created.body["details"]["prefix"] == secret[:12]
    second = ApiClient(api_server, secret)
    assert (await second.get("/me")).status == 200
    listed = await owner.api.get("/tokens")
    assert listed.status == 200
    tokens = {t["id"]: t for t in listed.body["tokens"]}
    assert "token" not in str(listed.body).replace('"tokens"', "").replace("'tokens'", "")
    assert tokens[created.body["details"]["id"]]["last_used_at"] is not None
    stored = await engine.pool.fetchval("SELECT token_hash FROM api_tokens WHERE id = $1",
                                        created.body["details"]["id"])
    assert secret not in stored
    assert (await owner.api.call("DELETE", f"/tokens/{created.body['details']['id']}")).status == 204
    revoked = await second.get("/me")
    assert revoked.status == 401 and revoked.error["code"] == "unauthenticated"
    assert (await owner.api.call("DELETE", "/tokens/999999999")).status == 404
    bad = await portal.post("/tokens", {"name": "x" * 101})
    assert bad.status == 422 and bad.error["field"] == "name"
    unnamed = await portal.call("POST", "/tokens")  # the body is optional
    assert unnamed.status == 201


async def test_blocked_account_is_refused(engine, api_server) -> None:
    blocked = await new_user(engine, api_server)
    assert (await blocked.api.get("/me")).status == 200
    await engine.services.accounts.set_limits(blocked.account.id, blocked=True)
    reply = await blocked.api.get("/me")
    assert reply.status == 403 and reply.error["code"] == "forbidden"
    reply = await blocked.api.post("/conferences", {"subject": "x", "duration_minutes": 5, "max_participants": 2})
    assert reply.status == 403


async def test_session_cookie_works_and_writes_need_the_csrf_token(engine, api_server, user) -> None:
    from web.sessions import COOKIE_NAME

    accounts = engine.services.accounts
    cookie = await accounts.save_session(None, user.account.id, {"account_id": user.account.id, "csrf": "t0ken"})
    browser = ApiClient(api_server, cookies={COOKIE_NAME: cookie})
    reply = await browser.get("/me")
    assert reply.status == 200 and reply.body["id"] == user.account.id
    body = {"name": "Via session", "number": "375291112233"}
    reply = await browser.post("/contacts", body)
    assert reply.status == 403 and reply.error["code"] == "csrf"
    reply = await browser.post("/contacts", body, headers={"X-CSRF-Token": "wrong"})
    assert reply.status == 403
    reply = await browser.post("/contacts", body, headers={"X-CSRF-Token": "t0ken"})
    assert reply.status == 201
    await accounts.revoke_session(cookie)
    assert (await browser.get("/me")).status == 401


async def test_unknown_paths_and_methods_are_json_errors(api) -> None:
    reply = await api.get("/nothing-here")
    assert reply.status == 404 and reply.error["code"] == "not_found"
    reply = await api.get("/conferences/abc")
    assert reply.status == 404 and reply.error["code"] == "not_found"
    reply = await api.get("/conferences/99999999999999999999999")
    assert reply.status == 404
    reply = await api.call("PUT", "/conferences")
    assert reply.status == 405 and reply.error["code"] == "method_not_allowed"


# --- conferences ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ({"duration_minutes": 30, "max_participants": 5}, "subject"),
    ({"subject": "S", "duration_minutes": "30", "max_participants": 5}, "duration_minutes"),
    ({"subject": "S", "duration_minutes": 30.5, "max_participants": 5}, "duration_minutes"),
    ({"subject": "S", "duration_minutes": 0, "max_participants": 5}, "duration_minutes"),
    ({"subject": "S", "duration_minutes": 721, "max_participants": 5}, "duration_minutes"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": True}, "max_participants"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5, "auto_extend_minutes": 20},
     "auto_extend_minutes"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5, "reminder_minutes": 0}, "reminder_minutes"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5, "start": "tomorrow"}, "start"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5, "start": "2001-01-01T10:00:00Z"}, "start"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5, "start": "0001-01-01T00:00:00"}, "start"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5, "timezone": "Mars/Olympus"}, "timezone"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5, "colour": "red"}, "colour"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5, "participants": [{"name": "x"}]},
     "participants[0].number"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5,
      "participants": [{"number": "375 29 123"}]}, "participants[0].number"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5,
      "participants": [{"number": "88001234567"}]}, "participants[0].number"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5,
      "participants": [{"number": "375291234567&x"}]}, "participants[0].number"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 1,
      "participants": [{"number": "375291234567"}, {"number": "375291234568"}]}, "participants"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5,
      "participants": [{"number": "375291234567", "role": "boss"}]}, "participants[0].role"),
])
async def test_create_conference_validation_errors(api, engine, body, field) -> None:
    before = await engine.pool.fetchval("SELECT count(*) FROM conferences")
    reply = await api.post("/conferences", body)
    assert reply.status == 400, reply.body
    assert reply.error["code"] == "validation"
    assert reply.error["field"] == field, reply.error
    assert reply.error["message"]
    assert await engine.pool.fetchval("SELECT count(*) FROM conferences") == before


@pytest.mark.parametrize(("body", "field"), [
    ({"subject": "S\x00", "duration_minutes": 30, "max_participants": 5}, "subject"),
    ({"subject": "Board\rmeeting", "duration_minutes": 30, "max_participants": 5}, "subject"),
    ({"subject": "Board\u2028meeting", "duration_minutes": 30, "max_participants": 5}, "subject"),
    ({"subject": "\u202egnitеem", "duration_minutes": 30, "max_participants": 5}, "subject"),
    ({"subject": "   ", "duration_minutes": 30, "max_participants": 5}, "subject"),
    ({"subject": "x" * 201, "duration_minutes": 30, "max_participants": 5}, "subject"),
    ({"subject": "", "duration_minutes": 30, "max_participants": 5}, "subject"),
    ({"subject": "S\u0007", "duration_minutes": 30, "max_participants": 5}, "subject"),
    ({"subject": "lone \ud800 surrogate", "duration_minutes": 30, "max_participants": 5}, "subject"),
    ({"subject": "S", "duration_minutes": 30, "max_participants": 5,
      "participants": [{"number": "375291234567", "name": "Ann\x85a"}]}, "participants[0].name"),
])
async def test_create_conference_text_rule(api, engine, body, field) -> None:
    before = await engine.pool.fetchval("SELECT count(*) FROM conferences")
    reply = await api.post("/conferences", body)
    assert reply.status == 422, reply.body
    assert reply.error["code"] == "invalid_text" and reply.error["field"] == field, reply.error
    assert await engine.pool.fetchval("SELECT count(*) FROM conferences") == before


async def test_create_conference_rejects_bad_json_and_limits(api, user) -> None:
    reply = await api.post("/conferences", data="{not json")
    assert reply.status == 400 and reply.error["field"] == "body"
    reply = await api.post("/conferences", data="[1, 2]")
    assert reply.status == 400
    reply = await api.post("/conferences", data="")
    assert reply.status == 400 and reply.error["field"] == "body"
    reply = await api.post("/conferences", data='{"subject": "' + "x" * 300_000 + '"}')
    assert reply.status == 413 and reply.error["code"] == "too_large"
    over = user.account.max_participants + 1
    reply = await api.post("/conferences", {"subject": "Big", "duration_minutes": 30, "max_participants": over})
    assert reply.status == 422 and reply.error["code"] == "limit_exceeded"


async def test_scheduled_conference_get_list_patch_cancel(api, user) -> None:
    body = {"subject": "Quarterly review", "start": _later(), "duration_minutes": 45, "max_participants": 4,
            "auto_invite": True, "auto_extend_minutes": 15, "guest_pin_required": True, "reminder_minutes": 30,
            "notify_participants": True,
            "participants": [{"number": ANSWERS, "name": "Anna", "email": "anna@example.org"}]}
    created = await api.post("/conferences", body)
    assert created.status == 201, created.body
    conference = created.body
    for key in ("id", "conference_number", "chair_pin", "guest_pin", "access_number", "state", "starts_at",
                "ends_at"):
        assert conference[key] is not None, key
    assert conference["state"] == "scheduled"
    assert conference["chair_pin"] != conference["guest_pin"]
    assert created.headers["Location"].endswith(f"/api/v1/conferences/{conference['id']}")
    starts = datetime.fromisoformat(conference["starts_at"])
    assert datetime.fromisoformat(conference["ends_at"]) > starts
    assert conference["participants"][0]["number"] == ANSWERS
    assert conference["participants"][0]["state"] == "planned"
    cid = conference["id"]

    one = await api.get(f"/conferences/{cid}")
    assert one.status == 200 and one.body["subject"] == "Quarterly review"
    listed = await api.get("/conferences")
    assert cid in [c["id"] for c in listed.body["conferences"]]
    assert all(c["state"] in ("scheduled", "running") for c in listed.body["conferences"])
    scheduled = await api.get("/conferences?state=scheduled")
    assert cid in [c["id"] for c in scheduled.body["conferences"]]
    assert cid not in [c["id"] for c in (await api.get("/conferences?state=ended")).body["conferences"]]
    assert cid in [c["id"] for c in (await api.get("/conferences?state=all")).body["conferences"]]
    for bad in ("sleeping", "scheduled,,running", "scheduled%00"):
        bad_state = await api.get(f"/conferences?state={bad}")
        assert bad_state.status == 400 and bad_state.error["field"] == "state", bad

    patched = await api.call("PATCH", f"/conferences/{cid}", {
        "subject": "Quarterly review (moved)", "start": _later(180),
        "participants": [{"number": ANSWERS, "name": "Anna"}, {"number": ANSWERS_RTP, "name": "Boris"}]})
    assert patched.status == 200, patched.body
    assert patched.body["subject"] == "Quarterly review (moved)"
    assert sorted(p["number"] for p in patched.body["participants"]) == sorted([ANSWERS, ANSWERS_RTP])
    assert datetime.fromisoformat(patched.body["starts_at"]) > starts
    for bad, field in (({}, "body"), ({"subject": ""}, "subject"), ({"duration_minutes": -1}, "duration_minutes"),
                       ({"start": "2001-01-01T00:00:00Z"}, "start"), ({"owner_id": 1}, "owner_id")):
        reply = await api.call("PATCH", f"/conferences/{cid}", bad)
        assert reply.status == (422 if field == "subject" else 400), (bad, reply.body)  # 422: the text rule
        assert reply.error["field"] == field
    reply = await api.call("PATCH", f"/conferences/{cid}", {"max_participants": user.account.max_participants + 1})
    assert reply.status == 422

    deliveries = await api.get(f"/conferences/{cid}/deliveries")
    assert deliveries.status == 200
    anna = [d for d in deliveries.body["deliveries"] if d["email"] == "anna@example.org"]
    assert anna and anna[0]["kind"] == "invitation" and anna[0]["status"] in ("queued", "sent", "retrying", "failed")

    async with aiohttp.ClientSession() as session, session.get(
            api.url(f"/conferences/{cid}/events"), headers={"Authorization": f"Bearer {api.token}"}) as stream:
        assert stream.status == 200 and stream.content_type == "text/event-stream"
        assert await stream.content.readline() == b"retry: 2000\n"
        assert await stream.content.readline() == b"\n"
        assert await stream.content.readline() == b"event: snapshot\n"
        snapshot = json.loads((await stream.content.readline()).decode().removeprefix("data: "))
        assert snapshot["id"] == cid and snapshot["subject"] == "Quarterly review (moved)"
    record_operation("conference_events")

    log = await api.get(f"/conferences/{cid}/log")
    assert log.status == 200
    assert [e["kind"] for e in log.body["events"]][:2] == ["conference.scheduled", "conference.updated"]

    cancelled = await api.call("DELETE", f"/conferences/{cid}")
    assert cancelled.status == 200 and cancelled.body["state"] == "cancelled"
    again = await api.call("DELETE", f"/conferences/{cid}")
    assert again.status == 409 and again.error["code"] == "state_conflict"
    reply = await api.call("PATCH", f"/conferences/{cid}", {"subject": "too late"})
    assert reply.status == 409
    for action in ("lock", "unlock", "end"):
        reply = await api.post(f"/conferences/{cid}/{action}")
        assert reply.status == 409, action
    assert (await api.post(f"/conferences/{cid}/extend", {"minutes": 15})).status == 409
    assert (await api.get("/conferences/999999999")).status == 404


async def test_add_participant_to_scheduled_conference_does_not_dial(api) -> None:
    created = await api.post("/conferences", {"subject": "Later", "start": _later(), "duration_minutes": 30,
                                              "max_participants": 3})
    cid = created.body["id"]
    added = await api.post(f"/conferences/{cid}/participants", {"number": ANSWERS, "name": "Later one"})
    assert added.status == 201 and added.body["state"] == "planned"
    duplicate = await api.post(f"/conferences/{cid}/participants", {"number": ANSWERS})
    assert duplicate.status == 400
    for bad, field in (({"name": "no number"}, "number"), ({"number": "12ab"}, "number"),
                       ({"number": "37529000030"}, "participant.number"),
                       ({"number": ANSWERS_RTP, "invite": "yes"}, "invite")):
        reply = await api.post(f"/conferences/{cid}/participants", bad)
        assert reply.status == 400 and reply.error["field"] == field, reply.body
    reply = await api.post(f"/conferences/{cid}/participants/{added.body['id']}/invite")
    assert reply.status == 409  # not running yet
    assert (await api.call("DELETE", f"/conferences/{cid}")).status == 200


async def test_live_conference_control_end_to_end(api, engine, user, pstn) -> None:
    body = {"subject": "Live via API", "start": "now", "duration_minutes": 30, "max_participants": 5,
            "participants": [{"number": ANSWERS_RTP, "name": "Rita"}, {"number": BUSY, "name": "Busy"}]}
    async with BusWatcher(engine) as bus:
        created = await api.post("/conferences", body)
        assert created.status == 201, created.body
        cid = created.body["id"]
        assert created.body["state"] == "running"
        bus.conference_id = cid
        rita = next(p for p in created.body["participants"] if p["number"] == ANSWERS_RTP)
        busy = next(p for p in created.body["participants"] if p["number"] == BUSY)
        await bus.wait(connected(rita["id"]))
        await bus.wait(lambda e: e.kind == "participant.state" and e.participant_id == busy["id"]
                       and e.data.get("state") == "failed")

        state = await api.get(f"/conferences/{cid}")
        by_id = {p["id"]: p for p in state.body["participants"]}
        assert by_id[rita["id"]]["state"] == "connected" and by_id[rita["id"]]["joined_at"]
        assert by_id[busy["id"]]["state"] == "failed" and by_id[busy["id"]]["failure_reason"] == "busy"

        base = f"/conferences/{cid}/participants/{rita['id']}"
        assert (await api.post(base + "/mute")).status == 204
        assert {p["id"]: p for p in (await api.get(f"/conferences/{cid}")).body["participants"]}[
            rita["id"]]["muted"] is True
        assert (await api.post(base + "/unmute")).status == 204
        assert (await api.post(f"/conferences/{cid}/participants/{busy['id']}/mute")).status == 409
        assert (await api.post(f"/conferences/{cid}/participants/999999999/mute")).status == 404

        assert (await api.post(f"/conferences/{cid}/lock")).status == 204
        assert (await api.get(f"/conferences/{cid}")).body["locked"] is True
        assert (await api.post(f"/conferences/{cid}/unlock")).status == 204
        assert (await api.get(f"/conferences/{cid}")).body["locked"] is False

        ends_at = datetime.fromisoformat(state.body["ends_at"])
        extended = await api.post(f"/conferences/{cid}/extend", {"minutes": 15})
        assert extended.status == 200
        assert datetime.fromisoformat(extended.body["ends_at"]) > ends_at
        for bad in ({"minutes": 20}, {"minutes": "15"}, {}, {"minutes": 15, "why": 1}):
            reply = await api.post(f"/conferences/{cid}/extend", bad)
            assert reply.status == 400 and reply.error["field"], bad

        quality = await api.get(f"/conferences/{cid}/quality")
        assert quality.status == 200
        rows = {row["participant_id"]: row for row in quality.body["participants"]}
        assert rows[rita["id"]]["verdict"] in ("good", "fair", "poor", "unknown")

        added = await api.post(f"/conferences/{cid}/participants", {"number": "375290000301", "name": "Late"})
        assert added.status == 201, added.body
        await bus.wait(connected(added.body["id"]))

        assert (await api.post(base + "/kick")).status == 204
        await bus.wait(lambda e: e.kind == "participant.state" and e.participant_id == rita["id"]
                       and e.data.get("state") == "left")
        bus.events.clear()
        assert (await api.post(base + "/invite")).status == 204  # re-dial the kicked one
        await bus.wait(connected(rita["id"]))
        bus.events.clear()
        reply = await api.post(f"/conferences/{cid}/invite", {"participant_ids": [busy["id"]]})
        assert reply.status == 204
        await bus.wait(lambda e: e.kind == "participant.state" and e.participant_id == busy["id"]
                       and e.data.get("state") == "failed")
        for bad, field in (({"participant_ids": []}, "participant_ids"),
                           ({"participant_ids": ["1"]}, "participant_ids[0]"), ({}, "participant_ids")):
            reply = await api.post(f"/conferences/{cid}/invite", bad)
            assert reply.status == 400 and reply.error["field"] == field, reply.body
        reply = await api.post(f"/conferences/{cid}/invite", {"participant_ids": [999999999]})
        assert reply.status == 404

        ended = await api.post(f"/conferences/{cid}/end")
        assert ended.status == 200 and ended.body["state"] == "ended"
        assert all(p["state"] in ("left", "failed") for p in ended.body["participants"])
        assert (await api.post(f"/conferences/{cid}/end")).status == 409
        assert (await api.post(base + "/mute")).status == 409
        assert (await api.call("DELETE", f"/conferences/{cid}")).status == 409

    kinds = [e["kind"] for e in (await api.get(f"/conferences/{cid}/log")).body["events"]]
    for kind in ("conference.scheduled", "conference.started", "participant.muted", "conference.locked",
                 "conference.extended", "participant.kicked", "conference.ended"):
        assert kind in kinds, kinds

    today = datetime.now(ZoneInfo(user.account.timezone)).date().isoformat()
    history = await api.get(f"/history?from={today}&to={today}")
    assert history.status == 200
    assert cid in [c["id"] for c in history.body["conferences"]]
    found = next(c for c in history.body["conferences"] if c["id"] == cid)
    assert {p["number"] for p in found["participants"]} >= {ANSWERS_RTP, BUSY}
    default = await api.get("/history")
    assert cid in [c["id"] for c in default.body["conferences"]]


async def test_dial_out_rate_limit_is_429(engine, api_server, pstn) -> None:
    slow = await new_user(engine, api_server, max_dialouts_per_minute=1)
    async with BusWatcher(engine) as bus:
        created = await slow.api.post("/conferences", {"subject": "Rate", "start": "now", "duration_minutes": 10,
                                                       "max_participants": 2, "participants": [{"number": BUSY}]})
        assert created.status == 201, created.body
        busy = created.body["participants"][0]["id"]
        await bus.wait(lambda e: e.kind == "participant.state" and e.participant_id == busy
                       and e.data.get("state") == "failed")
    reply = await slow.api.post(f"/conferences/{created.body['id']}/participants/{busy}/invite")
    assert reply.status == 429 and reply.error["code"] == "rate_limited", reply.body
    assert (await slow.api.post(f"/conferences/{created.body['id']}/end")).status == 200


async def test_history_period_validation(api) -> None:
    for query, field in (("from=yesterday", "from"), ("to=2026-13-01", "to"),
                         ("from=2026-01-02&to=2026-01-01", "from"), ("from=0001-01-01", "from"),
                         ("to=2026-01-01%00", "to")):
        reply = await api.get(f"/history?{query}")
        assert reply.status == 400 and reply.error["field"] == field, (query, reply.body)
    reply = await api.get("/history?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z")
    assert reply.status == 200 and reply.body["conferences"] == []


# --- address book and templates --------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "good", "changed", "bad"), [
    ("contacts", {"name": "Olga", "number": "375291234567", "email": "olga@example.org"},
     {"name": "Olga P.", "number": "375291234568", "email": None},
     [({"number": "375291234567"}, "name"), ({"name": "X", "number": "+375291234567"}, "number"),
      ({"name": "X", "number": "375291234567", "email": "not-mail"}, "email"),
      ({"name": "X", "number": 375291234567}, "number")]),
    ("rooms", {"name": "Board room", "number": "375171234567", "location": "3rd floor"},
     {"name": "Board room B", "number": "375171234568", "location": ""},
     [({"name": "X"}, "number"), ({"name": "", "number": "375171234567"}, "name"),
      ({"name": "X", "number": "12 34"}, "number"), ({"name": "X", "number": "375171234567", "location": "a\tb"},
                                                     "location")]),
])
async def test_address_book_crud(api, kind, good, changed, bad) -> None:
    created = await api.post(f"/{kind}", good)
    assert created.status == 201, created.body
    item = created.body
    assert {k: item[k] for k in good} == good
    assert "owner_id" not in item
    listed = await api.get(f"/{kind}")
    assert item["id"] in [i["id"] for i in listed.body[kind]]
    searched = await api.get(f"/{kind}?search={good['name'][:3]}")
    assert item["id"] in [i["id"] for i in searched.body[kind]]
    assert (await api.get(f"/{kind}?search=zzzz-nothing")).body[kind] == []
    nul = await api.get(f"/{kind}?search=a%00b")
    assert nul.status == 400 and nul.error["field"] == "search"
    assert (await api.get(f"/{kind}/{item['id']}")).body == item
    updated = await api.call("PUT", f"/{kind}/{item['id']}", changed)
    assert updated.status == 200 and {k: updated.body[k] for k in changed} == changed
    for body, field in bad:
        status = 422 if field in ("name", "location") and field in body else 400  # the text rule answers 422
        reply = await api.post(f"/{kind}", body)
        assert reply.status == status and reply.error["field"] == field, (body, reply.body)
        reply = await api.call("PUT", f"/{kind}/{item['id']}", body)
        assert reply.status == status, body
    assert (await api.call("DELETE", f"/{kind}/{item['id']}")).status == 204
    assert (await api.get(f"/{kind}/{item['id']}")).status == 404
    assert (await api.call("DELETE", f"/{kind}/{item['id']}")).status == 404
    assert (await api.call("PUT", f"/{kind}/{item['id']}", changed)).status == 404


async def test_templates_crud_and_default(api) -> None:
    body = {"name": "Weekly", "subject": "Weekly sync", "duration_minutes": 30, "max_participants": 6,
            "auto_extend_minutes": 15, "reminder_minutes": 10,
            "participants": [{"number": ANSWERS, "name": "Anna", "email": None, "role": "chair"},
                             {"number": BUSY, "name": "Boris"}], "is_default": True}
    created = await api.post("/templates", body)
    assert created.status == 201, created.body
    template = created.body
    assert template["is_default"] is True and template["participants"][0]["number"] == ANSWERS
    assert [p["role"] for p in template["participants"]] == ["chair", "guest"]
    bad_role = await api.post("/templates", {"name": "Roles", "participants": [{"number": ANSWERS, "role": "boss"}]})
    assert bad_role.status == 400, bad_role.body
    other = await api.post("/templates", {"name": "Ad hoc"})
    assert other.status == 201 and other.body["is_default"] is False
    made_default = await api.call("PATCH", f"/templates/{other.body['id']}", {"is_default": True})
    assert made_default.status == 200 and made_default.body["is_default"] is True
    assert (await api.get(f"/templates/{template['id']}")).body["is_default"] is False
    listed = await api.get("/templates")
    assert {t["id"] for t in listed.body["templates"]} >= {template["id"], other.body["id"]}
    renamed = await api.call("PATCH", f"/templates/{template['id']}", {"name": "Weekly (new)",
                                                                        "duration_minutes": 60})
    assert renamed.status == 200 and renamed.body["name"] == "Weekly (new)" and renamed.body["duration_minutes"] == 60
    for bad, field in (({"subject": "no name"}, "name"), ({"name": "T", "auto_extend_minutes": 7},
                                                         "auto_extend_minutes"),
                       ({"name": "T", "participants": [{"number": "abc"}]}, "participants[0].number"),
                       ({"name": "T", "duration_minutes": 0}, "duration_minutes")):
        reply = await api.post("/templates", bad)
        assert reply.status == 400 and reply.error["field"] == field, (bad, reply.body)
    assert (await api.call("PATCH", f"/templates/{template['id']}", {})).status == 400
    assert (await api.call("DELETE", f"/templates/{template['id']}")).status == 204
    assert (await api.get(f"/templates/{template['id']}")).status == 404
    assert (await api.call("PATCH", f"/templates/{template['id']}", {"name": "gone"})).status == 404


async def test_start_now_add_without_invite_live_roles_and_ringing_hangup(api, engine, pstn) -> None:
    """A scheduled conference started early dials its planned participants; a participant added
    with invite false is never dialled; make chair / make guest change the member's ConfBridge
    profile (Admin, MarkedUser) while the call stays up; a ringing call can be hung up; manual
    extension stops at the cap."""
    early, later, joiner, ringing = "375290012100", "375290013100", "375290014100", "375290012408"
    body = {"subject": "Start me early", "start": _later(180), "duration_minutes": 30, "max_participants": 6,
            "auto_invite": True, "participants": [{"number": early, "name": "Early"}]}
    created = await api.post("/conferences", body)
    assert created.status == 201 and created.body["state"] == "scheduled", created.body
    cid = created.body["id"]
    early_id = created.body["participants"][0]["id"]
    mark = pstn.message_offset()
    async with BusWatcher(engine, cid) as bus:
        started = await api.post(f"/conferences/{cid}/start")
        assert started.status == 200, started.body
        assert started.body["state"] == "running"
        assert abs(datetime.fromisoformat(started.body["starts_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
        assert (await api.post(f"/conferences/{cid}/start")).status == 409
        await bus.wait(connected(early_id))
        assert early in [number for number, _ in pstn.invites(mark)]

        # add without dialling, then with: only the second reaches the far end
        quiet = await api.post(f"/conferences/{cid}/participants",
                               {"number": later, "name": "Later", "invite": False, "role": "chair"})
        assert quiet.status == 201 and quiet.body["state"] == "planned" and quiet.body["role"] == "chair"
        loud = await api.post(f"/conferences/{cid}/participants", {"number": joiner, "name": "Joiner"})
        assert loud.status == 201, loud.body
        await bus.wait(connected(loud.body["id"]))
        dialled = [number for number, _ in pstn.invites(mark)]
        assert joiner in dialled and later not in dialled

        # make chair, then guest: Asterisk's member flags follow, the same call stays in the room
        stored = await engine.services.planning.get(None, cid)
        room = stored.room
        call_id = next(p.call_id for p in stored.participants if p.id == early_id)

        async def member() -> dict[str, str]:
            members = {m.get("Uniqueid"): m for m in await engine.ami.confbridge_members(room)}
            assert call_id in members, list(members)
            return {"admin": members[call_id].get("Admin"), "marked": members[call_id].get("MarkedUser")}

        assert (await member())["marked"] == "No"  # a guest (an invited guest may be admin to pass a lock)
        assert (await api.post(f"/conferences/{cid}/participants/{early_id}/mute")).status == 204
        bus.events.clear()
        chair = await api.call("PATCH", f"/conferences/{cid}/participants/{early_id}", {"role": "chair"})
        assert chair.status == 200 and chair.body["role"] == "chair" and chair.body["state"] == "connected"
        await bus.wait(lambda e: e.kind == "participant.role" and e.participant_id == early_id
                       and e.data.get("role") == "chair")
        assert await member() == {"admin": "Yes", "marked": "Yes"}
        members = {m.get("Uniqueid"): m for m in await engine.ami.confbridge_members(room)}
        assert members[call_id].get("Muted") == "Yes"  # still muted after re-entering
        assert (await api.post(f"/conferences/{cid}/lock")).status == 204
        guest = await api.call("PATCH", f"/conferences/{cid}/participants/{early_id}", {"role": "guest"})
        assert guest.status == 200 and guest.body["role"] == "guest"
        assert (await member())["marked"] == "No"  # a guest again, back in the locked room
        assert not [e for e in bus.events if e.kind == "participant.state" and e.participant_id == early_id]
        assert [number for number, _ in pstn.invites(mark)].count(early) == 1  # never re-dialled
        for bad in ({"role": "boss"}, {}, {"role": "chair", "x": 1}):
            reply = await api.call("PATCH", f"/conferences/{cid}/participants/{early_id}", bad)
            assert reply.status == 400, (bad, reply.body)
        reply = await api.call("PATCH", f"/conferences/{cid}/participants/999999999", {"role": "chair"})
        assert reply.status == 404

        # a participant still ringing can be hung up
        rung = await api.post(f"/conferences/{cid}/participants", {"number": ringing, "name": "Ringing"})
        assert rung.status == 201, rung.body
        await bus.wait(lambda e: e.kind == "participant.state" and e.participant_id == rung.body["id"]
                       and e.data.get("state") == "ringing")
        assert (await api.post(f"/conferences/{cid}/participants/{rung.body['id']}/kick")).status == 204
        gone = next(p for p in (await api.get(f"/conferences/{cid}")).body["participants"]
                    if p["id"] == rung.body["id"])
        assert gone["state"] == "failed" and gone["failure_reason"] == "cancelled", gone

        # manual extension stops at the cap shared with auto-extension
        cap = (await engine.services.planning.get(None, cid)).extend_cap_minutes
        for _ in range(cap // 60):
            assert (await api.post(f"/conferences/{cid}/extend", {"minutes": 60})).status == 200
        refused = await api.post(f"/conferences/{cid}/extend", {"minutes": 15})
        assert refused.status == 422 and str(cap) in refused.error["message"], refused.body

        assert (await api.post(f"/conferences/{cid}/end")).status == 200
    kinds = [e["kind"] for e in (await api.get(f"/conferences/{cid}/log")).body["events"]]
    assert "conference.start_requested" in kinds and kinds.count("participant.role") == 2


async def test_error_bodies_never_carry_tracebacks(api) -> None:
    replies = [await api.post("/conferences", data="\x00"), await api.get("/conferences/0"),
               await api.post("/contacts", {"name": "A" * 5000, "number": "1" * 5000}),
               await api.post("/conferences", {"subject": "S", "duration_minutes": 2**40, "max_participants": 2**40})]
    for reply in replies:
        assert 400 <= reply.status < 500, reply.body
        assert "Traceback" not in str(reply.body) and set(reply.error) <= {"code", "message", "field"}


async def test_password_reset_is_public_and_answers_alike(api_server) -> None:
    anonymous = ApiClient(api_server)
    reply = await anonymous.post("/password-reset", {"phone": "375290000003"})
    assert reply.status == 202 and reply.body == {"status": "accepted"}
    bad = await anonymous.post("/password-reset/confirm", {"token": "x" * 43, "password": "a-long-password-1"})
    assert bad.status == 400 and bad.error["field"] == "link"


async def test_recording_routes_of_a_conference_that_is_not_running(api) -> None:
    """The recording routes answer with clear errors before there is anything to record (the
    recording itself, through real Asterisk, is in test_recording.py)."""
    created = await api.post("/conferences", {"subject": "Not yet", "start": _later(), "duration_minutes": 30,
                                              "max_participants": 3})
    cid = created.body["id"]
    listed = await api.get(f"/conferences/{cid}/recordings")
    assert listed.status == 200 and listed.body == {"recordings": []}
    assert (await api.post(f"/conferences/{cid}/recording/start")).status == 409  # not running
    assert (await api.post(f"/conferences/{cid}/recording/stop")).status == 409
    assert (await api.get("/recordings/999999999/file")).status == 404
    assert (await api.call("DELETE", "/recordings/999999999")).status == 404
    assert (await api.call("DELETE", f"/conferences/{cid}")).status == 200


async def test_series_and_permanent_room_routes(api) -> None:
    """Each series and permanent-room operation answers as described (their flows: test_series_api.py,
    test_permanent_room.py)."""
    created = await api.post("/series", {"subject": "Weekly", "start": _later(60 * 24), "duration_minutes": 30,
                                         "max_participants": 2,
                                         "recurrence": {"frequency": "weekly", "weekdays": ["mo"], "count": 2}})
    assert created.status == 201, created.body
    sid = created.body["id"]
    assert (await api.get("/series")).status == 200 and (await api.get(f"/series/{sid}")).status == 200
    assert (await api.call("PATCH", f"/series/{sid}", {"subject": "Weekly sync"})).status == 200
    assert (await api.post(f"/series/{sid}/pins")).status == 200
    assert (await api.call("DELETE", f"/series/{sid}")).status == 200
    room = await api.post("/permanent-rooms", {"subject": "My room", "max_participants": 2})
    assert room.status == 201, room.body
    rid = room.body["id"]
    assert (await api.get("/permanent-rooms")).status == 200
    assert (await api.get(f"/permanent-rooms/{rid}")).status == 200
    assert (await api.post(f"/permanent-rooms/{rid}/pins")).status == 200
    assert (await api.call("DELETE", f"/permanent-rooms/{rid}")).status == 200

