"""Node failure: when a media node is down (its AMI link silent for DOWN_AFTER_SECONDS), each
conference running on it is re-created on the node with the most free seats and its dial-out
participants are called again from there; its dial-in callers, whose calls ended with the node,
are marked left with reason node_failed. Scheduled conferences need nothing: placement skips a
node that is down. The node's stale rooms, should it come back with them, are closed by the
recovery service (engine.adapters.db.nodes.NodeRepository.finished_rooms)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from engine.adapters.db.conferences import ConferenceRepository, Left
from engine.domain.errors import VecheError
from engine.domain.model import Conference, ConferenceState, FailureReason, Origin, Participant, ParticipantState
from engine.domain.nodes import place
from engine.services.bus import Bus, DomainEvent
from engine.services.calls import CallService
from engine.services.nodes import NO_NODE, Alerts

log = logging.getLogger(__name__)

IN_A_CALL = (ParticipantState.CALLING, ParticipantState.RINGING, ParticipantState.CONNECTED)


class NodeFailover:
    """Moves the running conferences of a failed node; see the module docstring."""

    def __init__(self, repo: ConferenceRepository, calls: CallService, bus: Bus,
                 alerts: Alerts, node_ids: list[str]) -> None:
        self.repo = repo
        self.calls = calls
        self.bus = bus
        self.alerts = alerts
        self.node_ids = node_ids

    async def node_failed(self, node_id: str) -> list[int]:
        """Move every conference running on the failed node; the ids of those moved."""
        moved = []
        for conference in await self.repo.list(None, [str(ConferenceState.RUNNING)], node_id=node_id):
            try:
                if await self._rehome(conference, node_id):
                    moved.append(conference.id)
            except Exception:  # noqa: BLE001 - one conference's trouble never stops the others' move
                log.exception("conference %s: moving it off failed node %s failed", conference.id, node_id)
        return moved

    async def _rehome(self, conference: Conference, dead: str) -> bool:
        seats = conference.max_participants
        target = await self.repo.rehome(conference.id, dead, self.node_ids, lambda nodes: place(nodes, seats))
        if target is None:
            log.warning("conference %s: node %s failed and no node has %d seats free", conference.id, dead, seats)
            await self.repo.log_event(conference.id, "conference.rehome_failed", detail={"node": dead})
            self.alerts.alert(conference.owner_id, NO_NODE,
                              f"conference {conference.id}: node {dead} failed, no node has {seats} seats free")
            return False
        now = datetime.now(UTC)
        dialin_left: list[int] = []
        redial: list[Participant] = []
        for participant in conference.participants:
            if participant.state not in IN_A_CALL:
                continue
            self.calls.forget_attempt(participant.call_id)  # its call died with the node
            left = await self._left(participant, now)
            if left is None:
                continue
            if participant.origin == Origin.DIALIN:
                dialin_left.append(participant.id)
            else:
                redial.append(left)
            await self.bus.publish(DomainEvent(
                kind="participant.state", conference_id=conference.id, owner_id=conference.owner_id,
                participant_id=participant.id,
                data={"state": "left", "reason": str(FailureReason.NODE_FAILED) if participant.origin == Origin.DIALIN
                      else None, "cause": None, "recovered": True}))
        moved = await self.repo.get(conference.id)
        queued: list[int] = []
        if moved is not None and moved.state == ConferenceState.RUNNING and redial:
            try:
                queued = await self.calls.dial(moved, redial, actor="engine:failover", strict_rate=False)
            except VecheError as exc:  # e.g. the account was blocked meanwhile
                log.warning("conference %s: re-invite after node failure refused: %s", conference.id, exc)
        detail = {"from": dead, "to": target, "reinvited": queued, "dialin_left": dialin_left}
        log.warning("conference %s moved off failed node %s to %s: %d re-invited, %d dial-in callers lost",
                    conference.id, dead, target, len(queued), len(dialin_left))
        await self.repo.log_event(conference.id, "conference.rehomed", detail=detail)
        await self.bus.publish(DomainEvent(kind="conference.rehomed", conference_id=conference.id,
                                           owner_id=conference.owner_id, data=detail))
        return True

    async def _left(self, participant: Participant, now: datetime) -> Participant | None:
        """The participant's call ended with the node: left (a dial-in caller with reason node_failed)."""
        detail = {"reason": "node_failed", "node": participant.node_id}
        if participant.state == ParticipantState.CONNECTED:
            stored = await self.repo.mark_left({participant.id: Left(now, participant.call_id, detail=detail)})
            left = stored.get(participant.id)
        else:
            left = await self.repo.update_participant(participant.id, only_states=[str(s) for s in IN_A_CALL],
                                                      state=ParticipantState.LEFT, left_at=now)
            if left is not None:
                await self.repo.log_event(participant.conference_id, "participant.left",
                                          participant_id=participant.id, detail=detail)
        if left is not None and participant.origin == Origin.DIALIN:
            left = await self.repo.update_participant(participant.id, failure_reason=FailureReason.NODE_FAILED)
        return left
