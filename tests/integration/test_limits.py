"""Account and system limits under concurrency, on the real stack (PostgreSQL, Asterisk, the SIPp
trunk far end): parallel immediate conferences of one account create at most its limit of
concurrent conferences, the far end sees at most the account's (or the system's) concurrent
outbound calls, a hangup releases a slot, and the pacer lets a small conference through while
another account's blast is being dialled."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from engine.domain.errors import Forbidden, LimitExceeded
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.services.pacer import Pacer
from tests.support.api import ApiClient, new_user
from tests.support.factories import create_account, wait_until
from tests.support.portal import PASSWORD, PortalClient, random_account_phone

pytestmark = pytest.mark.stack


def _numbers(count: int, suffix: str) -> list[str]:
    """``count`` numbers of this test alone; the suffix picks the far end's behaviour
    (tests/sipp/pstn.xml: 100 answers and waits for the BYE, 408 rings until cancelled)."""
    tag = f"{10 + secrets.randbelow(90)}"
    return [f"37529{tag}{i:02d}{suffix}" for i in range(count)]


def _body(subject: str, numbers: list[str]) -> dict:
    return {"subject": subject, "start": "now", "duration_minutes": 10, "max_participants": len(numbers),
            "participants": [{"number": n} for n in numbers]}


async def _settled(engine, owner: int, conference_ids: list[int]) -> list | None:
    """Every participant of the conferences connected or failed (None while some are not)."""
    planning = engine.services.planning
    participants = [p for cid in conference_ids for p in (await planning.get(owner, cid)).participants]
    return participants if all(p.state in ("connected", "failed") for p in participants) else None


async def _why_failed(engine, conference_ids: list[int]) -> dict[str, int]:
    rows = await engine.pool.fetch(
        "SELECT detail->>'why' AS why, count(*) AS n FROM conference_events "
        "WHERE conference_id = ANY($1) AND kind = 'participant.failed' GROUP BY 1", conference_ids)
    return {r["why"]: r["n"] for r in rows}


async def test_parallel_immediate_conferences_stay_within_the_account_limits(engine, api_server, pstn) -> None:
    calls = engine.services.dialout
    user = await new_user(engine, api_server, max_concurrent_conferences=3, max_participants=50,
                          max_concurrent_calls=4)
    owner = user.account.id
    numbers = _numbers(50, "100")
    since = pstn.message_offset()

    replies = await asyncio.gather(*(user.api.post("/conferences", _body(f"Parallel {i}", numbers))
                                     for i in range(20)))
    created = [r.body["id"] for r in replies if r.status == 201]
    refused = [r for r in replies if r.status != 201]
    assert len(created) == 3, [r.status for r in replies]
    assert {r.status for r in refused} == {422}, [r.body for r in refused]
    assert all("at most 3 conferences at the same time" in r.error["message"] for r in refused)
    assert await engine.pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1", owner) == 3

    participants = await wait_until(engine, lambda: _settled(engine, owner, created), timeout=40,
                                    what="every participant connected or refused")
    connected = [p for p in participants if p.state == "connected"]
    assert len(connected) == 4, [(p.state, p.failure_reason) for p in participants if p.state != "failed"]
    assert all(p.failure_reason == "error" for p in participants if p.state == "failed")
    assert (await _why_failed(engine, created)).get("account_call_limit") == 146
    invites = [call for call in pstn.invites(since) if call[0] in set(numbers)]
    assert len(invites) == 4, invites  # the trunk's far end saw exactly the allowed calls, all at once
    assert await calls.slots.live_calls(owner) == 4

    # a hangup releases its slot: one more call fits, and then none
    live = engine.services.live
    gone = connected[0]
    await live.kick(owner, gone.conference_id, gone.id)
    waiting = [p for p in participants if p.state == "failed"]
    reply = await user.api.post(f"/conferences/{waiting[0].conference_id}/participants/{waiting[0].id}/invite")
    assert reply.status in (200, 202, 204), reply.body
    reply = await user.api.post(f"/conferences/{waiting[1].conference_id}/participants/{waiting[1].id}/invite")
    assert reply.status == 429 and "4 outbound calls at the same time" in reply.error["message"], reply.body

    async def redialled_connected():
        current = await engine.services.planning.get(owner, waiting[0].conference_id)
        return next((p for p in current.participants if p.id == waiting[0].id and p.state == "connected"), None)

    await wait_until(engine, redialled_connected, timeout=20, what="the re-invited participant connected")
    assert len([c for c in pstn.invites(since) if c[0] in set(numbers)]) == 5
    for conference_id in created:
        assert (await user.api.post(f"/conferences/{conference_id}/end")).status == 200
    assert await calls.slots.live_calls(owner) == 0


async def test_the_system_cap_holds_across_accounts(engine, api_server, pstn) -> None:
    calls = engine.services.dialout
    saved = calls.max_concurrent_calls
    calls.max_concurrent_calls = await calls.slots.live_calls() + 3
    since = pstn.message_offset()
    users = [await new_user(engine, api_server, max_concurrent_calls=30) for _ in range(2)]
    numbers = [_numbers(5, "100"), _numbers(5, "100")]
    try:
        replies = await asyncio.gather(*(u.api.post("/conferences", _body("System cap", n))
                                         for u, n in zip(users, numbers, strict=True)))
        assert [r.status for r in replies] == [201, 201], [r.body for r in replies]
        settled = [await wait_until(engine, lambda u=u, r=r: _settled(engine, u.account.id, [r.body["id"]]),
                                    timeout=30, what="participants settled")
                   for u, r in zip(users, replies, strict=True)]
    finally:
        calls.max_concurrent_calls = saved
    states = [p.state for group in settled for p in group]
    assert states.count("connected") == 3, states
    assert (await _why_failed(engine, [r.body["id"] for r in replies])).get("system_call_limit") == 7
    ours = set(numbers[0]) | set(numbers[1])
    assert len([c for c in pstn.invites(since) if c[0] in ours]) == 3
    for user, reply in zip(users, replies, strict=True):
        assert (await user.api.post(f"/conferences/{reply.body['id']}/end")).status == 200


async def test_a_blast_does_not_hold_up_another_accounts_small_conference(engine, api_server, pstn) -> None:
    calls = engine.services.dialout
    saved = calls.pacer
    calls.pacer = pacer = Pacer(5)  # slow enough that the order of the slots shows
    since = pstn.message_offset()
    blaster = await new_user(engine, api_server, max_participants=40, max_concurrent_calls=100)
    small = await new_user(engine, api_server)
    blast_numbers, small_numbers = _numbers(40, "408"), _numbers(3, "100")
    a, b = blaster.account.id, small.account.id
    try:
        blast = await blaster.api.post("/conferences", _body("Blast", blast_numbers))
        assert blast.status == 201, blast.body

        async def blast_under_way():
            return sum(owner == a for owner, _ in calls.originated) >= 2

        await wait_until(engine, blast_under_way, timeout=20, what="the blast being dialled")
        meeting = await small.api.post("/conferences", _body("Small", small_numbers))
        assert meeting.status == 201, meeting.body

        async def small_dialled():
            return sum(owner == b for owner, _ in calls.originated) == 3

        await wait_until(engine, small_dialled, timeout=20, what="the small conference dialled")
        assert pacer.waiting(a) > 20  # the blast was still queued when the small one went through
        # while B had an Originate waiting, A got at most one slot before each of B's (the pacer's record)
        history = list(pacer.history)
        assert history.count(("wait", b)) == history.count(("slot", b)) == 3
        b_waiting, a_slots_since = 0, 0
        for entry in history:
            if entry == ("wait", b):
                a_slots_since = a_slots_since if b_waiting else 0
                b_waiting += 1
            elif entry == ("slot", b):
                b_waiting, a_slots_since = b_waiting - 1, 0
            elif entry == ("slot", a) and b_waiting:
                a_slots_since += 1
                assert a_slots_since <= 1, history

        async def small_connected():
            group = await _settled(engine, b, [meeting.body["id"]])
            return group if group and all(p.state == "connected" for p in group) else None

        await wait_until(engine, small_connected, timeout=30, what="the small conference connected")
        # at the far end, B's calls arrived among A's first ones, not behind the blast
        order = [number for number, _ in pstn.invites(since) if number in set(blast_numbers) | set(small_numbers)]
        positions = [order.index(n) for n in small_numbers]
        assert max(positions) < 15, order
    finally:
        calls.pacer = saved
        for user, reply in ((blaster, blast), (small, locals().get("meeting"))):
            if reply is not None and reply.status == 201:
                await user.api.post(f"/conferences/{reply.body['id']}/end")


async def test_operator_sets_the_concurrent_calls_limit_by_api_and_page(engine, api_server) -> None:
    operator = await engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator")
    api = ApiClient(api_server, (await engine.services.tokens.issue(operator.id, "operator")).secret)
    phone = random_account_phone()
    created = await api.post("/operator/accounts", {"phone": phone, "password": PASSWORD, "max_concurrent_calls": 7})
    assert created.status == 201 and created.body["max_concurrent_calls"] == 7, created.body
    account_id = created.body["id"]
    for bad in (0, 10001, "many", True):
        refused = await api.call("PATCH", f"/operator/accounts/{account_id}", {"max_concurrent_calls": bad})
        assert refused.status in (400, 422) and refused.error["field"] == "max_concurrent_calls", (bad, refused.body)
    changed = await api.call("PATCH", f"/operator/accounts/{account_id}", {"max_concurrent_calls": 12})
    assert changed.status == 200 and changed.body["max_concurrent_calls"] == 12
    assert (await engine.services.accounts.repository.get(account_id)).max_concurrent_calls == 12

    portal = PortalClient(str(api_server.make_url("/")), engine)
    try:
        await portal.login(operator.phone)
        page = await portal.get(f"/operator/accounts/{account_id}")
        assert page.status == 200 and 'name="max_concurrent_calls"' in page.text and 'value="12"' in page.text
        saved = await portal.post(f"/operator/accounts/{account_id}", {
            "name": "", "email": "", "language": "ru", "plan_group": "default", "max_participants": "50",
            "max_concurrent_conferences": "3", "max_dialouts_per_minute": "120", "max_concurrent_calls": "5"})
        assert saved.status == 200, saved.text[-500:]
        assert (await engine.services.accounts.repository.get(account_id)).max_concurrent_calls == 5
        entries = (await api.get(f"/operator/audit?account_id={account_id}")).body["entries"]
        assert any(e["action"] == "account.updated" and e["detail"].get("max_concurrent_calls") == 5 for e in entries)
    finally:
        await portal.close()


async def test_parallel_additions_stop_at_the_conference_participant_limit(engine, api_server) -> None:
    user = await new_user(engine, api_server)
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    numbers = _numbers(12, "100")
    created = await user.api.post("/conferences", {**_body("Small room", numbers[:1]), "start": later,
                                                   "max_participants": 3})
    assert created.status == 201, created.body
    path = f"/conferences/{created.body['id']}/participants"
    replies = await asyncio.gather(*(user.api.post(path, {"number": n}) for n in numbers[1:]))
    assert sorted(r.status for r in replies) == [201] * 2 + [422] * 9, [r.body for r in replies]
    assert all("at most 3 participants" in r.error["message"] for r in replies if r.status == 422)
    assert await engine.pool.fetchval("SELECT count(*) FROM participants WHERE conference_id = $1",
                                      created.body["id"]) == 3


async def test_a_change_of_the_account_reaches_the_next_immediate_plan(engine, pstn) -> None:
    """An immediate plan may be checked against the account rules as the engine last read them:
    the one statement that stores it refuses them once the account changed, and the plan is
    checked anew. The operator lowers an account's participants, then blocks it, between plans:
    each next immediate plan is refused, and nothing of it is stored or dialled."""
    owner = await create_account(engine.pool, max_participants=10)
    planning = engine.services.planning
    numbers = _numbers(3, "100")
    since = pstn.message_offset()

    def plan(start: datetime | None, count: int) -> ConferencePlan:
        return ConferencePlan(subject="Rules", start=start, duration_minutes=10, max_participants=count,
                              participants=tuple(ParticipantPlan(n) for n in numbers[:count]))

    await planning.plan(owner, plan(datetime.now(UTC) + timedelta(hours=2), 3))  # reads the rules
    await engine.pool.execute("UPDATE accounts SET max_participants = 2 WHERE id = $1", owner)
    with pytest.raises(LimitExceeded):
        await planning.plan(owner, plan(None, 3))
    await engine.pool.execute("UPDATE accounts SET blocked = true WHERE id = $1", owner)
    with pytest.raises(Forbidden):
        await planning.plan(owner, plan(None, 2))
    assert await engine.pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1", owner) == 1
    assert not [call for call in pstn.invites(since) if call[0] in set(numbers)]


async def test_claims_and_call_states_run_on_connections_of_their_own_and_outlive_losing_them(
        engine, api_server, pstn) -> None:
    """The dial-out claims and the calls' states have small pools of their own (engine/app.py),
    seen by name in pg_stat_activity, the calls' with generic plans; when the server ends those
    connections, the next start opens others, dials and stores its callees connected as before."""
    slots, states = engine.services.dialout.slots, engine.services.dialout.repo
    assert len({id(slots.pool), id(states.pool), id(engine.pool)}) == 3
    assert await states.pool.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
    assert await engine.pool.fetchval("SHOW plan_cache_mode") == "auto"
    names = "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
    claims = [r["pid"] for r in await engine.pool.fetch(names, "veche-claims")]
    calls = [r["pid"] for r in await engine.pool.fetch(names, "veche-calls")]
    assert claims and calls, "each pool's connection is open from the start"
    assert not {r["pid"] for r in await engine.pool.fetch(names, "veche-engine")} & {*claims, *calls}
    for pid in claims + calls:  # as a restart or an administrator would: pg_terminate_backend waits for the exit
        assert await engine.pool.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)

    user = await new_user(engine, api_server)
    numbers = _numbers(2, "100")
    reply = await user.api.post("/conferences", _body("After the pools' connections were lost", numbers))
    assert reply.status == 201, reply.body
    participants = await wait_until(engine, lambda: _settled(engine, user.account.id, [reply.body["id"]]),
                                    timeout=30, what="both callees settled")
    assert [p.state for p in participants] == ["connected", "connected"], participants
    for name, lost in (("veche-claims", claims), ("veche-calls", calls)):
        now = {r["pid"] for r in await engine.pool.fetch(names, name)}
        assert now and not now & set(lost), name
    assert (await user.api.post(f"/conferences/{reply.body['id']}/end")).status == 200
