"""Two editors and double submits against the real engine and PostgreSQL: a conference's version
as ETag / If-Match (412 for a stale edit, the other change kept), and Idempotency-Key on planning
(one conference for a repeated request, 422 for the key reused with another body)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.api import ApiClient, new_user

pytestmark = pytest.mark.stack


def _later(minutes: int = 180) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


@pytest.fixture(scope="module")
async def api(engine, api_server) -> ApiClient:
    return (await new_user(engine, api_server)).api


async def _plan(api: ApiClient, subject: str, **headers: str) -> object:
    return await api.post("/conferences", {"subject": subject, "start": _later(), "duration_minutes": 30,
                                           "max_participants": 3}, headers=headers or None)


async def test_a_stale_edit_is_refused_with_412_and_the_other_change_survives(api) -> None:
    created = await _plan(api, "Two tabs")
    assert created.status == 201
    conference_id, etag = created.body["id"], created.headers["ETag"]
    assert etag == f'"{created.body["version"]}"'
    read = await api.get(f"/conferences/{conference_id}")
    assert read.headers["ETag"] == etag
    # tab one saves first, with the version it read
    first = await api.call("PATCH", f"/conferences/{conference_id}", {"subject": "Tab one"},
                           headers={"If-Match": etag})
    assert first.status == 200 and first.body["subject"] == "Tab one"
    assert first.headers["ETag"] != etag and first.body["version"] > created.body["version"]
    # tab two still holds the old version: refused, and told the current one
    second = await api.call("PATCH", f"/conferences/{conference_id}", {"duration_minutes": 45},
                            headers={"If-Match": etag})
    assert second.status == 412 and second.error["code"] == "version_conflict"
    assert second.headers["ETag"] == first.headers["ETag"]
    now = await api.get(f"/conferences/{conference_id}")
    assert now.body["subject"] == "Tab one" and now.body["duration_minutes"] == 30
    # with the current version the second tab's change applies
    retried = await api.call("PATCH", f"/conferences/{conference_id}", {"duration_minutes": 45},
                             headers={"If-Match": second.headers["ETag"]})
    assert retried.status == 200
    assert retried.body["subject"] == "Tab one" and retried.body["duration_minutes"] == 45


async def test_if_match_is_optional_and_checked_for_form(api) -> None:
    created = await _plan(api, "Optional")
    conference_id = created.body["id"]
    plain = await api.call("PATCH", f"/conferences/{conference_id}", {"subject": "No header"})
    assert plain.status == 200 and plain.body["subject"] == "No header"
    star = await api.call("PATCH", f"/conferences/{conference_id}", {"subject": "Any"}, headers={"If-Match": "*"})
    assert star.status == 200
    weak = await api.call("PATCH", f"/conferences/{conference_id}", {"subject": "Weak"},
                          headers={"If-Match": f'W/{star.headers["ETag"]}'})
    assert weak.status == 412  # If-Match compares strongly: a weak tag never matches
    garbage = await api.call("PATCH", f"/conferences/{conference_id}", {"subject": "Bad"},
                             headers={"If-Match": "seven"})
    assert garbage.status == 400 and garbage.error["field"] == "If-Match"


async def test_an_idempotency_key_plans_once_and_replays_the_answer(api) -> None:
    key = str(uuid.uuid4())
    body = {"subject": "Retry safe", "start": _later(240), "duration_minutes": 30, "max_participants": 3}
    first = await api.post("/conferences", body, headers={"Idempotency-Key": key})
    assert first.status == 201 and "Idempotent-Replayed" not in first.headers
    again = await api.post("/conferences", dict(reversed(list(body.items()))), headers={"Idempotency-Key": key})
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.body["id"] == first.body["id"] and again.headers["Location"] == first.headers["Location"]
    other = await api.post("/conferences", {**body, "subject": "Something else"}, headers={"Idempotency-Key": key})
    assert other.status == 422 and other.error["code"] == "idempotency_key_reused"
    listed = await api.get("/conferences")
    assert [c["id"] for c in listed.body["conferences"] if c["subject"] == "Retry safe"] == [first.body["id"]]


async def test_simultaneous_requests_with_one_key_plan_one_conference(api) -> None:
    key = str(uuid.uuid4())
    body = {"subject": "Double click", "start": _later(300), "duration_minutes": 30, "max_participants": 3}
    replies = await asyncio.gather(*[api.post("/conferences", body, headers={"Idempotency-Key": key})
                                     for _ in range(4)])
    assert {r.status for r in replies} <= {201, 409}
    ids = {r.body["id"] for r in replies if r.status == 201}
    assert len(ids) == 1
    for refused in (r for r in replies if r.status == 409):
        assert refused.error["code"] == "idempotency_in_progress"
    listed = await api.get("/conferences")
    assert len([c for c in listed.body["conferences"] if c["subject"] == "Double click"]) == 1


async def test_a_failed_request_does_not_keep_its_key_and_bad_keys_are_refused(api) -> None:
    key = str(uuid.uuid4())
    refused = await api.post("/conferences", {"subject": "Too many", "start": _later(), "duration_minutes": 30,
                                              "max_participants": 100000}, headers={"Idempotency-Key": key})
    assert refused.status in (400, 422)
    fixed = await api.post("/conferences", {"subject": "Fixed", "start": _later(360), "duration_minutes": 30,
                                            "max_participants": 3}, headers={"Idempotency-Key": key})
    assert fixed.status == 201 and "Idempotent-Replayed" not in fixed.headers
    bad = await api.post("/conferences", {"subject": "Bad key", "start": _later(), "duration_minutes": 30,
                                          "max_participants": 3}, headers={"Idempotency-Key": "x" * 256})
    assert bad.status == 400 and bad.error["field"] == "Idempotency-Key"
