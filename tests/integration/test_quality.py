"""The quality report on live calls: a dial-out SIPp callee that sends RTP and a dial-in caller
get jitter, loss, round-trip time, codec, an estimated MOS and a verdict read from Asterisk."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.domain.errors import NotFound
from engine.domain.model import ConferencePlan, ParticipantPlan
from tests.support.dialin_factories import random_caller
from tests.support.factories import create_account, wait_until

pytestmark = pytest.mark.stack

RTP_CALLEE = "375290007201"  # pstn.xml: ...201 answers and sends RTP audio


async def test_report_has_numbers_for_live_calls(engine, sipp) -> None:
    planning, live, quality = engine.services.planning, engine.services.live, engine.services.quality
    owner = await create_account(engine.pool)
    conference = await planning.plan(owner, ConferencePlan(
        subject="quality", start=None, duration_minutes=10, max_participants=5,
        participants=(ParticipantPlan(RTP_CALLEE),)))
    caller = await sipp.caller(f"{conference.conference_number}#,{conference.guest_pin}#", caller=random_caller())
    try:
        async def both_connected():
            current = await planning.get(owner, conference.id)
            return current if sum(p.state == "connected" for p in current.participants) == 2 else None

        current = await wait_until(engine, both_connected, timeout=25, what="callee and caller connected")
        by_origin = {p.origin: p for p in current.participants}

        deadline = time.monotonic() + 15
        while True:  # RTCP numbers accumulate with the media; nothing announces them
            rows = {r["participant_id"]: r for r in await quality.report(owner, conference.id)}
            if all(r["mos"] is not None for r in rows.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert set(rows) == {p.id for p in current.participants}
        for origin, participant in by_origin.items():
            row = rows[participant.id]
            assert row["number"] == participant.number
            assert row["codec"] in ("ulaw", "alaw"), (origin, row)
            assert isinstance(row["jitter_ms"], float) and row["jitter_ms"] >= 0, (origin, row)
            assert 0 <= row["loss_percent"] <= 100 and row["rtt_ms"] >= 0, (origin, row)
            assert 1.0 <= row["mos"] <= 4.5 and row["verdict"] in ("good", "fair", "poor"), (origin, row)
        # loopback: the RTP callee's audio arrives clean
        assert rows[by_origin["dialout"].id]["verdict"] == "good", rows
        # the sampler's view (joined_before): only those in the room since before the moment given
        first, last = sorted(current.participants, key=lambda p: p.joined_at)
        assert await quality.report(owner, conference.id, joined_before=first.joined_at) == []
        if first.joined_at < last.joined_at:
            settled = await quality.report(owner, conference.id, joined_before=last.joined_at)
            assert [r["participant_id"] for r in settled] == [first.id]

        stranger = await create_account(engine.pool)
        with pytest.raises(NotFound):
            await quality.report(stranger, conference.id)
    finally:
        await live.end(owner, conference.id)
        await caller.wait(20)
