"""An engine pair on one PostgreSQL and one real Asterisk: the leader lease and its fencing token
in PostgreSQL, and a kill -9 of the active engine, after which the standby takes over within
10 s, adopts the running calls, starts a scheduled conference on time, serves the dial-in through
the dialplan's second FastAGI address, and nobody is dialled twice; a paused active engine
(SIGSTOP) is replaced the same way and, woken, finds itself deposed and stops without dialling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.asterisk.ami import AmiEvent, AmiLink
from engine.adapters.db import create_pool
from engine.adapters.db.conferences import CallSlotRepository, SlotRequest
from engine.adapters.db.lease import Fence, LeaseRepository
from engine.config import Settings
from engine.domain.errors import NotActiveEngine
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.stack import PROJECT_ROOT, AsteriskProcess, free_port
from tests.conftest import make_settings
from tests.support.database import drop_database, new_database
from tests.support.dialin_factories import create_conference, random_caller
from tests.support.engine_process import encode
from tests.support.factories import create_account
from tests.support.sipp import SippFactory, SippProcess

pytestmark = pytest.mark.stack

TAKEOVER_SECONDS = 10.0
SETUP_TIMEOUT = 30.0
SCHEDULED_AFTER_KILL = 20.0


async def poll(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """The engines run in processes of their own (no bus to wait on): ask ``check`` every 0.1 s
    until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[str]:
    """A database of this test only: the lease row is one per database."""
    url = await new_database(database_url, "veche_pair")
    yield url
    await drop_database(database_url, url)


# ----------------------------------------------------------------- the lease and the fence in SQL

async def test_lease_is_held_by_one_engine_at_a_time(database: str) -> None:
    pool = await create_pool(database, min_size=1, max_size=2)
    try:
        lease = LeaseRepository(pool)
        first = await lease.acquire("engine-1", 30)
        assert first is not None
        assert await lease.acquire("engine-2", 30) is None  # live, held by another engine
        again = await lease.acquire("engine-1", 30)  # the same engine, restarted after a crash
        assert again == first + 1
        assert not await lease.renew(first, 30)  # the old incarnation's token is stale
        assert await lease.renew(again, 30)
        await lease.release(again)
        second = await lease.acquire("engine-2", 0.5)
        assert second == again + 1
        assert (await lease.current()).holder == "engine-2"
        await poll(lambda: _lapsed(lease), 5, "the short lease to lapse")
        assert not await lease.renew(second, 30)  # too late: lapsed
        assert await lease.acquire("engine-1", 30) == second + 1
    finally:
        await pool.close()


async def _lapsed(lease: LeaseRepository) -> bool:
    current = await lease.current()
    return current is not None and not current.live


async def test_dial_out_claims_need_the_live_token(database: str) -> None:
    """The fencing rule in the claim's own transaction: no token (the standby), a stale token (an
    active engine that lost the lease) and a lapsed lease claim nothing; the live token claims."""
    pool = await create_pool(database, min_size=1, max_size=2)
    try:
        conference = await create_conference(pool, node_id="fence")
        participant = await pool.fetchval(
            "INSERT INTO participants (conference_id, number, state) VALUES ($1, '375290001100', 'planned') "
            "RETURNING id", conference.id)
        lease = LeaseRepository(pool)
        fence = Fence(enabled=True)
        slots = CallSlotRepository(pool, fence)

        async def claim() -> list:
            request = SlotRequest(participant, f"vo-{secrets.token_hex(4)}", 1, "fence", "375290001100")
            grant = await slots.claim(conference.owner_id, conference.id, [request], system_cap=10,
                                      from_states=("planned",), actor="test", all_or_nothing=True)
            return grant.claimed

        with pytest.raises(NotActiveEngine):
            await claim()  # a standby holds no token
        old_token = await lease.acquire("engine-1", 30)
        assert await lease.acquire("engine-2", 30) is None
        live_token = await lease.acquire("engine-1", 30)  # the lease changed hands (a restart)
        fence.token = old_token
        with pytest.raises(NotActiveEngine):
            await claim()  # the token was replaced: a paused old leader cannot dial
        fence.token = live_token
        assert [p.id for p in await claim()] == [participant]
        assert await pool.fetchval("SELECT count(*) FROM conference_events WHERE kind = 'participant.dialing' "
                                   "AND participant_id = $1", participant) == 1
        assert await CallSlotRepository(pool).claim(  # an engine alone (no lease) is never fenced
            conference.owner_id, conference.id, [], system_cap=10, from_states=("planned",), actor="test",
            all_or_nothing=True) is not None
    finally:
        await pool.close()


