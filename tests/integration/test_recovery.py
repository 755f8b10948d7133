"""Recovery on a separate Asterisk (so the session's one is not disturbed): the engine is
SIGKILLed mid-conference, the AMI link is cut for 5 s, Asterisk itself restarts; each time the
calls in progress stay up, stored states match Asterisk, and nobody is dialled twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.adapters.asterisk.ami import AmiEvent, AmiLink
from engine.adapters.db import create_pool
from engine.adapters.db.migrations import migrate
from engine.app import Engine
from engine.config import AmiTarget, Settings
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.stack import PROJECT_ROOT, AsteriskProcess
from tests.conftest import make_settings
from tests.support.engine_process import encode
from tests.support.factories import create_account, wait_for_bus_event, wait_until
from tests.support.proxy import TcpProxy
from tests.support.sipp import SippFactory, SippProcess

pytestmark = pytest.mark.stack

SETUP_TIMEOUT = 25


@dataclass
class Node:
    """A second Asterisk with its own trunk far end, and a test-side AMI link to watch it."""

    settings: Settings
    asterisk: AsteriskProcess
    pstn: SippProcess
    ami: AmiLink


@pytest.fixture(scope="module")
async def node(run_dir: Path, database_url: str) -> AsyncIterator[Node]:
    settings = make_settings(run_dir, database_url=database_url, node_id=f"rec-{secrets.token_hex(3)}")
    asterisk = AsteriskProcess(settings, name=f"recovery-{os.getpid()}")
    await asyncio.to_thread(asterisk.start)
    sipp = SippFactory(run_dir / "sipp-recovery", settings.sip_port)
    pstn = await sipp.pstn(int(settings.trunk_target.rsplit(":", 1)[1]))
    ami = AmiLink(settings.ami, settings.node_id, ping_interval=1.0, pong_timeout=1.0)
    await ami.connect()
    yield Node(settings, asterisk, pstn, ami)
    await ami.close()
    await pstn.stop()
    await asyncio.to_thread(asterisk.stop)
    asterisk.remove()


def plan(*numbers: str) -> ConferencePlan:
    return ConferencePlan(subject="recovery", start=None, duration_minutes=30, max_participants=10,
                          participants=tuple(ParticipantPlan(n) for n in numbers))


def numbers(count: int) -> tuple[str, ...]:
    base = secrets.randbelow(900) + 100
    return tuple(f"3752901{base:03d}{i}00"[:12] for i in range(count))


async def members(ami: AmiLink, room: str) -> dict[str, AmiEvent]:
    return {m.get("Uniqueid"): m for m in await ami.confbridge_members(room)}


async def stored(engine: Engine, conference_id: int) -> dict[int, dict]:
    rows = await engine.pool.fetch("SELECT * FROM participants WHERE conference_id = $1", conference_id)
    return {r["id"]: dict(r) for r in rows}


async def assert_db_matches_asterisk(engine: Engine, ami: AmiLink, conference_id: int, room: str) -> None:
    in_room = await members(ami, room)
    rows = await stored(engine, conference_id)
    connected = {r["call_id"]: r for r in rows.values() if r["state"] == "connected"}
    assert set(connected) == set(in_room), (rows, list(in_room))
    for call_id, row in connected.items():
        assert row["channel"] == in_room[call_id].get("Channel")


async def all_connected(engine: Engine, owner: int, conference_id: int, count: int) -> None:
    planning = engine.services.planning

    async def check():
        current = await planning.get(owner, conference_id)
        return sum(p.state == "connected" for p in current.participants) == count

    await wait_until(engine, check, timeout=SETUP_TIMEOUT, what=f"{count} participants connected")


async def test_engine_sigkill_mid_conference(node: Node) -> None:
    """The engine process dies (SIGKILL) while three callees talk; one hangs up while no engine
    runs. A new engine finds two calls still up, stores the third as gone, dials nobody."""
    callees = numbers(3)
    pool = await create_pool(node.settings.database_url, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        await migrate(conn)
    owner = await create_account(pool)
    await pool.close()

    joins: asyncio.Queue[AmiEvent] = asyncio.Queue()
    node.ami.subscribe(joins.put_nowait, ("ConfbridgeJoin",))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.engine_process", encode(node.settings, (owner, plan(*callees))),
        cwd=str(PROJECT_ROOT), stdout=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        line = await asyncio.wait_for(process.stdout.readline(), SETUP_TIMEOUT)
        conference_id = json.loads(line)["conference_id"]
        joined = [await asyncio.wait_for(joins.get(), SETUP_TIMEOUT) for _ in callees]
    finally:
        node.ami.unsubscribe(joins.put_nowait)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    room = joined[0].get("Conference")
    survivors = {e.get("Uniqueid") for e in joined[1:]}
    victim = joined[0]
    left = asyncio.ensure_future(node.ami.wait_for_event(
        lambda e: e.name == "ConfbridgeLeave" and e.get("Uniqueid") == victim.get("Uniqueid")))
    await node.ami.hangup(victim.get("Channel"))
    await left

    # two dial-outs whose outcome the dead engine never saw and whose calls are gone: one long
    # ago (lost), one just now (maybe still queued in another engine: judged later)
    lost_ids = []
    for call_id, age in ((f"vo-lost{secrets.token_hex(4)}", "1 hour"), (f"vo-fresh{secrets.token_hex(4)}", "0")):
        pool = await create_pool(node.settings.database_url, min_size=1, max_size=1)
        lost_ids.append(await pool.fetchval(
            "INSERT INTO participants (conference_id, number, state, call_id, node_id, attempts, updated_at) "
            f"VALUES ($1, '375290009900', 'calling', $2, $3, 1, now() - interval '{age}') RETURNING id",
            conference_id, call_id, node.settings.node_id))
        await pool.close()

    engine = Engine(node.settings)
    await engine.start()  # recovery runs during start
    try:
        report = engine.services.recovery.reports[-1]
        assert report.failed == [lost_ids[0]] and report.deferred == [lost_ids[1]]
        rows = await stored(engine, conference_id)
        assert (rows[lost_ids[0]]["state"], rows[lost_ids[0]]["failure_reason"]) == ("failed", "error")
        assert rows[lost_ids[1]]["state"] == "calling"
        await engine.pool.execute("DELETE FROM participants WHERE id = ANY($1::bigint[])", lost_ids)
        assert set(await members(node.ami, room)) == survivors  # the calls never dropped
        await assert_db_matches_asterisk(engine, node.ami, conference_id, room)
        rows = await stored(engine, conference_id)
        by_call = {r["call_id"]: r for r in rows.values()}
        assert by_call[victim.get("Uniqueid")]["state"] in ("left", "failed")
        assert all(r["attempts"] == 1 for r in rows.values())  # nobody dialled twice
        assert engine.services.dialout.originates == 0
        await engine.services.live.end(owner, conference_id)
    finally:
        await engine.stop()


async def test_ami_link_cut_for_five_seconds(node: Node) -> None:
    proxy = await TcpProxy(node.settings.ami.host, node.settings.ami.port).start()
    target = AmiTarget(host="127.0.0.1", port=proxy.port, username=node.settings.ami.username,
                       secret=node.settings.ami.secret)
    engine = Engine(node.settings.with_(ami=target))
    await engine.start()
    recovery = engine.services.recovery
    try:
        owner = await create_account(engine.pool)
        conference = await engine.services.planning.plan(owner, plan(*numbers(3)))
        await all_connected(engine, owner, conference.id, 3)
        originates = engine.services.dialout.originates
        before = await stored(engine, conference.id)
        victim = next(iter(before.values()))

        link_down = asyncio.Event()
        engine.ami.on_link_change(lambda node_id, up: None if up else link_down.set())
        cut_at = time.monotonic()
        proxy.cut()
        await asyncio.wait_for(link_down.wait(), 5)
        left = asyncio.ensure_future(node.ami.wait_for_event(
            lambda e: e.name == "ConfbridgeLeave" and e.get("Uniqueid") == victim["call_id"]))
        await node.ami.hangup(victim["channel"])  # the engine cannot see this
        await left
        recovery.resynced.clear()
        await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - cut_at)))  # the outage itself lasts 5 s
        proxy.restore()
        await asyncio.wait_for(recovery.resynced.wait(), 20)

        survivors = {r["call_id"] for r in before.values() if r["id"] != victim["id"]}
        assert set(await members(node.ami, conference.room)) == survivors
        await assert_db_matches_asterisk(engine, node.ami, conference.id, conference.room)
        assert (await stored(engine, conference.id))[victim["id"]]["state"] == "left"
        assert engine.services.dialout.originates == originates  # nobody dialled again
        report = recovery.reports[-1]
        assert report.reason == "AMI link up" and not report.asterisk_restarted
        assert report.left == [victim["id"]] and not report.reinvited
        await engine.services.live.end(owner, conference.id)
    finally:
        await engine.stop()
        await proxy.stop()


@pytest.mark.parametrize("how", ["crash", "shutdown"])
async def test_asterisk_restart_mid_conference(node: Node, how: str) -> None:
    """Asterisk dies (SIGKILL) or shuts down (SIGTERM: its channels hang up first, and the
    engine sees them leave) and comes back: the room returns, whoever was connected is dialled
    again once, and the history shows the interruption."""
    engine = Engine(node.settings)
    await engine.start()
    try:
        owner = await create_account(engine.pool)
        conference = await engine.services.planning.plan(owner, plan(*numbers(2)))
        await all_connected(engine, owner, conference.id, 2)
        before = await stored(engine, conference.id)

        resumed = asyncio.ensure_future(wait_for_bus_event(
            engine, lambda e: e.kind == "conference.resumed" and e.conference_id == conference.id, timeout=60))
        await asyncio.sleep(0)
        await node.ami.close()
        await asyncio.to_thread(node.asterisk.kill if how == "crash" else node.asterisk.stop)
        await asyncio.sleep(1.1)  # Asterisk's boot identity has a one-second resolution
        await asyncio.to_thread(node.asterisk.start)
        event = await resumed
        assert sorted(event.data["reinvited"]) == sorted(before)
        await all_connected(engine, owner, conference.id, 2)

        node.ami = AmiLink(node.settings.ami, node.settings.node_id)
        await node.ami.connect()
        rooms = [r.get("Conference") for r in await node.ami.confbridge_rooms()]
        assert conference.room in rooms  # the room is back
        after = await stored(engine, conference.id)
        assert all(r["attempts"] == 2 for r in after.values())  # dialled again exactly once
        assert {r["call_id"] for r in after.values()}.isdisjoint({r["call_id"] for r in before.values()})
        await assert_db_matches_asterisk(engine, node.ami, conference.id, conference.room)
        kinds = [e["kind"] for e in await engine.services.planning.events(owner, conference.id)]
        assert "conference.interrupted" in kinds and "conference.resumed" in kinds
        assert kinds.index("conference.interrupted") < kinds.index("conference.resumed")
        await engine.services.live.end(owner, conference.id)
    finally:
        await engine.stop()


async def test_a_recorded_conference_due_while_no_engine_ran_is_recorded_at_the_next_start(node: Node) -> None:
    """An engine starts its scheduler last: the conference it finds due at its start begins with
    every listener of a start (recording, metrics, audit) in place, so its recording starts."""
    first = Engine(node.settings)
    await first.start()
    try:
        owner = await create_account(first.pool)
        planned = await first.services.planning.plan(owner, ConferencePlan(
            subject="due at the start", start=datetime.now(UTC) + timedelta(hours=1), duration_minutes=30,
            max_participants=4, participants=(ParticipantPlan(numbers(1)[0]),), recording=True))
    finally:
        await first.stop()
    pool = await create_pool(node.settings.database_url, min_size=1, max_size=1)
    try:  # its time comes while no engine runs
        await pool.execute("UPDATE conferences SET starts_at = now() - interval '1 second', "
                           "ends_at = now() + interval '30 minutes' WHERE id = $1", planned.id)
    finally:
        await pool.close()

    engine = Engine(node.settings)
    await engine.start()
    try:
        async def recorded() -> bool:
            events = await engine.services.planning.events(None, planned.id)
            return any(e["kind"] == "recording.started" for e in events)

        await wait_until(engine, recorded, timeout=SETUP_TIMEOUT, what="the recording of the due conference")
        await all_connected(engine, owner, planned.id, 1)
        await engine.services.live.end(owner, planned.id)
    finally:
        await engine.stop()
