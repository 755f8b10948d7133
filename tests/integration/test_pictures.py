"""The pictures through the real parts: a short conference with SIPp participants (one talking
with RTP audio under a hostile name, one dialled in), then the history detail's timeline has a
lane per participant with connected and talking spans, the network report a jitter and a loss
series per participant, the operator dashboard's load chart points; every label escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.config import Settings
from engine.domain.errors import ConfigError
from engine.domain.model import ConferencePlan, ParticipantPlan
from tests.support.pictures import HOSTILE_NAME, SVG_NS, pictured_conference, svg_of
from tests.support.portal import PASSWORD, PortalClient, new_account, random_account_phone

pytestmark = pytest.mark.stack

ESCAPED_NAME = "&lt;b&gt;&#34;&amp;&#39; Ann"


async def test_timeline_network_and_load_pictures(engine, sipp, api_server) -> None:
    owner = await new_account(engine, language="en")
    done = await pictured_conference(engine, sipp, owner.id)
    portal = PortalClient(str(api_server.make_url("/")), engine)
    try:
        await portal.login(owner.phone)
        detail = await portal.get(f"/history/{done.conference_id}")
        assert detail.status == 200
        assert HOSTILE_NAME not in detail.text and ESCAPED_NAME in detail.text
        timeline = svg_of(detail.text, "timeline")
        assert timeline.get("role") == "img" and timeline.find(f"{SVG_NS}title").text
        lanes = {g.get("data-lane"): g for g in timeline.iter(f"{SVG_NS}g") if g.get("data-lane")}
        assert set(lanes) == {str(done.callee_id), str(done.caller_id)}
        assert all(int(lane.get("data-spans")) >= 1 for lane in lanes.values())
        assert int(lanes[str(done.callee_id)].get("data-marks")) >= 1  # the RTP callee talked
        assert HOSTILE_NAME in "".join(lanes[str(done.callee_id)].itertext())  # shown as text, not markup

        report = await portal.get(f"/conferences/{done.conference_id}/quality")
        assert report.status == 200 and HOSTILE_NAME not in report.text
        for chart in ("jitter", "loss"):
            svg = svg_of(report.text, "line", chart)
            series = {g.get("data-series"): int(g.get("data-points")) for g in svg.iter(f"{SVG_NS}g")
                      if g.get("data-series")}
            assert set(series) == {str(done.callee_id), str(done.caller_id)}, (chart, series)
            assert all(points >= 1 for points in series.values()), (chart, series)

        stranger = PortalClient(str(api_server.make_url("/")), engine)
        try:
            other = await new_account(engine)
            await stranger.login(other.phone)
            assert (await stranger.get(f"/history/{done.conference_id}")).status == 404
            assert (await stranger.get(f"/conferences/{done.conference_id}/quality")).status == 404
        finally:
            await stranger.close()
    finally:
        await portal.close()

    operator = await engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator")
    desk = PortalClient(str(api_server.make_url("/")), engine)
    try:
        await desk.login(operator.phone)
        dashboard = await desk.get("/operator")
        assert dashboard.status == 200
        load = svg_of(dashboard.text, "line", "load")
        series = {g.get("data-series"): g for g in load.iter(f"{SVG_NS}g") if g.get("data-series")}
        assert set(series) == {"calls", "participants", "conferences"}
        assert all(int(g.get("data-points")) >= 1 for g in series.values())
        samples = await engine.services.pictures.load()
        assert max(s["participants"] for s in samples) >= 2 and max(s["calls"] for s in samples) >= 2
    finally:
        await desk.close()


async def test_samples_are_purged_after_the_retention(engine) -> None:
    pictures = engine.services.pictures
    owner = await new_account(engine)
    conference = await engine.services.planning.plan(owner.id, ConferencePlan(
        subject="old", start=datetime.now(UTC) + timedelta(days=1), duration_minutes=10, max_participants=2,
        participants=(ParticipantPlan("375290007201"),)))
    old = datetime.now(UTC) - timedelta(days=engine.settings.sample_retention_days, minutes=5)
    fresh = datetime.now(UTC)
    await engine.pool.execute("INSERT INTO load_samples (at, conferences, calls, participants) "
                              "VALUES ($1, 0, 0, 0) ON CONFLICT DO NOTHING", old)
    await pictures.repo.add_quality_samples(conference.id, old, [(conference.participants[0].id, 1.0, 0.0, 2.0, 4.4)])
    await pictures.repo.add_quality_samples(conference.id, fresh, [(conference.participants[0].id, 1.5, 0.0, 2.0, 4.4)])
    assert await pictures.purge() >= 2
    assert await engine.pool.fetchval("SELECT count(*) FROM load_samples WHERE at = $1", old) == 0
    assert [s["at"] for s in await pictures.repo.quality_samples(conference.id)] == [fresh]
    await engine.services.planning.cancel(owner.id, conference.id)


def test_sample_intervals_must_be_positive() -> None:
    assert Settings.from_env({"VECHE_QUALITY_SAMPLE_SECONDS": "2"}).quality_sample_seconds == 2
    for name in ("VECHE_QUALITY_SAMPLE_SECONDS", "VECHE_LOAD_SAMPLE_SECONDS", "VECHE_SAMPLE_RETENTION_DAYS"):
        with pytest.raises(ConfigError):
            Settings.from_env({name: "0"})
