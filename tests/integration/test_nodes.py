"""Several media nodes through the real parts: two Asterisk 22 nodes on their own loopback
addresses behind a real Kamailio, SIPp as callers and as the carrier, PostgreSQL, one engine.
Calls through Kamailio reach both nodes, each node's outbound call reaches the carrier through
Kamailio once, the operator sees both nodes with their load and can drain one."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from engine.app import Engine
from engine.config import Settings, local_node_host
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.services.calls import now_utc
from engine.stack import (
    AsteriskProcess,
    KamailioProcess,
    free_port_on_hosts,
    local_nodes,
    with_instance_prompts,
)
from tests.conftest import make_settings
from tests.support.api import ApiClient
from tests.support.database import new_database
from tests.support.factories import wait_until
from tests.support.portal import PASSWORD, PortalClient, random_account_phone
from tests.support.sipp import SippFactory, SippProcess

pytestmark = pytest.mark.stack

NODES = 2
CAPACITY = 12  # participants per node: two conferences of 6 seats fill one node each
TIMEOUT = 30.0


@dataclass
class Stack:
    settings: Settings
    nodes: list[AsteriskProcess]
    front: KamailioProcess
    carrier: SippProcess
    sipp: SippFactory
    engine: Engine


@pytest.fixture(scope="module")
async def database(database_url: str) -> str:
    """A database of its own on the session's server: the node rows are this engine's alone."""
    return await new_database(database_url, "veche_nodes")


@pytest.fixture(scope="module")
async def stack(run_dir: Path, database: str) -> AsyncIterator[Stack]:
    hosts = ("127.0.0.1", *(local_node_host(k) for k in range(1, NODES + 1)))
    settings = make_settings(run_dir / "nodes", database_url=database, node_count=NODES,
                             node_capacity=CAPACITY, sip_port=free_port_on_hosts(socket.SOCK_DGRAM, hosts))
    settings = settings.with_(ami=settings.ami.__class__(port=free_port_on_hosts(socket.SOCK_STREAM, hosts),
                                                         secret=settings.ami.secret))
    settings = with_instance_prompts(settings, local_nodes(settings)[0].name)
    nodes = local_nodes(settings)
    front = KamailioProcess(settings)
    carrier: SippProcess | None = None
    engine: Engine | None = None
    try:
        for node in nodes:
            await asyncio.to_thread(node.start)
        await asyncio.to_thread(front.start)
        sipp = SippFactory(run_dir / "sipp-nodes", settings.sip_port)
        carrier = await sipp.pstn(int(settings.trunk_target.rsplit(":", 1)[1]))
        engine = Engine(settings)
        await engine.start()
        yield Stack(settings, nodes, front, carrier, sipp, engine)
    finally:
        if engine is not None:
            await engine.stop()
        if carrier is not None:
            await carrier.stop()
        await asyncio.to_thread(front.stop)
        for node in nodes:
            await asyncio.to_thread(node.stop)
            node.remove()


def calls_processed(node: AsteriskProcess) -> int:
    match = re.search(r"(\d+) calls? processed", node.cli("core show calls"))
    return int(match.group(1)) if match else 0


async def test_calls_through_kamailio_reach_both_nodes(stack: Stack) -> None:
    """The dispatcher spreads dial-ins over the nodes that answer OPTIONS (round robin)."""
    before = [await asyncio.to_thread(calls_processed, n) for n in stack.nodes]
    callers = [await stack.sipp.caller("1#", service=stack.settings.access_number) for _ in range(NODES)]
    try:
        async def both_reached() -> bool:
            after = [await asyncio.to_thread(calls_processed, n) for n in stack.nodes]
            return all(a > b for a, b in zip(after, before, strict=True))

        await wait_until(stack.engine, both_reached, timeout=TIMEOUT, what="a dial-in on every node")
    finally:
        for caller in callers:
            await caller.stop()


async def test_each_node_dials_out_through_kamailio_once(stack: Stack) -> None:
    """An Originate on each node reaches the carrier through Kamailio: one INVITE per attempt,
    and the carrier sees Kamailio as its only peer."""
    since = stack.carrier.message_offset()
    numbers = {}
    for index, (node_id, adapter) in enumerate(sorted(stack.engine.links.items())):
        number = f"37529{secrets.randbelow(10**6):06d}{index}"[:12]
        numbers[node_id] = number
        await adapter.originate(channel_id=f"vn-{secrets.token_hex(8)}", channel=f"Local/{number}@veche-dialout/n",
                                context="veche-room", exten="join", timeout_ms=10000,
                                variables={"VECHE_ROOM": f"nodes-{node_id}", "VECHE_PROFILE": "veche_guest_invited",
                                           "VECHE_LANG": "en", "VECHE_MAX_MEMBERS": "10"})

    async def all_invited() -> bool:
        return set(stack.carrier.invited_numbers()[-50:]) >= set(numbers.values())

    await wait_until(stack.engine, all_invited, timeout=TIMEOUT, what="an INVITE from every node")
    invites = [number for number, _ in stack.carrier.invites(since)]
    for number in numbers.values():
        assert invites.count(number) == 1, invites
    front = f"127.0.0.1:{stack.settings.sip_port}"
    trace = stack.carrier.message_path.read_text(errors="replace")
    for block in re.split(r"^-{20,}.*$", trace, flags=re.MULTILINE):
        if re.search(r"^INVITE sip:", block, flags=re.MULTILINE):
            top_via = re.search(r"^Via:\s*SIP/2.0/UDP\s+([0-9.:]+)", block, flags=re.MULTILINE | re.IGNORECASE)
            assert top_via and top_via.group(1) == front, block[:400]


@dataclass
class Portal:
    server: object  # aiohttp.test_utils.TestServer
    operator: object  # the operator's account


@pytest.fixture(scope="module")
async def portal(stack: Stack) -> AsyncIterator[Portal]:
    """The portal and API of the two-node engine, and an operator's account."""
    from aiohttp.test_utils import TestServer

    from web.app import init_app

    server = TestServer(init_app(stack.engine.services), host="127.0.0.1")
    await server.start_server()
    operator = await stack.engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator")
    yield Portal(server, operator)
    await server.close()


