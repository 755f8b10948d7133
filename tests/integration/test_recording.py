"""Recording through the real parts: SIPp callees sending RTP audio in a recorded conference on
Asterisk 22 (recorder channel + MixMonitor), the file converted by ffmpeg, downloaded through the
API (whole and by range) and measured with ffprobe; owner-only access, deletion, the retention
purge, the operator's per-account ban and the chair's keypad *7."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import aiohttp
import pytest

from engine.domain import keypad as rules
from tests.integration.test_keypad import press, start_with_caller
from tests.support.api import PASSWORD as API_PASSWORD
from tests.support.api import ApiUser, new_user
from tests.support.factories import random_phone, wait_until
from tests.support.portal import PortalClient
from web.i18n import load_catalogs

pytestmark = pytest.mark.stack

TIMEOUT = 40


def talker() -> str:
    """A number the SIPp trunk answers with RTP audio (tests/sipp/pstn.xml: ...201)."""
    return f"375290{secrets.randbelow(1000):03d}201"


@pytest.fixture
async def owner(engine, api_server) -> ApiUser:
    return await new_user(engine, api_server)


async def recordings(owner: ApiUser, conference_id: int) -> list[dict]:
    reply = await owner.api.get(f"/conferences/{conference_id}/recordings")
    assert reply.status == 200, reply.body
    return reply.body["recordings"]


async def logged(engine, conference_id: int, kind: str, **detail) -> list[dict]:
    events = await engine.services.planning.events(None, conference_id)
    return [e for e in events if e["kind"] == kind and all(e["detail"].get(k) == v for k, v in detail.items())]


async def wait_audio(engine, recording_id: int, seconds: float) -> None:
    """Until the raw file holds ``seconds`` of 8 kHz 16-bit audio."""
    service = engine.services.recording

    async def grown():
        row = await service.repo.get(recording_id, None)
        if not row or not row["raw_path"]:
            return False
        path = service.host_path(row["raw_path"])
        return path.exists() and path.stat().st_size > 44 + seconds * 16000

    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not await grown():
        assert asyncio.get_running_loop().time() < deadline, "the recording did not grow"
        await asyncio.sleep(0.5)  # the file grows without bus events: poll it


async def download(api_server, owner: ApiUser, recording_id: int, headers: dict | None = None):
    url = str(api_server.make_url(f"/api/v1/recordings/{recording_id}/file"))
    async with aiohttp.ClientSession() as session, session.get(
            url, headers={"Authorization": f"Bearer {owner.token}", **(headers or {})}) as response:
        return response.status, response.headers, await response.read()


async def duration_of(data: bytes, tmp_path) -> float:
    path = tmp_path / "download.ogg"
    path.write_bytes(data)
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert process.returncode == 0
    return float(out)


async def mean_volume(path) -> float:
    """The file's mean volume in dB (ffmpeg's volumedetect decodes it)."""
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-i", str(path), "-af", "volumedetect", "-f", "null", "-",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await process.communicate()
    line = next(x for x in err.decode().splitlines() if "mean_volume:" in x)
    return float(line.split("mean_volume:")[1].split()[0])


async def test_recorded_conference(engine, api_server, owner: ApiUser, tmp_path) -> None:
    created = await owner.api.post("/conferences", {
        "subject": "Recorded", "start": "now", "duration_minutes": 30, "max_participants": 4,
        "recording": True, "participants": [{"number": talker()}]})
    assert created.status == 201, created.body
    cid = created.body["id"]
    assert created.body["recording"] is True
    first = await wait_until(engine, lambda: _one(owner, cid, "recording"), timeout=TIMEOUT, what="recording")
    await wait_until(engine, lambda: logged(engine, cid, "recording.announced", **{"for": "room"}),
                     timeout=TIMEOUT, what="the room hears the notice")
    await wait_audio(engine, first["id"], 2)

    late = await owner.api.post(f"/conferences/{cid}/participants", {"number": talker()})
    assert late.status == 201, late.body
    await wait_until(engine, lambda: logged(engine, cid, "recording.announced", **{"for": "joiner"}),
                     timeout=TIMEOUT, what="the late joiner hears the notice")
    assert (await owner.api.post(f"/conferences/{cid}/recording/start")).status == 409  # recorded already
    # two stops at once: one stops it, the other finds nothing recording; a start right after
    # the stop records anew
    stops = await asyncio.gather(*(owner.api.post(f"/conferences/{cid}/recording/stop") for _ in range(2)))
    assert sorted(reply.status for reply in stops) == [204, 409]
    second = await owner.api.post(f"/conferences/{cid}/recording/start")
    assert second.status == 201, second.body
    await wait_audio(engine, second.body["id"], 1)
    assert (await owner.api.post(f"/conferences/{cid}/end")).status == 200

    async def both_ready():
        rows = await recordings(owner, cid)
        return rows if len(rows) == 2 and all(r["state"] == "ready" for r in rows) else None

    rows = await wait_until(engine, both_ready, timeout=TIMEOUT, what="two converted recordings")
    one = rows[0]
    assert one["size_bytes"] > 0 and one["duration_seconds"] >= 2

    status, headers, data = await download(api_server, owner, one["id"])
    assert status == 200 and len(data) == one["size_bytes"] and headers["Content-Type"] == "audio/ogg"
    assert abs(await duration_of(data, tmp_path) - one["duration_seconds"]) < 0.5
    assert await mean_volume(tmp_path / "download.ogg") > -40  # the callees' audio, not silence
    status, headers, part = await download(api_server, owner, one["id"], {"Range": "bytes=100-199"})
    assert status == 206 and part == data[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"

    stranger = await new_user(engine, api_server)
    assert (await download(api_server, stranger, one["id"]))[0] == 404
    assert (await stranger.api.get(f"/recordings/{one['id']}/file")).error["code"] == "not_found"
    assert (await stranger.api.get(f"/conferences/{cid}/recordings")).status == 404
    assert (await stranger.api.call("DELETE", f"/recordings/{one['id']}")).status == 404

    assert (await owner.api.call("DELETE", f"/recordings/{one['id']}")).status == 204
    assert (await download(api_server, owner, one["id"]))[0] == 404
    assert not list(engine.settings.recordings.glob(f"{one['id']}-*"))

    other = rows[1]
    service = engine.services.recording
    assert await service.purge() == 0
    days = engine.settings.recording_retention_days
    await engine.pool.execute("UPDATE recordings SET created_at = now() - $2::interval WHERE id = $1",
                              other["id"], timedelta(days=days, minutes=1))
    assert await service.purge() >= 1
    assert await recordings(owner, cid) == []
    assert not list(engine.settings.recordings.glob(f"{other['id']}-*"))


async def _one(owner: ApiUser, cid: int, state: str):
    rows = [r for r in await recordings(owner, cid) if r["state"] == state]
    return rows[0] if rows else None


async def test_a_lost_recorder_never_stops_the_conference(engine, api_server, owner: ApiUser) -> None:
    """The node drops the recorder: the conference runs on, the card and the log say why, and
    what was recorded is kept."""
    created = await owner.api.post("/conferences", {
        "subject": "Recorder lost", "start": "now", "duration_minutes": 10, "max_participants": 2,
        "recording": True, "participants": [{"number": talker()}]})
    cid = created.body["id"]
    row = await wait_until(engine, lambda: _one(owner, cid, "recording"), timeout=TIMEOUT, what="recording")
    await wait_audio(engine, row["id"], 1)
    await engine.ami.hangup(row_call_id := await engine.pool.fetchval(
        "SELECT call_id FROM recordings WHERE id = $1", row["id"]))
    assert row_call_id.startswith("rc-")
    await wait_until(engine, lambda: logged(engine, cid, "recording.failed"), timeout=TIMEOUT, what="the failure")
    body = (await owner.api.get(f"/conferences/{cid}")).body
    assert body["state"] == "running" and body["recording_error"] == "the recorder left the room"
    assert [p["state"] for p in body["participants"]] == ["connected"]
    client = PortalClient(str(api_server.make_url("/")), engine)
    try:
        await client.login(owner.account.phone, API_PASSWORD)
        card = await client.get(f"/conferences/{cid}")
        shown = load_catalogs()[owner.account.language].gettext("the recorder left the room")
        assert "data-recording-error" in card.text and shown in card.text
    finally:
        await client.close()
    await wait_until(engine, lambda: _one(owner, cid, "ready"), timeout=TIMEOUT, what="the kept part")
    assert (await owner.api.post(f"/conferences/{cid}/end")).status == 200


async def test_operator_forbids_recording(engine, api_server, owner: ApiUser) -> None:
    operator = await new_user(engine, api_server, role="operator")
    changed = await operator.api.call("PATCH", f"/operator/accounts/{owner.account.id}", {"recording_allowed": False})
    assert changed.status == 200 and changed.body["recording_allowed"] is False, changed.body
    refused = await owner.api.post("/conferences", {
        "subject": "Not allowed", "start": "now", "duration_minutes": 5, "max_participants": 2, "recording": True})
    assert refused.status == 403 and "recording" in refused.error["message"]
    created = await owner.api.post("/conferences", {
        "subject": "Not allowed", "start": "now", "duration_minutes": 5, "max_participants": 2})
    assert created.status == 201
    cid = created.body["id"]
    started = await owner.api.post(f"/conferences/{cid}/recording/start")
    assert started.status == 403 and "operator" in started.error["message"]
    assert (await owner.api.post(f"/conferences/{cid}/end")).status == 200


async def test_chair_keypad_starts_and_stops_recording(engine, sipp, api_server, owner: ApiUser) -> None:
    conference, caller, chair_id = await start_with_caller(engine, sipp, owner, "chair_pin", ["*7", "*7"])
    cid = conference["id"]
    try:
        answer = await press(engine, caller, chair_id)
        assert answer.said == [rules.SAY_RECORDING] and answer.error is None, answer
        assert (await _one(owner, cid, "recording")) is not None
        answer = await press(engine, caller, chair_id)
        assert answer.said == [rules.SAY_RECORDING_STOPPED], answer
        assert (await _one(owner, cid, "recording")) is None
        log = (await owner.api.get(f"/conferences/{cid}/log")).body["events"]
        actors = {(e["kind"], e["actor"]) for e in log}
        assert ("recording.started", f"keypad:{chair_id}") in actors
        assert ("recording.stopped", f"keypad:{chair_id}") in actors
    finally:
        await owner.api.post(f"/conferences/{cid}/end")
        await caller.stop()


async def test_templates_carry_the_recording_choice(owner: ApiUser) -> None:
    created = await owner.api.post("/templates", {"name": "Recorded board", "recording": True})
    assert created.status == 201 and created.body["recording"] is True, created.body
    changed = await owner.api.call("PATCH", f"/templates/{created.body['id']}", {"recording": False})
    assert changed.status == 200 and changed.body["recording"] is False


async def test_operator_page_switches_recording_per_account(engine, api_server, owner: ApiUser) -> None:
    operator = await engine.services.accounts.create(random_phone(), API_PASSWORD, role="operator")
    client = PortalClient(str(api_server.make_url("/")), engine)
    try:
        await client.login(operator.phone, API_PASSWORD)
        page = await client.get(f"/operator/accounts/{owner.account.id}")
        assert 'name="recording_allowed" checked' in page.text
        await client.post(f"/operator/accounts/{owner.account.id}", {"recording_field": "1"})  # unticked
        assert not await engine.services.recording.repo.recording_allowed(owner.account.id)
        page = await client.get(f"/operator/accounts/{owner.account.id}")
        await client.post(f"/operator/accounts/{owner.account.id}", {"recording_field": "1", "recording_allowed": "on"})
        assert await engine.services.recording.repo.recording_allowed(owner.account.id)
    finally:
        await client.close()
