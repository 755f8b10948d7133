"""Dial-in on any node: the caller Kamailio handed to one media node for a conference that lives
on another is admitted once (conference number and PIN on the first node), then carried over
the authenticated inter-node PJSIP trunk with a one-time token; the conference's node asks the
engine for that token and puts the call straight into the room with the admitted role."""

from __future__ import annotations

import logging
from typing import Protocol

from engine.adapters.asterisk.contract import (
    FORWARD_HOST_VARIABLE,
    FORWARD_PORT_VARIABLE,
    FORWARD_TOKEN_VARIABLE,
    PARTICIPANT_VARIABLE,
    dialin_profile,
    is_dialin_token,
    room_entry,
)
from engine.adapters.db.conferences import ConferenceRepository
from engine.config import NodeSpec
from engine.domain.model import Conference, ConferenceState, Origin, ParticipantState, Role
from engine.services.nodes import Placement

log = logging.getLogger(__name__)

def room_variables(conference: Conference, role: Role) -> dict[str, str]:
    """The channel variables that put an admitted caller into the conference's room."""
    return room_entry(conference.room, dialin_profile(role, conference.wait_for_chair), conference.max_participants)


class HandoverCall(Protocol):
    """What the handover needs of a call (engine.agi.AgiCall provides it)."""

    @property
    def node_id(self) -> str | None:
        """The media node the call is on (None: not said, a single node)."""

    @property
    def headers(self) -> dict[str, str]: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def set_language(self, language: str) -> None: ...


class NodeHandover:
    """Sends an admitted dial-in to its conference's node and receives it there."""

    def __init__(self, repo: ConferenceRepository, placement: Placement, specs: tuple[NodeSpec, ...]) -> None:
        self.repo = repo
        self.placement = placement
        self.specs = {spec.node_id: spec for spec in specs}

    async def node_for(self, conference: Conference) -> str:
        """The node an admitted caller joins the conference on: a scheduled conference taking its
        first early caller is placed now (as at its start), a placed one stays where it is."""
        if conference.state == ConferenceState.SCHEDULED:
            return await self.placement.place(conference) or conference.node_id
        return conference.node_id

    def elsewhere(self, call: HandoverCall, node_id: str) -> bool:
        """Whether the call is on another node than ``node_id`` (and must be handed over)."""
        return len(self.specs) > 1 and call.node_id in self.specs and call.node_id != node_id

    async def send(self, call: HandoverCall, node_id: str, token: str) -> None:
        """Tell the call's dialplan to dial the conference's node over the inter-node trunk,
        carrying the admitted participant's token."""
        spec = self.specs[node_id]
        await call.set_variable(FORWARD_TOKEN_VARIABLE, token)
        await call.set_variable(FORWARD_PORT_VARIABLE, str(spec.sip_port))
        await call.set_variable(FORWARD_HOST_VARIABLE, spec.sip_host)
        log.info("dial-in %s admitted on node %s: handed over to node %s", token, call.node_id, node_id)

    async def receive(self, call: HandoverCall, token: str) -> bool:
        """A handed-over call arrived on its conference's node: put it into the room of the
        participant the token names, when that is a dial-in admitted moments ago for a live
        conference on this very node (anything else leaves the room unset: the dialplan hangs up)."""
        if not is_dialin_token(token) or call.node_id not in self.specs:
            log.warning("handover refused on node %s: malformed token %r or unknown node", call.node_id, token[:40])
            return False
        participant = await self.repo.participant_by_call_id(token)
        if (participant is None or participant.origin != Origin.DIALIN or participant.state != ParticipantState.CALLING
                or participant.node_id != call.node_id or participant.channel):
            log.warning("handover refused on node %s: no dial-in waits for token %s", call.node_id, token)
            return False
        conference = await self.repo.get(participant.conference_id, with_participants=False)
        if conference is None or conference.node_id != call.node_id or conference.state not in (
                ConferenceState.SCHEDULED, ConferenceState.RUNNING):
            log.warning("handover refused on node %s: conference of token %s is not live here", call.node_id, token)
            return False
        await call.set_language(conference.language)
        await call.set_variable(PARTICIPANT_VARIABLE, token)
        for name, value in room_variables(conference, participant.role).items():
            await call.set_variable(name, value)
        log.info("dial-in %s (participant %s) received on node %s", token, participant.id, call.node_id)
        return True
