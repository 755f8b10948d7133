"""Network quality report: reads RTCP statistics of each connected participant's media channel
from its media node and rates them (jitter, loss, round-trip time, codec, estimated MOS, verdict)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from engine.adapters.asterisk import MediaNodes
from engine.domain import quality as rules
from engine.domain.errors import AmiError
from engine.domain.model import Origin, Participant, ParticipantState
from engine.services.conference_planning import ConferencePlanning

log = logging.getLogger(__name__)

class QualityService:
    def __init__(self, planning: ConferencePlanning, nodes: MediaNodes) -> None:
        self.planning = planning
        self.nodes = nodes

    async def report(self, owner_id: int | None, conference_id: int, *,
                     joined_before: datetime | None = None) -> list[dict[str, Any]]:
        """One row per connected participant (with ``joined_before``, only those in the room since
        before it): participant_id, number, name, codec, jitter_ms, loss_percent, rtt_ms, mos,
        verdict. NotFound when the conference is not the owner's."""
        conference = await self.planning.get(owner_id, conference_id)
        connected = [p for p in conference.participants if p.state == ParticipantState.CONNECTED
                     and (joined_before is None or (p.joined_at is not None and p.joined_at < joined_before))]
        return list(await asyncio.gather(*(self._row(p, p.node_id or conference.node_id) for p in connected)))

    async def _row(self, participant: Participant, node_id: str) -> dict[str, Any]:
        row: dict[str, Any] = {
            "participant_id": participant.id, "number": participant.number, "name": participant.name,
            "codec": None, "jitter_ms": None, "loss_percent": None, "rtt_ms": None, "mos": None,
            "verdict": str(rules.Verdict.UNKNOWN),
        }
        adapter = self.nodes.get(node_id)
        if adapter is None or not adapter.connected:
            return row
        if not participant.call_id:
            return row
        try:
            found = await adapter.media_quality(participant.call_id, participant.channel,
                                                dialin=participant.origin == Origin.DIALIN)
            if found is None:
                return row
            rtcp, native = found
        except AmiError as exc:
            log.info("quality of participant %s unavailable: %s", participant.id, exc)
            return row
        codec = rules.codec_name(native) or None
        stats = rules.parse_rtcp_all(rtcp)
        row["codec"] = codec
        if stats is None or stats.packets == 0:
            return row
        mos = rules.estimate_mos(stats.jitter_ms, stats.loss_percent, stats.rtt_ms, codec or "")
        row.update(jitter_ms=round(stats.jitter_ms, 2), loss_percent=round(stats.loss_percent, 2),
                   rtt_ms=round(stats.rtt_ms, 2), mos=mos, verdict=str(rules.verdict(mos)))
        return row