# ----------------------------------------------------------------- kill -9 of the active engine

@dataclass
class Pair:
    """One Asterisk whose dialplan tries engine A's FastAGI, then engine B's; its trunk's far end
    and a test-side AMI link; the settings of both engines."""

    node: Settings
    a: Settings
    b: Settings
    asterisk: AsteriskProcess
    sipp: SippFactory
    pstn: SippProcess
    ami: AmiLink


@pytest.fixture
async def pair(run_dir: Path, database: str) -> AsyncIterator[Pair]:
    agi_a, agi_b = free_port(), free_port()
    node = make_settings(run_dir, database_url=database, node_id=f"pair-{secrets.token_hex(3)}",
                         agi_port=agi_a, agi_addresses=(f"127.0.0.1:{agi_a}", f"127.0.0.1:{agi_b}"))
    asterisk = AsteriskProcess(node, name=f"pair-{os.getpid()}-{secrets.token_hex(2)}")
    await asyncio.to_thread(asterisk.start)
    sipp = SippFactory(run_dir / f"sipp-{node.node_id}", node.sip_port)
    pstn = await sipp.pstn(int(node.trunk_target.rsplit(":", 1)[1]))
    ami = AmiLink(node.ami, node.node_id)
    await ami.connect()
    try:
        yield Pair(node, node.with_(engine_id="engine-a"), node.with_(engine_id="engine-b", agi_port=agi_b),
                   asterisk, sipp, pstn, ami)
    finally:
        await ami.close()
        await pstn.stop()
        await asyncio.to_thread(asterisk.stop)
        asterisk.remove()


class EngineProcess:
    """``python -m tests.support.engine_process`` for one engine of the pair."""

    def __init__(self, settings: Settings, plans: list | None = None) -> None:
        self.argument = encode(settings, plans)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> EngineProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.engine_process", self.argument, cwd=str(PROJECT_ROOT),
            stdout=asyncio.subprocess.PIPE, start_new_session=True)
        return self

    async def active(self, timeout: float) -> dict:
        """The line the engine prints once it is active (and has planned what it was given)."""
        assert self.process is not None and self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert line, "the engine process ended before it became active"
        return json.loads(line)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


def numbers(count: int) -> list[str]:
    base = secrets.randbelow(900) + 100
    return [f"3752902{base:03d}{i}0" for i in range(count)]


async def members(ami: AmiLink, room: str) -> dict[str, AmiEvent]:
    return {m.get("Uniqueid"): m for m in await ami.confbridge_members(room)}


