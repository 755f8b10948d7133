"""Recurring series through the JSON API and the real engine (Postgres, scheduler, Asterisk): a
weekly series ended after N occurrences is materialised with the right local times across a DST
change, one occurrence is changed or cancelled on its own, the whole series is changed, PINs
re-issued and the series cancelled; each occurrence has its own History entry and event log; the
account's concurrent-conference limit refuses a series that would exceed it, keeping nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.support.api import new_user

pytestmark = pytest.mark.stack

ANSWERS = "375290000100"
BERLIN = ZoneInfo("Europe/Berlin")


def _weekly_body(first: datetime, count: int = 4, **extra: object) -> dict:
    return {"subject": "Weekly planning", "start": first.isoformat(), "timezone": "Europe/Berlin",
            "duration_minutes": 30, "max_participants": 3, "auto_invite": False,
            "participants": [{"number": ANSWERS, "name": "Anna"}],
            "recurrence": {"frequency": "weekly", "weekdays": ["tu"], "count": count}, **extra}


async def test_weekly_series_until_n_this_one_and_the_whole_series(engine, api_server) -> None:
    user = await new_user(engine, api_server)
    api = user.api
    first = datetime(datetime.now(UTC).year + 1, 3, 16, 10, 0, tzinfo=BERLIN)  # summer time begins 28 March
    created = await api.post("/series", _weekly_body(first))
    assert created.status == 201, created.body
    series = created.body
    occurrences = series["conferences"]
    assert len(occurrences) == 4
    starts = [datetime.fromisoformat(c["starts_at"]) for c in occurrences]
    assert [s.astimezone(BERLIN).hour for s in starts] == [10, 10, 10, 10]
    assert [s.astimezone(UTC).hour for s in starts] == [9, 9, 8, 8]
    assert [(s - starts[0]).days for s in starts] == [0, 7, 13, 20]  # 7 days less one hour, twice
    assert {(c["conference_number"], c["chair_pin"], c["guest_pin"]) for c in occurrences} == {
        (series["conference_number"], series["chair_pin"], series["guest_pin"])}
    assert all(c["series_id"] == series["id"] and c["state"] == "scheduled" for c in occurrences)
    rows = await engine.pool.fetch("SELECT id, occurrence_at FROM conferences WHERE series_id = $1 ORDER BY starts_at",
                                   series["id"])
    assert [r["occurrence_at"] for r in rows] == starts
    assert series["id"] in [s["id"] for s in (await api.get("/series")).body["series"]]

    # this one: PATCH /conferences/{id} changes the one occurrence
    one, two = occurrences[0]["id"], occurrences[1]["id"]
    changed = await api.call("PATCH", f"/conferences/{one}", {"subject": "Planning with the board"})
    assert changed.status == 200 and changed.body["subject"] == "Planning with the board"
    assert await engine.pool.fetchval("SELECT occurrence_changed FROM conferences WHERE id = $1", one)

    # the whole series: every occurrence not changed on its own
    whole = await api.call("PATCH", f"/series/{series['id']}", {"duration_minutes": 45, "subject": "Planning"})
    assert whole.status == 200, whole.body
    by_id = {c["id"]: c for c in whole.body["conferences"]}
    assert by_id[one]["duration_minutes"] == 30 and by_id[one]["subject"] == "Planning with the board"
    assert {by_id[c["id"]]["duration_minutes"] for c in occurrences[1:]} == {45}
    refused = await api.call("PATCH", f"/series/{series['id']}", {"start": first.isoformat()})
    assert refused.status == 400

    # a leaked PIN: new PINs for every upcoming occurrence, the number stays
    reissued = await api.post(f"/series/{series['id']}/pins")
    assert reissued.status == 200
    assert reissued.body["conference_number"] == series["conference_number"]
    assert reissued.body["guest_pin"] != series["guest_pin"] or reissued.body["chair_pin"] != series["chair_pin"]
    assert {c["guest_pin"] for c in reissued.body["conferences"]} == {reissued.body["guest_pin"]}

    # cancel this one: the others stay; History shows the cancelled occurrence on its own
    cancelled = await api.call("DELETE", f"/conferences/{two}")
    assert cancelled.status == 200 and cancelled.body["state"] == "cancelled"
    after = (await api.get(f"/series/{series['id']}")).body["conferences"]
    assert [c["state"] for c in after] == ["scheduled", "cancelled", "scheduled", "scheduled"]
    window = f"from={(first - timedelta(days=1)).date()}&to={(first + timedelta(days=30)).date()}"
    history = await api.get(f"/history?{window}")
    assert history.status == 200
    assert [c["id"] for c in history.body["conferences"] if c.get("series_id") == series["id"]] == [two]

    # cancel the whole series
    gone = await api.call("DELETE", f"/series/{series['id']}")
    assert gone.status == 200 and gone.body["state"] == "cancelled"
    assert {c["state"] for c in gone.body["conferences"]} == {"cancelled"}
    assert series["id"] not in [s["id"] for s in (await api.get("/series")).body["series"]]
    again = await api.call("DELETE", f"/series/{series['id']}")
    assert again.status == 409


async def test_each_occurrence_runs_and_has_its_own_history_entry(engine, api_server) -> None:
    user = await new_user(engine, api_server)
    api = user.api
    first = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    created = await api.post("/series", {"subject": "Daily stand-up", "start": first.isoformat(),
                                         "duration_minutes": 15, "max_participants": 3, "auto_invite": False,
                                         "recurrence": {"frequency": "daily", "count": 2}})
    assert created.status == 201, created.body
    one, two = (c["id"] for c in created.body["conferences"])
    started = await api.post(f"/conferences/{one}/start")
    assert started.status == 200 and started.body["state"] == "running"
    ended = await api.post(f"/conferences/{one}/end")
    assert ended.status == 200 and ended.body["state"] == "ended"
    history = await api.get("/history")
    mine = [c for c in history.body["conferences"] if c.get("series_id") == created.body["id"]]
    assert [c["id"] for c in mine] == [one]
    log_one = [e["kind"] for e in (await api.get(f"/conferences/{one}/log")).body["events"]]
    log_two = [e["kind"] for e in (await api.get(f"/conferences/{two}/log")).body["events"]]
    assert "conference.started" in log_one and "conference.ended" in log_one
    assert log_two == ["conference.scheduled"]
    assert (await api.get(f"/conferences/{two}")).body["state"] == "scheduled"


async def test_series_beyond_the_concurrent_limit_is_refused_and_nothing_kept(engine, api_server) -> None:
    user = await new_user(engine, api_server)
    await engine.pool.execute("UPDATE accounts SET max_concurrent_conferences = 1 WHERE id = $1", user.account.id)
    api = user.api
    first = datetime(datetime.now(UTC).year + 1, 5, 4, 10, 0, tzinfo=BERLIN)
    single = await api.post("/conferences", {"subject": "One-off", "start": (first + timedelta(days=7)).isoformat(),
                                             "duration_minutes": 60, "max_participants": 2})
    assert single.status == 201, single.body
    refused = await api.post("/series", _weekly_body(first, count=3))
    assert refused.status in (409, 422, 429) and refused.error["code"] == "limit_exceeded", refused.body
    assert await engine.pool.fetchval("SELECT count(*) FROM conference_series WHERE owner_id = $1",
                                      user.account.id) == 0
    bad = await api.post("/series", {**_weekly_body(first), "recurrence": {"frequency": "weekly", "count": 2}})
    assert bad.status == 400 and bad.error["field"] == "recurrence.weekdays"