@pytest.fixture(scope="module")
async def operator_api(stack: Stack, portal: Portal) -> ApiClient:
    issued = await stack.engine.services.tokens.issue(portal.operator.id, "nodes")
    return ApiClient(portal.server, issued.secret)


async def test_operator_sees_both_nodes_with_live_load_and_drains_one(stack: Stack, operator_api: ApiClient) -> None:
    """GET /operator/nodes lists both nodes up with the participants in use; a drain is stored,
    shown, audit-logged and undone by resume."""
    engine = stack.engine
    owner = await engine.services.accounts.create(random_account_phone(), PASSWORD)
    callee = f"37529{secrets.randbelow(10**6):06d}1"
    conference = await engine.services.planning.plan(owner.id, ConferencePlan(
        subject="nodes", start=None, duration_minutes=10, max_participants=4,
        participants=(ParticipantPlan(callee),)))
    node_of_room = conference.node_id

    async def in_use() -> dict[str, dict]:
        listing = await operator_api.get("/operator/nodes")
        assert listing.status == 200
        return {n["node_id"]: n for n in listing.body["nodes"]}

    async def callee_counted() -> bool:
        return (await in_use())[node_of_room]["in_use"] == 1

    await wait_until(engine, callee_counted, timeout=TIMEOUT, what="the callee counted on its node")
    nodes = await in_use()
    assert sorted(nodes) == ["ast1", "ast2"]
    assert all(n["state"] == "up" and n["last_seen"] for n in nodes.values()), nodes
    assert nodes[node_of_room]["conferences"] == 1 and nodes[node_of_room]["load"] == 4
    assert nodes["ast2"]["sip_address"] == f"{local_node_host(2)}:{stack.settings.sip_port}"
    await engine.services.live.end(owner.id, conference.id)

    drained = await operator_api.post("/operator/nodes/ast2/drain")
    assert drained.status == 200 and drained.body["state"] == "draining"
    assert (await in_use())["ast2"]["state"] == "draining"
    await engine.services.nodes.beat()  # the heartbeat keeps an operator's drain
    assert (await in_use())["ast2"]["state"] == "draining"
    assert (await engine.services.nodes.placement(1)).node_id == "ast1"
    log = await operator_api.get("/operator/audit?action=node.drained")
    assert [e["detail"]["node_id"] for e in log.body["entries"]] == ["ast2"]
    resumed = await operator_api.post("/operator/nodes/ast2/resume")
    assert resumed.status == 200 and resumed.body["state"] == "up"
    assert (await operator_api.post("/operator/nodes/ast9/drain")).status == 404