async def test_standby_takes_over_after_kill_9(pair: Pair) -> None:
    pool = await create_pool(pair.node.database_url, min_size=1, max_size=2)
    owner = await create_account(pool, max_concurrent_conferences=5)
    running_numbers, scheduled_numbers = numbers(2), numbers(1)
    starts_at = datetime.now(UTC) + timedelta(seconds=SETUP_TIMEOUT + SCHEDULED_AFTER_KILL)
    plans = [(owner, ConferencePlan(subject="running", start=None, duration_minutes=30, max_participants=10,
                                    participants=tuple(ParticipantPlan(n) for n in running_numbers))),
             (owner, ConferencePlan(subject="scheduled", start=starts_at, duration_minutes=30, max_participants=5,
                                    participants=tuple(ParticipantPlan(n) for n in scheduled_numbers)))]
    joins: asyncio.Queue[AmiEvent] = asyncio.Queue()
    pair.ami.subscribe(joins.put_nowait, ("ConfbridgeJoin",))
    active = await EngineProcess(pair.a, plans).start()
    standby = EngineProcess(pair.b)
    caller: SippProcess | None = None
    try:
        running_id, scheduled_id = (await active.active(SETUP_TIMEOUT))["conference_ids"]
        await standby.start()
        joined = [await asyncio.wait_for(joins.get(), SETUP_TIMEOUT) for _ in running_numbers]
        room = joined[0].get("Conference")
        in_room = set(await members(pair.ami, room))
        assert len(in_room) == 2
        assert (await LeaseRepository(pool).current()).holder == "engine-a"

        # kill -9 the active engine SCHEDULED_AFTER_KILL seconds before the scheduled start
        await asyncio.sleep(max(0.0, (starts_at - datetime.now(UTC)).total_seconds() - SCHEDULED_AFTER_KILL))
        killed_at = time.monotonic()
        await active.kill()
        await standby.active(TAKEOVER_SECONDS + 5)
        takeover = time.monotonic() - killed_at
        assert takeover <= TAKEOVER_SECONDS, f"the standby took {takeover:.1f} s to take over"
        assert (await LeaseRepository(pool).current()).holder == "engine-b"

        # the running conference's calls were adopted, not dialled again
        assert set(await members(pair.ami, room)) == in_room
        rows = await pool.fetch("SELECT call_id, state, attempts FROM participants WHERE conference_id = $1",
                                running_id)
        assert {r["call_id"] for r in rows if r["state"] == "connected"} == in_room
        assert all(r["attempts"] == 1 for r in rows)

        # the scheduled conference starts on time under the new active engine
        started_at = await poll(lambda: pool.fetchval(
            "SELECT started_at FROM conferences WHERE id = $1 AND state = 'running'", scheduled_id),
            SCHEDULED_AFTER_KILL + 10, "the scheduled conference to start")
        assert abs((started_at - starts_at).total_seconds()) <= 2.0, started_at - starts_at
        await poll(lambda: pool.fetchval("SELECT count(*) = 1 FROM participants WHERE conference_id = $1 "
                                         "AND state = 'connected'", scheduled_id),
                   SETUP_TIMEOUT, "the scheduled conference's callee connected")

        # a dial-in now reaches the running room through the dialplan's second FastAGI address
        conference = await pool.fetchrow("SELECT conference_number, guest_pin FROM conferences WHERE id = $1",
                                         running_id)
        caller = await pair.sipp.caller(f"{conference['conference_number']}#,{conference['guest_pin']}#",
                                        caller=random_caller())
        await poll(lambda: pool.fetchval("SELECT count(*) = 1 FROM participants WHERE conference_id = $1 "
                                         "AND origin = 'dialin' AND state = 'connected'", running_id),
                   SETUP_TIMEOUT, "the dial-in caller in the room")
        assert len(await members(pair.ami, room)) == 3

        # the far end saw exactly one INVITE per invitation
        invited = Counter(pair.pstn.invited_numbers())
        assert invited == Counter(running_numbers + scheduled_numbers), invited
    finally:
        pair.ami.unsubscribe(joins.put_nowait)
        if caller is not None:
            await caller.stop()
        await active.kill()
        await standby.kill()
        await pool.close()


async def test_a_paused_active_engine_is_replaced_and_deposed(pair: Pair) -> None:
    """SIGSTOP the active engine (its process keeps its connections): the standby takes over when
    the lease lapses; SIGCONT: the old engine finds its token stale, stops and exits with 3,
    while the calls stay in the room and nobody is dialled again."""
    pool = await create_pool(pair.node.database_url, min_size=1, max_size=2)
    owner = await create_account(pool)
    callees = numbers(2)
    plans = [(owner, ConferencePlan(subject="paused", start=None, duration_minutes=30, max_participants=10,
                                    participants=tuple(ParticipantPlan(n) for n in callees)))]
    joins: asyncio.Queue[AmiEvent] = asyncio.Queue()
    pair.ami.subscribe(joins.put_nowait, ("ConfbridgeJoin",))
    active = await EngineProcess(pair.a, plans).start()
    standby = EngineProcess(pair.b)
    try:
        conference_id = (await active.active(SETUP_TIMEOUT))["conference_id"]
        await standby.start()
        joined = [await asyncio.wait_for(joins.get(), SETUP_TIMEOUT) for _ in callees]
        room = joined[0].get("Conference")
        in_room = set(await members(pair.ami, room))

        os.killpg(active.process.pid, signal.SIGSTOP)
        paused_at = time.monotonic()
        await standby.active(TAKEOVER_SECONDS + 5)
        assert time.monotonic() - paused_at <= TAKEOVER_SECONDS
        token = (await LeaseRepository(pool).current()).token
        os.killpg(active.process.pid, signal.SIGCONT)
        assert await asyncio.wait_for(active.process.wait(), SETUP_TIMEOUT) == 3  # deposed, stopped

        current = await LeaseRepository(pool).current()
        assert (current.holder, current.token, current.live) == ("engine-b", token, True)
        assert set(await members(pair.ami, room)) == in_room
        rows = await pool.fetch("SELECT call_id, state, attempts FROM participants WHERE conference_id = $1",
                                conference_id)
        assert {r["call_id"] for r in rows if r["state"] == "connected"} == in_room
        assert all(r["attempts"] == 1 for r in rows)
        assert Counter(pair.pstn.invited_numbers()) == Counter(callees)
    finally:
        pair.ami.unsubscribe(joins.put_nowait)
        if active.process is not None and active.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(active.process.pid, signal.SIGCONT)
        await active.kill()
        await standby.kill()
        await pool.close()
