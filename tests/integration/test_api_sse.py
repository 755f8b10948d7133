"""The live stream GET /api/v1/conferences/{id}/events: a conference created through the API and
dialled into by a SIPp caller (access number, conference number #, guest PIN #) shows up live in
its owner's Server-Sent Events stream; a reconnecting client gets the current state as a snapshot;
the bus subscription ends when the client goes away."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.support.api import ApiUser, new_user

pytestmark = pytest.mark.stack


@dataclass
class SseEvent:
    name: str
    data: Any


class SseStream:
    """Reads an event stream the way EventSource does (named events, data lines, comments)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments = 0

    async def next(self, timeout: float = 20.0) -> SseEvent:
        async def read() -> SseEvent:
            name, data = "message", []
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("the stream ended")
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        return SseEvent(name, json.loads("\n".join(data)))
                    name = "message"
                    continue
                if line.startswith(":"):
                    self.comments += 1
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())

        return await asyncio.wait_for(read(), timeout)

    async def until(self, predicate, timeout: float = 20.0) -> SseEvent:
        seen = []

        async def scan() -> SseEvent:
            while True:
                event = await self.next(timeout)
                seen.append(event)
                if predicate(event):
                    return event

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise AssertionError(f"no matching event in {timeout}s; saw {seen}") from None


async def open_stream(session: aiohttp.ClientSession, user: ApiUser, conference_id: int) -> SseStream:
    response = await session.get(user.api.url(f"/conferences/{conference_id}/events"),
                                 headers={"Authorization": f"Bearer {user.token}", "Accept": "text/event-stream"})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return SseStream(response)


@pytest.fixture(scope="module")
async def owner(engine, api_server) -> ApiUser:
    return await new_user(engine, api_server)


async def test_dial_in_caller_shows_up_live_in_the_owners_stream(engine, api_server, owner, sipp) -> None:
    created = await owner.api.post("/conferences", {"subject": "Dial-in live", "start": "now",
                                                    "duration_minutes": 30, "max_participants": 5})
    assert created.status == 201, created.body
    conference = created.body
    baseline = engine.bus.subscriber_count
    caller = None
    async with aiohttp.ClientSession() as session:
        stream = await open_stream(session, owner, conference["id"])
        snapshot = await stream.next()
        assert snapshot.name == "snapshot"
        assert snapshot.data["id"] == conference["id"] and snapshot.data["state"] == "running"
        assert snapshot.data["participants"] == []
        assert engine.bus.subscriber_count == baseline + 1

        caller = await sipp.caller(f"{conference['conference_number']}#,{conference['guest_pin']}#",
                                   caller="375291119999")
        try:
            joined = await stream.until(lambda e: e.name == "message" and e.data["kind"] == "participant.state"
                                        and e.data["data"].get("state") == "connected")
            assert joined.data["conference_id"] == conference["id"]
            participant_id = joined.data["participant_id"]
            assert participant_id

            # a console that reconnects sees the current state at once
            async with aiohttp.ClientSession() as second_session:
                again = await open_stream(second_session, owner, conference["id"])
                current = await again.next()
                assert current.name == "snapshot"
                by_id = {p["id"]: p for p in current.data["participants"]}
                assert by_id[participant_id]["state"] == "connected"
                assert by_id[participant_id]["origin"] == "dialin"
                assert by_id[participant_id]["number"] == "375291119999"
                again.response.close()

            muted = await owner.api.post(f"/conferences/{conference['id']}/participants/{participant_id}/mute")
            assert muted.status == 204
            await stream.until(lambda e: e.data.get("kind") == "participant.muted"
                               and e.data["participant_id"] == participant_id)
            ended = await owner.api.post(f"/conferences/{conference['id']}/end")
            assert ended.status == 200
            await stream.until(lambda e: e.data.get("kind") == "conference.ended")
        finally:
            await caller.stop()
        stream.response.close()

    await _until(lambda: engine.bus.subscriber_count == baseline, "the stream's bus subscription ended")


async def test_stream_sends_heartbeats_and_works_with_the_session_cookie(engine, api_server, owner) -> None:
    from web.sessions import COOKIE_NAME

    created = await owner.api.post("/conferences", {"subject": "Quiet", "start": "now", "duration_minutes": 10,
                                                    "max_participants": 2})
    cid = created.body["id"]
    cookie = await engine.services.accounts.save_session(None, owner.account.id,
                                                            {"account_id": owner.account.id})
    baseline = engine.bus.subscriber_count
    async with aiohttp.ClientSession(cookies={COOKIE_NAME: cookie}) as browser:
        async with browser.get(owner.api.url(f"/conferences/{cid}/events")) as response:
            assert response.status == 200
            stream = SseStream(response)
            assert (await stream.next()).name == "snapshot"
            locked = await owner.api.post(f"/conferences/{cid}/lock")
            assert locked.status == 204
            event = await stream.until(lambda e: e.data.get("kind") == "conference.locked")
            assert event.name == "message" and event.data["conference_id"] == cid
            comments_before = stream.comments
            # no events for a while: heartbeats (every 0.5 s in tests) keep the stream alive
            with pytest.raises(TimeoutError):
                await stream.next(timeout=1.5)
            assert stream.comments > comments_before
            assert engine.bus.subscriber_count == baseline + 1
    await _until(lambda: engine.bus.subscriber_count == baseline, "the cookie stream's subscription ended")
    await owner.api.post(f"/conferences/{cid}/end")


async def test_stream_refuses_strangers_and_unknown_conferences(engine, api_server, owner) -> None:
    created = await owner.api.post("/conferences", {"subject": "Private", "start": "now", "duration_minutes": 10,
                                                    "max_participants": 2})
    cid = created.body["id"]
    stranger = await new_user(engine, api_server)
    baseline = engine.bus.subscriber_count
    reply = await stranger.api.get(f"/conferences/{cid}/events")
    assert reply.status == 404 and reply.error["code"] == "not_found"
    reply = await owner.api.get("/conferences/999999999/events")
    assert reply.status == 404
    async with aiohttp.ClientSession() as anonymous, \
            anonymous.get(owner.api.url(f"/conferences/{cid}/events")) as response:
        assert response.status == 401
    assert engine.bus.subscriber_count == baseline
    await owner.api.post(f"/conferences/{cid}/end")


async def _until(condition, what: str, timeout: float = 10.0) -> None:
    """Poll a condition that no event announces (the server noticing a closed connection)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
