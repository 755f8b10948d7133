"""The foundation against the real parts: AMI login, dial-out into ConfBridge, distinct call
outcomes, dial-in DTMF through FastAGI, and AMI reconnects through a TCP proxy."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.adapters.asterisk.ami import AmiEvent, AmiLink
from engine.agi import AgiCall, AgiServer
from engine.config import Settings
from engine.domain.errors import AmiUnavailable
from engine.stack import AsteriskProcess
from tests.conftest import make_settings
from tests.support.proxy import TcpProxy
from tests.support.sipp import SippFactory

pytestmark = pytest.mark.stack


@pytest.fixture
async def ami(settings: Settings, asterisk) -> AmiLink:
    adapter = AmiLink(settings.ami, settings.node_id)
    await adapter.connect()
    yield adapter
    await adapter.close()


async def dial(ami: AmiLink, number: str, room: str) -> str:
    call_id = f"t-{secrets.token_hex(6)}"
    await ami.originate(
        channel_id=call_id, other_channel_id=f"{call_id}-2",
        channel=f"Local/{number}@veche-dialout/n", context="veche-room", exten="join",
        variables={"VECHE_ROOM": room, "VECHE_PROFILE": "veche_guest", "VECHE_CALL": call_id},
        timeout_ms=5000)
    return call_id


async def test_ami_login_and_core_status(ami: AmiLink) -> None:
    assert ami.connected
    status = await ami.action("CoreStatus")
    assert status.get("CoreCurrentCalls") is not None


async def test_originate_lands_in_confbridge(ami: AmiLink, pstn) -> None:
    room = f"room-{secrets.token_hex(4)}"
    joined = asyncio.ensure_future(ami.wait_for_event(
        lambda e: e.name == "ConfbridgeJoin" and e.get("Conference") == room, timeout=10))
    call_id = await dial(ami, "375290000200", room)
    event = await joined
    assert event.get("Uniqueid") == call_id
    members = await ami.confbridge_members(room)
    assert [m.get("Uniqueid") for m in members] == [call_id]
    left = asyncio.ensure_future(ami.wait_for_event(
        lambda e: e.name == "ConfbridgeLeave" and e.get("Uniqueid") == call_id))
    await ami.hangup(members[0].get("Channel"))
    await left


@pytest.mark.parametrize(("number", "status", "cause"), [
    ("375290000486", "BUSY", "17"),
    ("375290000603", "CHANUNAVAIL", "21"),
    ("375290000408", "NOANSWER", "0"),
    ("375290000503", "CONGESTION", "34"),
])
async def test_failed_callees_have_distinct_outcomes(ami: AmiLink, pstn, number: str,
                                                     status: str, cause: str) -> None:
    results: dict[str, AmiEvent] = {}
    done = asyncio.Event()

    def collect(event: AmiEvent) -> None:
        if event.name == "UserEvent" and event.get("UserEvent") == "VecheDialResult":
            results["dial"] = event
        if event.name == "OriginateResponse":
            results["originate"] = event
        if {"dial", "originate"} <= results.keys():
            done.set()

    ami.subscribe(collect)
    try:
        call_id = await dial(ami, number, "room-never")
        await asyncio.wait_for(done.wait(), 10)
    finally:
        ami.unsubscribe(collect)
    assert results["originate"].get("Uniqueid") == call_id
    assert results["originate"].get("Response") == "Failure"
    assert results["dial"].get("Call") == call_id
    assert (results["dial"].get("DialStatus"), results["dial"].get("Cause")) == (status, cause)


async def test_number_outside_dialout_plan_never_reaches_trunk(ami: AmiLink, pstn) -> None:
    """The dial-out context itself refuses what the engine's validation should already stop."""
    response = asyncio.ensure_future(ami.wait_for_event(lambda e: e.name == "OriginateResponse"))
    await dial(ami, "4412345", "room-never")
    event = await response
    assert event.get("Response") == "Failure"


@pytest.fixture(scope="module")
def bare_asterisk(run_dir: Path, database_url: str) -> Iterator[tuple[Settings, AsteriskProcess]]:
    """An Asterisk of its own whose FastAGI port no engine holds, for the raw AGI test."""
    own = make_settings(run_dir / "bare", database_url=database_url)
    process = AsteriskProcess(own, name=f"bare-{os.getpid()}")
    process.start()
    yield own, process
    process.stop()
    process.remove()


async def test_dialin_dtmf_reaches_fastagi(bare_asterisk: tuple[Settings, AsteriskProcess], run_dir: Path) -> None:
    """A SIPp caller dials the access number; its digits arrive in the FastAGI route."""
    own, _ = bare_asterisk
    server = AgiServer(own.agi_host, own.agi_port, own.agi_secret)
    received: asyncio.Queue[tuple[str | None, str | None, str]] = asyncio.Queue()

    async def dialin(call: AgiCall) -> None:
        first = call.first_entry  # heard by the dialplan's Read() during the first prompt
        second = await call.get_data("silence/1", timeout_ms=5000, max_digits=12)
        await received.put((first, second, call.caller_number))

    server.route("dialin", dialin)
    await server.start()
    try:
        sipp = SippFactory(run_dir / "bare-sipp", own.sip_port)
        caller = await sipp.caller("123456#,987654#", caller="375291234567")
        first, second, number = await asyncio.wait_for(received.get(), 20)
        assert (first, second) == ("123456", "987654")
        assert number == "375291234567"
        assert await caller.wait(15) == 0, caller.log_text()[-2000:]
    finally:
        await server.stop()


async def test_ami_link_cut_reconnects_and_reports(settings: Settings, asterisk) -> None:
    proxy = await TcpProxy(settings.ami.host, settings.ami.port).start()
    target = settings.ami.__class__(host="127.0.0.1", port=proxy.port, username=settings.ami.username,
                                    secret=settings.ami.secret)
    adapter = AmiLink(target, settings.node_id, ping_interval=0.3, pong_timeout=0.5)
    changes: asyncio.Queue[bool] = asyncio.Queue()
    adapter.on_link_change(lambda node, up: changes.put_nowait(up))
    await adapter.connect()
    try:
        proxy.cut()
        assert await asyncio.wait_for(changes.get(), 5) is False
        with pytest.raises(AmiUnavailable):
            await adapter.action("Ping")
        proxy.restore()
        assert await asyncio.wait_for(changes.get(), 10) is True
        assert adapter.reconnects == 1
        await adapter.action("Ping")

        # a half-open link (no bytes, no FIN) is noticed by the liveness check
        proxy.stall()
        assert await asyncio.wait_for(changes.get(), 5) is False
        proxy.restore()
        assert await asyncio.wait_for(changes.get(), 10) is True
        assert adapter.reconnects == 2
    finally:
        await adapter.close()
        await proxy.stop()
