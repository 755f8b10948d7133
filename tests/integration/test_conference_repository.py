"""The conference repository against the real PostgreSQL: a new plan of a scheduled conference
(its row, its planned participants and its log entry) is applied whole or not at all, and dial-in
callers and dial-out slots keep to the one mapper of participant rows."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from engine.adapters.db import create_pool
from engine.adapters.db.accounts import AccountRepository
from engine.adapters.db.conferences import (
    SYSTEM_CALLS_LOCK,
    CallSlotRepository,
    ConferenceRepository,
    LogEntry,
    OverLimit,
    SlotRequest,
)
from engine.adapters.db.lease import Fence
from engine.domain.errors import NotActiveEngine
from engine.domain.model import Conference, Role
from tests.support.database import new_database
from tests.support.dialin_factories import random_caller, random_digits
from tests.support.factories import create_account

NODE = "repo-node"  # no engine runs this node: nothing but the test touches these rows


@pytest.fixture(scope="module")
async def repo_database(database_url: str) -> str:
    return await new_database(database_url, "veche_repo")


@pytest.fixture
async def pool(repo_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(repo_database, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def planned(repo: ConferenceRepository, owner_id: int, *, hours: int = 24,
                  numbers: tuple[str, ...] = ("375290001001", "375290001002")) -> Conference:
    starts_at = (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0)
    chair_pin, guest_pin = "1" + random_digits(5), "2" + random_digits(5)
    return await repo.insert_conference(
        dict(owner_id=owner_id, subject="Before", node_id=NODE, room=f"veche-r{secrets.token_hex(6)}",
             conference_number=random_digits(9), chair_pin=chair_pin, guest_pin=guest_pin, starts_at=starts_at,
             duration_minutes=30, ends_at=starts_at + timedelta(minutes=30), max_participants=10),
        [dict(number=n, name=f"P{i}", node_id=NODE) for i, n in enumerate(numbers)])


def new_fields(conference: Conference, subject: str = "After") -> dict:
    starts_at = conference.starts_at + timedelta(hours=1)
    return dict(subject=subject, starts_at=starts_at, duration_minutes=45, ends_at=starts_at + timedelta(minutes=45))


def snapshot(conference: Conference) -> tuple:
    return (conference.subject, conference.starts_at, conference.ends_at, conference.duration_minutes,
            conference.version, [(p.id, p.number, p.name, str(p.state)) for p in conference.participants])


async def test_a_new_plan_that_fails_halfway_changes_nothing(pool: asyncpg.Pool) -> None:
    repo = ConferenceRepository(pool)
    owner = await create_account(pool)
    conference = await planned(repo, owner)
    before = await repo.get(conference.id)
    assert before is not None and len(before.participants) == 2

    with pytest.raises(asyncpg.CheckViolationError):  # the second participant's number is no number
        await repo.replan(conference.id, owner, new_fields(conference),
                          participants=[dict(number="375290001003", node_id=NODE),
                                        dict(number="not-a-number", node_id=NODE)],
                          event="conference.updated", actor=f"account:{owner}", detail={"changed": ["subject"]})

    after = await repo.get(conference.id)
    assert after is not None
    assert snapshot(after) == snapshot(before)
    assert "conference.updated" not in [e["kind"] for e in await repo.events(conference.id)]


async def test_a_new_plan_over_the_limit_changes_nothing(pool: asyncpg.Pool) -> None:
    repo = ConferenceRepository(pool)
    owner = await create_account(pool, max_concurrent_conferences=1)
    first = await planned(repo, owner, hours=24)
    second = await planned(repo, owner, hours=48)
    before = await repo.get(second.id)
    assert before is not None
    overlapping = dict(subject="Clash", starts_at=first.starts_at, duration_minutes=30, ends_at=first.ends_at)
    with pytest.raises(OverLimit):
        await repo.replan(second.id, owner, overlapping, participants=[dict(number="375290001009")])
    after = await repo.get(second.id)
    assert after is not None and snapshot(after) == snapshot(before)


async def test_a_new_plan_is_applied_whole(pool: asyncpg.Pool) -> None:
    repo = ConferenceRepository(pool)
    owner = await create_account(pool)
    conference = await planned(repo, owner)
    caller = await repo.add_caller(conference.id, number=random_caller(), role=Role.GUEST,
                                   call_id=f"test-{secrets.token_hex(6)}", channel=None, node_id=NODE)

    updated = await repo.replan(conference.id, owner, new_fields(conference),
                                participants=[dict(number="375290001007", name="New", node_id=NODE)],
                                version=conference.version, event="conference.updated",
                                actor=f"account:{owner}", detail={"changed": ["participants", "subject"]})

    assert updated is not None and updated.subject == "After" and updated.version == conference.version + 1
    after = await repo.get(conference.id)
    assert after is not None
    assert sorted(p.number for p in after.participants) == sorted(["375290001007", caller.number])
    assert [p.id for p in after.participants if p.number == caller.number] == [caller.id]  # a caller stays
    updates = [e for e in await repo.events(conference.id) if e["kind"] == "conference.updated"]
    assert [e["detail"] for e in updates] == [{"changed": ["participants", "subject"]}]


async def test_a_new_plan_from_an_old_version_is_refused(pool: asyncpg.Pool) -> None:
    repo = ConferenceRepository(pool)
    owner = await create_account(pool)
    conference = await planned(repo, owner)
    assert await repo.update(conference.id, subject="Changed meanwhile") is not None
    before = await repo.get(conference.id)
    assert before is not None

    refused = await repo.replan(conference.id, owner, new_fields(conference), version=conference.version,
                                participants=[], event="conference.updated")

    assert refused is None
    after = await repo.get(conference.id)
    assert after is not None and snapshot(after) == snapshot(before)


async def test_claimed_slots_and_callers_read_as_participants(pool: asyncpg.Pool) -> None:
    repo = ConferenceRepository(pool)
    owner = await create_account(pool)
    conference = await planned(repo, owner, numbers=("375290001011",))
    running = await repo.transition(conference.id, ["scheduled"], "running", started_at=datetime.now(UTC))
    assert running is not None
    planned_one = conference.participants[0]
    grant = await CallSlotRepository(pool).claim(
        owner, conference.id, [SlotRequest(planned_one.id, "test-slot", 1, NODE, planned_one.number)],
        system_cap=100, from_states=["planned"], actor="engine", all_or_nothing=True)
    assert [(p.id, p.state, p.call_id) for p in grant.claimed] == [(planned_one.id, "calling", "test-slot")]
    assert await repo.participant_by_call_id("test-slot") == grant.claimed[0]
    caller = await repo.add_caller(conference.id, number=random_caller(), role=Role.CHAIR, call_id="test-caller",
                                   channel="PJSIP/x-1", node_id=NODE)
    assert await repo.get_participant(caller.id) == caller
    assert (caller.origin, caller.state, caller.attempts, caller.role) == ("dialin", "calling", 1, "chair")
    assert await repo.seats_taken(conference.id) == 1  # the caller on its way in; a dial-out ringing is not seated


async def test_an_immediate_plan_and_its_call_slots_are_one_commit(pool: asyncpg.Pool) -> None:
    """A dial-out's durable intent: the running conference, its participants (as many calling as
    the limits allow, the rest planned) and its log entries in one transaction; an engine without
    the live lease token stores none of it."""
    owner = await create_account(pool, max_dialouts_per_minute=2)
    numbers = ("375290001021", "375290001022", "375290001023")
    now = datetime.now(UTC)

    def fields() -> dict:
        return dict(owner_id=owner, subject="Now", node_id=NODE, room=f"veche-r{secrets.token_hex(6)}",
                    conference_number=random_digits(9), chair_pin="1" + random_digits(5),
                    guest_pin="2" + random_digits(5), starts_at=now, duration_minutes=30,
                    ends_at=now + timedelta(minutes=30), max_participants=10, state="running", started_at=now)

    plans = [dict(number=n, name="", node_id=NODE) for n in numbers]
    events = [LogEntry("conference.scheduled", "test"), LogEntry("conference.started")]
    fenced = CallSlotRepository(pool, Fence(enabled=True))  # holds no token: a standby
    with pytest.raises(NotActiveEngine):
        await fenced.open_and_claim(fields(), plans, events, call_ids=["x1", "x2", "x3"], system_cap=100, actor="t")
    assert await pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1", owner) == 0

    ids = [f"vo-{secrets.token_hex(6)}" for _ in numbers]
    conference, grant = await CallSlotRepository(pool).open_and_claim(
        fields(), plans, events, call_ids=ids, system_cap=100, actor="engine")
    assert (conference.state, grant.bound_by, grant.room) == ("running", "max_dialouts_per_minute", 2)
    stored = await ConferenceRepository(pool).get(conference.id)
    assert stored is not None and stored.participants == conference.participants
    assert [(p.number, p.state, p.call_id, p.attempts) for p in stored.participants] == [
        (numbers[0], "calling", ids[0], 1), (numbers[1], "calling", ids[1], 1), (numbers[2], "planned", None, 0)]
    log = await ConferenceRepository(pool).events(conference.id)
    assert [e["kind"] for e in log] == ["conference.scheduled", "conference.started", "participant.dialing",
                                        "participant.dialing"]
    assert [e["detail"].get("number") for e in log[2:]] == list(numbers[:2])

    # the account's concurrent conferences are counted under the same locks: one more that
    # overlaps this one is refused, and nothing of it is stored
    await pool.execute("UPDATE accounts SET max_concurrent_conferences = 1 WHERE id = $1", owner)
    with pytest.raises(OverLimit) as refused:
        await CallSlotRepository(pool).open_and_claim(fields(), plans, events, call_ids=["y1", "y2", "y3"],
                                                      system_cap=100, actor="engine")
    assert (refused.value.limit, refused.value.allowed, refused.value.current) == ("max_concurrent_conferences", 1, 1)
    assert await pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1", owner) == 1


async def test_the_tightest_dial_out_limit_binds_and_a_tie_names_the_accounts_own(pool: asyncpg.Pool) -> None:
    """dialout_grant (sql/028_dialout_grant.sql) in PostgreSQL: the room is the smallest of the
    account's dial-outs left this minute, its concurrent calls left and the system's; on a tie
    the account's own limit is named, the per-minute one first. Without the account only the
    system's cap counts; under a lease this engine does not hold nothing is granted; rules read
    before a change of the account are no longer current."""
    owner = await create_account(pool, max_dialouts_per_minute=4, max_concurrent_calls=4)
    live = await CallSlotRepository(pool).live_calls()

    async def grant(account: int, wanted: int, system_cap: int, lease: str | None = None,
                    stamp: str | None = None) -> asyncpg.Record:
        return await pool.fetchrow("SELECT * FROM dialout_grant($1, $2, $3, $4, 60, NULL, NULL, $5, 1, $6)",
                                   account, wanted, system_cap, SYSTEM_CALLS_LOCK, lease, stamp)

    def room(row: asyncpg.Record) -> tuple[int, str | None]:
        return row["room"], row["bound_by"]

    assert room(await grant(owner, 4, live + 100)) == (4, None)
    assert room(await grant(owner, 5, live + 100)) == (4, "max_dialouts_per_minute")
    stamp = (await AccountRepository(pool).limits(owner) or {})["rules_stamp"]
    assert (await grant(owner, 1, live + 100, stamp=stamp))["rules_current"]
    await pool.execute("UPDATE accounts SET max_concurrent_calls = 3 WHERE id = $1", owner)
    assert not (await grant(owner, 1, live + 100, stamp=stamp))["rules_current"]  # the account changed since
    assert room(await grant(owner, 5, live + 100)) == (3, "max_concurrent_calls")
    assert room(await grant(owner, 5, live + 3)) == (3, "max_concurrent_calls")
    assert room(await grant(owner, 5, live + 2)) == (2, "system_concurrent_calls")
    assert room(await grant(owner, 1, live)) == (0, "system_concurrent_calls")
    nobody = await grant(0, 3, live + 2)
    assert (nobody["room"], nobody["bound_by"], nobody["max_concurrent_calls"]) == (2, "system_concurrent_calls", None)
    fenced = await grant(owner, 1, live + 100, lease="no-such-lease")
    assert not fenced["leased"] and fenced["room"] is None


def immediate(owner: int) -> dict:
    """The fields of a running conference of ``owner`` that starts now."""
    now = datetime.now(UTC)
    return dict(owner_id=owner, subject="Now", node_id=NODE, room=f"veche-r{secrets.token_hex(6)}",
                conference_number=random_digits(9), chair_pin="1" + random_digits(5),
                guest_pin="2" + random_digits(5), starts_at=now, duration_minutes=30,
                ends_at=now + timedelta(minutes=30), max_participants=10, state="running", started_at=now)


async def dialout_counts(pool: asyncpg.Pool, owner: int) -> int:
    return await pool.fetchval("SELECT coalesce(sum(calls), 0) FROM dialout_counts WHERE owner_id = $1", owner)


async def test_the_per_minute_limit_counts_the_dial_outs_of_both_writers_and_the_owners_alone(
        pool: asyncpg.Pool) -> None:
    """An immediate plan's dial-outs (open_and_claim) and a running conference's (claim) add to
    the account's dial-outs of the minute (sql/029_dialout_counts.sql), which the next claim of
    the account reads; planned participants count nothing, and another account's dial-outs do
    not count for this one."""
    repo, slots = ConferenceRepository(pool), CallSlotRepository(pool)
    owner = await create_account(pool, max_dialouts_per_minute=3)
    other = await create_account(pool, max_dialouts_per_minute=3)
    plans = [dict(number=n, name="", node_id=NODE) for n in ("375290001031", "375290001032")]

    _, theirs = await slots.open_and_claim(immediate(other), plans, [], call_ids=["o1", "o2"],
                                           system_cap=10_000, actor="engine")
    assert (len(theirs.claimed), theirs.bound_by) == (2, None)
    conference = await planned(repo, owner, numbers=("375290001033", "375290001034", "375290001035"))
    assert await dialout_counts(pool, owner) == 0  # planned, not dialled
    _, ours = await slots.open_and_claim(immediate(owner), plans[:1], [], call_ids=[f"vo-{secrets.token_hex(6)}"],
                                         system_cap=10_000, actor="engine")
    assert (len(ours.claimed), ours.room, ours.bound_by) == (1, 3, None)  # the other account's two count not

    assert await repo.transition(conference.id, ["scheduled"], "running", started_at=datetime.now(UTC)) is not None
    requests = [SlotRequest(p.id, f"vo-{secrets.token_hex(6)}", 1, NODE, p.number) for p in conference.participants]
    grant = await slots.claim(owner, conference.id, requests, system_cap=10_000, from_states=["planned"],
                              actor="engine", all_or_nothing=False)
    assert (grant.room, grant.bound_by) == (2, "max_dialouts_per_minute")
    assert [p.id for p in grant.claimed] == [p.id for p in conference.participants[:2]]
    assert (await dialout_counts(pool, owner), await dialout_counts(pool, other)) == (3, 2)

    refused = await slots.claim(owner, conference.id, requests[2:], system_cap=10_000, from_states=["planned"],
                                actor="engine", all_or_nothing=True)
    assert (refused.room, refused.bound_by, refused.claimed) == (0, "max_dialouts_per_minute", [])
    _, none_left = await slots.open_and_claim(immediate(owner), plans[:1], [], call_ids=["n1"],
                                              system_cap=10_000, actor="engine")
    assert (none_left.room, none_left.claimed) == (0, [])
    assert await dialout_counts(pool, owner) == 3  # nothing dialled, nothing counted


async def test_the_per_minute_limit_counts_the_buckets_of_the_window(pool: asyncpg.Pool) -> None:
    """dialout_grant sums the account's buckets of the window: older ones count nothing, and the
    second the window starts in counts whole (never fewer than the exact count)."""
    owner = await create_account(pool, max_dialouts_per_minute=10)

    async def room(conn: asyncpg.Connection | asyncpg.Pool, window: float = 60) -> int:
        return await conn.fetchval("SELECT room FROM dialout_grant($1, 100, 100000, $2, $3, NULL, NULL, NULL, NULL, "
                                   "NULL)", owner, SYSTEM_CALLS_LOCK, window)

    async def bucket(seconds_ago: float, calls: int) -> None:
        await pool.execute("INSERT INTO dialout_counts (owner_id, second, calls) "
                           "VALUES ($1, date_trunc('second', clock_timestamp() - make_interval(secs => $2)), $3)",
                           owner, seconds_ago, calls)

    await bucket(90, 4)
    await bucket(300, 5)
    assert await room(pool) == 10
    await bucket(30, 3)
    assert await room(pool) == 7

    # a dial-out of this second, under a window of a millisecond: its bucket counts whole as long
    # as the count runs within the same second (a second turning over in between tries again)
    async with pool.acquire() as conn:
        for _ in range(5):
            transaction = conn.transaction()
            await transaction.start()
            try:
                second = await conn.fetchval(
                    "INSERT INTO dialout_counts (owner_id, second, calls) "
                    "VALUES ($1, date_trunc('second', clock_timestamp()), 2) RETURNING second", owner)
                counted = await room(conn, 0.001)
                same_second = await conn.fetchval("SELECT date_trunc('second', clock_timestamp()) = $1", second)
            finally:
                await transaction.rollback()
            if same_second:
                break
        assert same_second and counted == 8


async def test_the_purge_deletes_the_dial_out_counts_older_than_twice_the_window(pool: asyncpg.Pool) -> None:
    owner = await create_account(pool)
    await pool.execute("INSERT INTO dialout_counts (owner_id, second, calls) "
                       "SELECT $1, date_trunc('second', clock_timestamp() - make_interval(secs => s)), 1 "
                       "FROM unnest(ARRAY[5, 90, 115, 125, 600]::float8[]) AS s", owner)
    assert await CallSlotRepository(pool).purge_counts() >= 2
    ages = await pool.fetch("SELECT extract(epoch FROM clock_timestamp() - second) AS age FROM dialout_counts "
                            "WHERE owner_id = $1 ORDER BY second", owner)
    assert [int(r["age"]) // 10 for r in ages] == [11, 9, 0]  # 115, 90 and 5 seconds old