async def test_operator_page_lists_the_nodes_and_drains_one(stack: Stack, portal: Portal) -> None:
    client = PortalClient(str(portal.server.make_url("/")), stack.engine)
    try:
        await client.login(portal.operator.phone)
        page = await client.get("/operator/nodes")
        assert page.status == 200
        assert 'data-node="ast1" data-state="up"' in page.text and 'data-node="ast2"' in page.text
        drained = await client.post("/operator/nodes/ast1/drain", {})
        assert drained.status == 200 and 'data-node="ast1" data-state="draining"' in drained.text
        resumed = await client.post("/operator/nodes/ast1/resume", {})
        assert resumed.status == 200 and 'data-node="ast1" data-state="up"' in resumed.text
    finally:
        await client.close()


def rooms_on(node: AsteriskProcess) -> str:
    return node.cli("confbridge list")


async def test_conferences_are_placed_by_load_on_both_nodes(stack: Stack, portal: Portal) -> None:
    """Two immediate conferences of 6 seats: the first on ast1 (both empty: the lowest id), the
    second on ast2 (the most free); each room and each callee's call live on its conference's
    node, and the API shows the node. A third that fits neither node is refused with 409 (the
    portal shows the message from the catalogue); a scheduled one fails at its start and alerts the operator."""
    engine = stack.engine
    owner = await engine.services.accounts.create(random_account_phone(), PASSWORD)
    api = ApiClient(portal.server, (await engine.services.tokens.issue(owner.id, "nodes")).secret)
    conferences = []
    for index in range(NODES):
        callee = f"37529{secrets.randbelow(10**6):06d}{index}"
        reply = await api.post("/conferences", {"subject": f"placed {index}", "duration_minutes": 10,
                                                "max_participants": CAPACITY // 2,
                                                "participants": [{"number": callee}]})
        assert reply.status == 201, reply.body
        conferences.append(reply.body)
    try:
        assert [c["node_id"] for c in conferences] == ["ast1", "ast2"]

        async def callees_in_rooms() -> bool:
            rows = [await engine.services.planning.get(owner.id, c["id"]) for c in conferences]
            return all(r.participants[0].state == "connected" for r in rows)

        await wait_until(engine, callees_in_rooms, timeout=TIMEOUT, what="each callee in its room")
        for conference, node in zip(conferences, stack.nodes, strict=True):
            stored = await engine.services.planning.get(owner.id, conference["id"])
            assert stored.participants[0].node_id == conference["node_id"]
            assert stored.room in await asyncio.to_thread(rooms_on, node)
            other = stack.nodes[1 - stack.nodes.index(node)]
            assert stored.room not in await asyncio.to_thread(rooms_on, other)
        assert (await api.get(f"/conferences/{conferences[1]['id']}")).body["node_id"] == "ast2"

        refused = await api.post("/conferences", {"subject": "too big", "duration_minutes": 10,
                                                  "max_participants": CAPACITY // 2 + 1})
        assert refused.status == 409, refused.body
        assert refused.error["message"].startswith("no media node has 7 free seats"), refused.error

        later = await engine.services.planning.plan(owner.id, ConferencePlan(
            subject="no node", start=now_utc() + timedelta(seconds=1), duration_minutes=10,
            max_participants=CAPACITY // 2 + 1))

        def node_alerts() -> list[dict]:
            return [a for a in engine.services.guard.alerts if a["limit"] == "node_capacity"]

        async def failed() -> bool:
            row = await engine.services.planning.get(owner.id, later.id)
            return row.state == "failed" and row.end_reason == "node_capacity" and bool(node_alerts())

        await wait_until(engine, failed, timeout=TIMEOUT,
                         what="the scheduled conference failed for want of a node, with an alert")
        alerts = node_alerts()
        assert alerts and alerts[-1]["account_id"] == owner.id and f"conference {later.id}" in alerts[-1]["last"]
    finally:
        for conference in conferences:
            await engine.services.live.end(owner.id, conference["id"])


async def test_a_dial_in_on_the_other_node_reaches_the_room(stack: Stack) -> None:
    """Two callers through Kamailio (round robin: one per node) key the conference number and
    PIN once, on whichever node took them: both end up in the one room on the conference's node,
    the one Kamailio gave the other node handed over the inter-node trunk. The log tells the
    extra setup time of the hand-over (admission to joining the room, against a local join)."""
    engine = stack.engine
    owner = await engine.services.accounts.create(random_account_phone(), PASSWORD)
    conference = await engine.services.planning.plan(owner.id, ConferencePlan(
        subject="any node", start=None, duration_minutes=10, max_participants=4, participants=()))
    home = stack.nodes[[n.node_id for n in engine.settings.media_nodes].index(conference.node_id)]
    before = [await asyncio.to_thread(calls_processed, n) for n in stack.nodes]
    callers = [await stack.sipp.caller(f"{conference.conference_number}#,{conference.chair_pin}#",
                                       caller=f"37529700{index:04d}", service=stack.settings.access_number)
               for index in range(NODES)]
    try:
        async def both_in() -> list | None:
            rows = (await engine.services.planning.get(owner.id, conference.id)).participants
            return rows if len(rows) == NODES and all(r.state == "connected" for r in rows) else None

        rows = await wait_until(engine, both_in, timeout=TIMEOUT, what="both callers in the room")
        assert {r.node_id for r in rows} == {conference.node_id}
        assert {r.role for r in rows} == {"chair"} and {r.origin for r in rows} == {"dialin"}
        after = [await asyncio.to_thread(calls_processed, n) for n in stack.nodes]
        assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)  # one caller per node
        members = await asyncio.to_thread(home.cli, f"confbridge list {conference.room}")
        assert members.count("PJSIP/") == NODES, members
        assert "PJSIP/internode-" in members  # the handed-over caller
        log = await engine.services.planning.events(owner.id, conference.id)
        events = {e["participant_id"]: e["at"] for e in log if e["kind"] == "participant.dialin"}
        setup = sorted((r.joined_at - events[r.id]).total_seconds() for r in rows)
        print(f"dial-in setup, admission to room: local {setup[0] * 1000:.0f} ms, handed over {setup[1] * 1000:.0f} ms")
    finally:
        for caller in callers:
            await caller.stop()
        await engine.services.live.end(owner.id, conference.id)


async def test_a_frozen_node_fails_and_its_stale_room_is_closed_when_it_returns(stack: Stack) -> None:
    """SIGSTOP ast2 under a conference with one callee: its AMI goes silent (no pong), the
    conference moves to ast1 and the callee rings again from there. SIGCONT: ast2 comes back with
    the old room, recovery closes it (the old call is hung up) and nobody is dialled a third time."""
    engine = stack.engine
    owner = await engine.services.accounts.create(random_account_phone(), PASSWORD)
    callee = f"37529{secrets.randbelow(10**6):06d}7"
    since = stack.carrier.message_offset()
    filler = await engine.services.planning.plan(owner.id, ConferencePlan(
        subject="filler", start=None, duration_minutes=10, max_participants=2))
    conference = await engine.services.planning.plan(owner.id, ConferencePlan(
        subject="frozen", start=None, duration_minutes=10, max_participants=4,
        participants=(ParticipantPlan(callee),)))
    assert (filler.node_id, conference.node_id) == ("ast1", "ast2")
    frozen = stack.nodes[1]

    async def callee_in(node_id: str) -> bool:
        (row,) = (await engine.services.planning.get(owner.id, conference.id)).participants
        return row.state == "connected" and row.node_id == node_id

    try:
        await wait_until(engine, lambda: callee_in("ast2"), timeout=TIMEOUT, what="the callee in the room on ast2")
        os.killpg(frozen.process.pid, signal.SIGSTOP)
        try:
            await wait_until(engine, lambda: callee_in("ast1"), timeout=TIMEOUT, what="the callee again, on ast1")
        finally:
            os.killpg(frozen.process.pid, signal.SIGCONT)

        async def stale_room_closed() -> bool:
            return conference.room not in await asyncio.to_thread(rooms_on, frozen)

        await wait_until(engine, stale_room_closed, timeout=TIMEOUT, what="the stale room on ast2 closed")
        log = await engine.services.planning.events(owner.id, conference.id)
        assert [e["detail"] for e in log if e["kind"] == "conference.room_closed"] == [{"by": "recovery"}]
        assert await callee_in("ast1")
        assert conference.room in await asyncio.to_thread(rooms_on, stack.nodes[0])
        assert [number for number, _ in stack.carrier.invites(since)].count(callee) == 2
    finally:
        for item in (filler, conference):
            await engine.services.live.end(owner.id, item.id)


async def test_a_dead_node_s_conference_moves_and_the_node_gets_no_calls(stack: Stack,
                                                                        operator_api: ApiClient) -> None:
    """A conference on ast2 with two callees and a dial-in caller; SIGKILL ast2 (last test of the
    module: the stack goes down after it). Within 15 s both callees ring again from ast1 (the
    carrier sees exactly one INVITE per attempt: two each), the dial-in caller is marked left
    with reason node_failed and the conference runs on ast1. Kamailio's OPTIONS probe takes ast2
    out of the dispatcher, so dial-ins land on ast1; the heartbeat stores it as down."""
    engine = stack.engine
    owner = await engine.services.accounts.create(random_account_phone(), PASSWORD)
    filler = await engine.services.planning.plan(owner.id, ConferencePlan(
        subject="filler", start=None, duration_minutes=10, max_participants=2))
    callees = [f"37529{secrets.randbelow(10**6):06d}{index}" for index in range(2)]
    since = stack.carrier.message_offset()
    conference = await engine.services.planning.plan(owner.id, ConferencePlan(
        subject="moves", start=None, duration_minutes=10, max_participants=4,
        participants=tuple(ParticipantPlan(number) for number in callees)))
    assert (filler.node_id, conference.node_id) == ("ast1", "ast2")

    async def in_room(count: int) -> list | None:
        rows = (await engine.services.planning.get(owner.id, conference.id)).participants
        return rows if sum(r.state == "connected" for r in rows) == count else None

    caller = await stack.sipp.caller(f"{conference.conference_number}#,{conference.guest_pin}#",
                                     caller="375297770001", service=stack.settings.access_number)
    try:
        await wait_until(engine, lambda: in_room(3), timeout=TIMEOUT, what="two callees and a caller in the room")
        killed_at = asyncio.get_running_loop().time()
        stack.nodes[1].kill()

        async def rang_again() -> bool:
            numbers = [number for number, _ in stack.carrier.invites(since)]
            return all(numbers.count(n) >= 2 for n in callees)

        await wait_until(engine, rang_again, timeout=TIMEOUT, what="the callees invited again")
        assert asyncio.get_running_loop().time() - killed_at < 15.0
        rows = await wait_until(engine, lambda: in_room(2), timeout=TIMEOUT, what="the callees back in the room")
        moved = await engine.services.planning.get(owner.id, conference.id)
        assert moved.state == "running" and moved.node_id == "ast1"
        dialin = [r for r in moved.participants if r.origin == "dialin"]
        assert [(r.state, r.failure_reason) for r in dialin] == [("left", "node_failed")]
        assert {r.node_id for r in rows} == {"ast1"}
        assert moved.room in await asyncio.to_thread(rooms_on, stack.nodes[0])
        invites = [number for number, _ in stack.carrier.invites(since)]
        assert sorted(n for n in invites if n in callees) == sorted(callees * 2), invites
    finally:
        await caller.stop()
        for item in (filler, conference):
            await engine.services.live.end(owner.id, item.id)

    before = await asyncio.to_thread(calls_processed, stack.nodes[0])
    callers = [await stack.sipp.caller("1#", service=stack.settings.access_number) for _ in range(NODES)]
    try:
        async def all_on_the_live_node() -> bool:
            return await asyncio.to_thread(calls_processed, stack.nodes[0]) >= before + NODES

        await wait_until(stack.engine, all_on_the_live_node, timeout=TIMEOUT, what="every dial-in on ast1")
    finally:
        for caller in callers:
            await caller.stop()

    async def ast2_down() -> bool:
        listing = await operator_api.get("/operator/nodes")
        return {n["node_id"]: n["state"] for n in listing.body["nodes"]} == {"ast1": "up", "ast2": "down"}

    await wait_until(stack.engine, ast2_down, timeout=TIMEOUT, what="ast2 shown down")


@pytest.mark.parametrize(("node", "token"), [
    ("ast2", "vi-' OR 1=1 --"),  # not a token at all
    ("ast2", "vi-" + "0" * 16),  # a token's shape, but no dial-in waits for it
    ("ast9", "vi-" + "1" * 16),  # a node the engine does not have
    ("ast1", "vi-" + "a" * 15 + "\x07"),  # a control character in place of the last digit
    ("", "vi-" + "2" * 16),  # no node named
])
async def test_a_forged_hand_over_reaches_no_room(stack: Stack, node: str, token: str) -> None:
    """The engine's FastAGI route that a node's veche-internode context asks (with the secret the
    nodes share, as a compromised node would): a forged token sets no room, so the dialplan hangs
    up, and the engine keeps answering."""
    from tests.integration.test_agi_edge import header

    settings = stack.engine.settings
    reader, writer = await asyncio.open_connection(settings.agi_host, settings.agi_port)
    try:
        writer.write(header(f"handover?node={node}", settings.agi_secret, token, agi_context="veche-internode"))
        await writer.drain()
        sent = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    assert b"SET VARIABLE" not in sent, sent
    assert (await stack.engine.services.planning.list(None)) is not None  # the engine still answers
