"""Asterisk holds the engine to least privilege and to the number plan: the engine's AMI user
cannot load modules, run System(), CLI commands or reloads; the ``veche-dialout`` context is
rendered from the number plan and the operator's groups, a changed group reaches Asterisk, and
every number sent straight into ``veche-dialout`` reaches the SIPp trunk far end exactly when
the engine's plans allow it (INVITEs counted at the far end)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter

import pytest

from engine.adapters.asterisk import contract
from engine.adapters.asterisk.ami import AmiEvent
from engine.adapters.asterisk.events import AMI_EVENTS
from engine.domain.errors import AmiError
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.domain.numberplan import NumberPlan
from tests.support.factories import create_account, wait_for_bus_event

pytestmark = pytest.mark.stack

RESPONSE_TIMEOUT = 30.0


async def test_engine_ami_user_cannot_load_run_or_reload(engine, asterisk) -> None:
    marker = f"/tmp/veche-system-{secrets.token_hex(4)}"
    refused = [
        ("ModuleLoad", {"Module": "app_system.so", "LoadType": "load"}),
        ("Originate", {"Channel": "Local/join@veche-room/n", "Application": "System",
                       "Data": f"touch {marker}", "Async": "true"}),
        ("Command", {"Command": "core show version"}),
        ("Reload", {"Module": "pbx_config"}),
        ("GetConfig", {"Filename": "manager.conf"}),
        ("UpdateConfig", {"SrcFilename": "manager.conf", "DstFilename": "manager.conf", "Action-000000": "NewCat",
                          "Cat-000000": "x"}),
        ("DialplanExtensionAdd", {"Context": "veche-dialout", "Extension": "_X.", "Priority": "1",
                                  "Application": "Goto", "ApplicationData": "veche-trunk,${EXTEN},1"}),
    ]
    for name, headers in refused:
        with pytest.raises(AmiError) as info:
            await engine.ami.action(name, **headers)
        assert "ermission denied" in str(info.value) or "orbidden" in str(info.value), (name, str(info.value))
    assert not (asterisk.settings.rootfs / marker.lstrip("/")).exists()
    # what the engine does use still works
    await engine.ami.action("CoreStatus")
    await engine.ami.channel_ids()
    await engine.ami.confbridge_rooms()


async def test_only_the_events_the_engine_reads_leave_asterisk(engine, pstn) -> None:
    """The AMI user's event filters (asterisk-config/manager.conf) on the real Asterisk: a
    dial-out brings the engine only events it reads, and of its DialBegins only the callee leg's,
    which the engine tells as ringing (the Originate's own DialBegin stays in Asterisk)."""
    seen: list[AmiEvent] = []
    engine.ami.subscribe(seen.append)
    try:
        owner = await create_account(engine.pool)
        number = f"37529{secrets.randbelow(10**4):04d}201"
        connected = asyncio.ensure_future(wait_for_bus_event(
            engine, lambda e: e.kind == "participant.state" and e.data.get("state") == "connected"))
        await asyncio.sleep(0)
        conference = await engine.services.planning.plan(owner, ConferencePlan(
            subject="event filters", start=None, duration_minutes=5, max_participants=2,
            participants=(ParticipantPlan(number),)))
        await connected
        await engine.services.live.end(owner, conference.id)
    finally:
        engine.ami.unsubscribe(seen.append)
    call_id = next(p.call_id for p in (await engine.services.planning.get(owner, conference.id)).participants)
    mine = [e for e in seen if call_id in (e.get("Uniqueid"), e.get("DestUniqueid"), e.get("Call"))
            or e.get("Uniqueid") == f"{call_id}{contract.FAR_LEG_SUFFIX}"]
    assert {"OriginateResponse", "DialBegin", "ConfbridgeJoin"} <= {e.name for e in mine}, [e.name for e in mine]
    assert {e.name for e in seen} <= set(AMI_EVENTS), sorted({e.name for e in seen} - set(AMI_EVENTS))
    dial_begins = [e for e in seen if e.name == "DialBegin" and call_id in e.get("Uniqueid") + e.get("DestUniqueid")]
    assert [e.get("Uniqueid") for e in dial_begins] == [f"{call_id}{contract.FAR_LEG_SUFFIX}"], dial_begins


async def _engine_allows(engine, number: str) -> bool:
    """Does any account's plan (the default or an operator's group) let the engine dial it?"""
    numbering = engine.services.plans
    plans = [numbering.default] + [numbering.of_group(g) for g in await engine.services.plan_groups.repo.list_groups()]
    return any(plan.is_allowed(number) for plan in plans)


async def far_end_saw(pstn, check, what: str) -> None:
    """Poll SIPp's message trace (a file: nothing to await) until ``check(invited numbers)``."""
    deadline = time.monotonic() + RESPONSE_TIMEOUT
    while not check(pstn.invited_numbers()):
        assert time.monotonic() < deadline, f"the far end never saw {what}"
        await asyncio.sleep(0.1)


async def _send_straight(engine, numbers: list[str]) -> None:
    """Originate each number into veche-dialout, past the engine's own checks, and wait for the
    outcome of every one (busy callees: ...486)."""
    ids = {f"dp-{secrets.token_hex(6)}": number for number in numbers}
    outcomes = [asyncio.ensure_future(engine.ami.wait_for_event(
        lambda e, cid=cid: e.name == "OriginateResponse" and e.get("Uniqueid") == cid, timeout=RESPONSE_TIMEOUT))
        for cid in ids]
    await asyncio.sleep(0)
    for call_id, number in ids.items():
        await engine.ami.originate(
            channel_id=call_id, other_channel_id=f"{call_id}-2", channel=f"Local/{number}@veche-dialout/n",
            context="veche-room", exten="join",
            variables={"VECHE_ROOM": "dialout-plan-never", "VECHE_PROFILE": "veche_guest", "VECHE_CALL": call_id},
            timeout_ms=10000)
    results: list[AmiEvent] = await asyncio.gather(*outcomes)
    assert all(r.get("Response") == "Failure" for r in results), [r.headers for r in results]


async def _reaching_the_trunk(engine, pstn, numbers: list[str]) -> set[str]:
    """Send ``numbers`` straight into veche-dialout; return those whose INVITE reached the far
    end. A round ends when the INVITEs of every number the engine allows and of a sentinel every
    plan allows have arrived (the Originates run at once, so they arrive in any order)."""
    sentinel = f"37529{secrets.randbelow(10**4):04d}486"
    awaited = [n for n in numbers if await _engine_allows(engine, n)] + [sentinel]
    before = Counter(pstn.invited_numbers())

    def all_arrived(invited: list[str]) -> bool:
        seen = Counter(invited) - before
        return all(seen[n] for n in awaited)

    await _send_straight(engine, [*numbers, sentinel])
    await far_end_saw(pstn, all_arrived, "the INVITEs of the numbers the plans allow")
    invited = Counter(pstn.invited_numbers()) - before
    return {n for n in numbers if invited[n]}


async def test_dialout_context_follows_the_number_plan_and_its_groups(engine, asterisk, pstn) -> None:
    dialplan = engine.services.dialplan
    dialplan.sink = asterisk.install_dialout  # the session's Asterisk is not the one `./veche run` names
    dialplan.installed = None
    try:
        await dialplan.sync("test start")
        candidates = [n for n in (f"{d}486" for d in "98765432") if not await _engine_allows(engine, n)]
        assert candidates, "every short number N486 is already allowed by some group"
        new = candidates[0]  # a short number no plan allows yet
        numbers = [
            f"37529{secrets.randbelow(10**4):04d}486", f"37517{secrets.randbelow(10**4):04d}486",  # default plan
            new, "1486", "7486",  # short numbers: no prefixes configured
            "375902123486", "375091234486", "3752912345486", "37529123486",  # premium, 3750, too long/short
            "00442079460486", "80291234486", "8101234567486", "12345486", "486",
        ]
        reached = await _reaching_the_trunk(engine, pstn, numbers)
        expected = {n for n in numbers if await _engine_allows(engine, n)}
        assert len(expected) >= 2
        assert reached == expected, (sorted(reached), sorted(expected))

        # the operator adds a group for the new short number: Asterisk learns it at once
        operator_id = await create_account(engine.pool, role="operator")
        group = f"dp-{secrets.token_hex(4)}"
        await engine.services.plan_groups.save_group(operator_id, group, patterns=[new])
        assert new in (dialplan.installed.allowed if dialplan.installed else ())
        assert new in asterisk.cli("dialplan show veche-dialout")
        assert await _engine_allows(engine, new)
        expected = {n for n in (new, "1486") if await _engine_allows(engine, n)}
        assert new in expected
        assert await _reaching_the_trunk(engine, pstn, [new, "1486"]) == expected

        # through the engine too: an account of that group dials the number, the far end sees it
        customer = await create_account(engine.pool, plan_group=group)
        before = pstn.invited_numbers().count(new)
        conference = await engine.services.planning.plan(customer, ConferencePlan(
            subject="group dial", start=None, duration_minutes=5, max_participants=2,
            participants=(ParticipantPlan(new),)))

        await far_end_saw(pstn, lambda invited: invited.count(new) > before, "the group's number")
        await engine.services.live.end(customer, conference.id)

        # and the group's removal takes the number away from Asterisk again
        await engine.pool.execute("UPDATE accounts SET plan_group = 'default' WHERE id = $1", customer)
        await engine.services.plan_groups.delete_group(operator_id, group)
        assert new not in asterisk.cli("dialplan show veche-dialout")
        assert await _reaching_the_trunk(engine, pstn, [new]) == set()
    finally:
        dialplan.sink = None


async def test_short_numbers_are_the_operators_prefixes_only(engine, asterisk, pstn) -> None:
    """VECHE_SHORT_NUMBER_PREFIXES=5: 5xxx numbers reach the trunk, other short numbers do not."""
    dialplan, numberplans = engine.services.dialplan, engine.services.plans
    plans = dialplan.default_plan, numberplans.default
    with_prefix = NumberPlan.from_settings(engine.settings.with_(short_number_prefixes=("5",)))
    dialplan.sink, dialplan.installed = asterisk.install_dialout, None
    try:
        dialplan.default_plan = numberplans.default = with_prefix
        await dialplan.sync("test: short-number prefix 5")
        assert "_5XXX" in asterisk.cli("dialplan show veche-dialout")
        numbers = ["5486", "5123486", "0486", "9486"]
        expected = {n for n in numbers if await _engine_allows(engine, n)}
        assert "5486" in expected and "5123486" not in expected and "0486" not in expected
        assert await _reaching_the_trunk(engine, pstn, numbers) == expected
    finally:
        dialplan.default_plan, numberplans.default = plans
        dialplan.installed = None
        await dialplan.sync("test end")
        dialplan.sink = None
    assert "_5XXX" not in asterisk.cli("dialplan show veche-dialout")
