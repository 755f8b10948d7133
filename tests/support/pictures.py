"""A short real conference for the pictures: a SIPp callee that answers with RTP audio (so it
talks and has RTCP numbers) under a hostile name, and a SIPp dial-in caller; network numbers
sampled until each participant has some, a load sample taken while both are connected."""

from __future__ import annotations

import asyncio
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from engine.domain.model import ConferencePlan, ParticipantPlan
from tests.support.dialin_factories import random_caller
from tests.support.factories import wait_until

RTP_CALLEE = "375290007201"  # pstn.xml: ...201 answers and sends RTP audio
HOSTILE_NAME = '<b>"&\' Ann'
SVG_NS = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class Pictured:
    conference_id: int
    callee_id: int
    caller_id: int


async def pictured_conference(engine: Any, sipp: Any, owner_id: int) -> Pictured:
    planning, live, pictures = engine.services.planning, engine.services.live, engine.services.pictures
    conference = await planning.plan(owner_id, ConferencePlan(
        subject="Pictures", start=None, duration_minutes=10, max_participants=5,
        participants=(ParticipantPlan(RTP_CALLEE, name=HOSTILE_NAME),)))
    caller = await sipp.caller(f"{conference.conference_number}#,{conference.guest_pin}#", caller=random_caller())
    try:
        async def both_connected():
            current = await planning.get(owner_id, conference.id)
            return current if sum(p.state == "connected" for p in current.participants) == 2 else None

        current = await wait_until(engine, both_connected, timeout=40, what="callee and caller connected")
        by_origin = {p.origin: p for p in current.participants}
        await pictures.sample_load()

        async def callee_talked():
            rows = await pictures.repo.talk_spans(conference.id)
            return any(r["participant_id"] == by_origin["dialout"].id for r in rows)

        await wait_until(engine, callee_talked, timeout=40, what="the RTP callee talking")

        # the engine's own sampler (every VECHE_QUALITY_SAMPLE_SECONDS) stores the numbers; nothing
        # announces a sample, so poll until each participant has two (a line, not just a point)
        deadline = time.monotonic() + 8 * engine.settings.quality_sample_seconds + 20
        while True:
            samples = await pictures.repo.quality_samples(conference.id)
            counts = {p.id: sum(s["participant_id"] == p.id for s in samples) for p in current.participants}
            if min(counts.values()) >= 2:
                break
            assert time.monotonic() < deadline, f"too few network samples: {counts}"
            await asyncio.sleep(0.5)
    finally:
        await live.end(owner_id, conference.id)
        await caller.wait(20)
    return Pictured(conference.id, by_origin["dialout"].id, by_origin["dialin"].id)


def svg_of(page_text: str, kind: str, svg_id: str | None = None) -> ET.Element:
    """The inline <svg data-chart=kind> (with title id ``svg_id``-t) of a page, parsed."""
    for match in re.finditer(r"<svg\b.*?</svg>", page_text, re.S):
        root = ET.fromstring(match.group(0))
        if root.get("data-chart") == kind and (svg_id is None or root.get("aria-labelledby", "").startswith(svg_id)):
            return root
    raise AssertionError(f"no {kind} chart {svg_id or ''} on the page")
