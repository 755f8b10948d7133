"""Typed events of a media node and the one translation from Asterisk's AMI messages to them:
services subscribe to these and never read an AMI header."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from engine.adapters.asterisk import contract
from engine.adapters.asterisk.ami import AmiEvent, is_channel
from engine.domain.model import FailureReason


@dataclass(frozen=True, kw_only=True)
class NodeEvent:
    """Something a media node reported."""

    node_id: str


@dataclass(frozen=True, kw_only=True)
class CallEvent(NodeEvent):
    """About one call: ``call_id`` is its channel's Uniqueid (an engine-chosen id for the calls
    the engine originated), ``channel`` its channel name when it is one exact channel, ``token``
    the dial-in token the IVR put on it (None when it carries none of our shape)."""

    call_id: str
    channel: str | None = None
    token: str | None = None

    @property
    def identified(self) -> bool:
        """True when ``call_id`` names exactly one channel."""
        return is_channel(self.call_id)

    @property
    def announcer(self) -> bool:
        return contract.is_announcer(self.call_id)


@dataclass(frozen=True, kw_only=True)
class ParticipantJoined(CallEvent):
    room: str
    muted: bool = False


@dataclass(frozen=True, kw_only=True)
class ParticipantLeft(CallEvent):
    room: str


@dataclass(frozen=True, kw_only=True)
class Muted(CallEvent):
    room: str
    on: bool


@dataclass(frozen=True, kw_only=True)
class Talking(CallEvent):
    room: str
    on: bool


@dataclass(frozen=True, kw_only=True)
class CallHungUp(CallEvent):
    """A channel hung up. For the second half of a Local channel the engine originated,
    ``call_id`` is the originated call's id and ``far_leg`` is True."""

    cause: int | None = None
    far_leg: bool = False
    dialin: bool = False  # the channel was in the dial-in IVR's context


@dataclass(frozen=True, kw_only=True)
class Ringing(NodeEvent):
    """A dial-out's far leg started dialling the callee."""

    call_id: str


@dataclass(frozen=True, kw_only=True)
class CallPlaced(NodeEvent):
    """How an Originate ended: answered, or not (``reason`` is Asterisk's code, for
    ``contract.failure_from``); ``dialout`` when it dialled a participant's number."""

    call_id: str
    answered: bool
    reason: str | None = None
    dialout: bool = False


@dataclass(frozen=True, kw_only=True)
class DialOutcome(NodeEvent):
    """The dialplan's report of a dial-out's Dial: its status and Q.850 cause."""

    call_id: str
    status: str | None = None
    cause: int | None = None

    @property
    def failure(self) -> FailureReason | None:
        """The failure this outcome alone tells (None when the callee answered)."""
        if self.status == "ANSWER":
            return None
        return contract.failure_from(self.status, self.cause, None, None)[0]


@dataclass(frozen=True, kw_only=True)
class RecordingWritten(NodeEvent):
    """A recorder's file as the node names it (its path in the Asterisk root)."""

    call_id: str
    path: str


@dataclass(frozen=True, kw_only=True)
class RoomStarted(NodeEvent):
    room: str


@dataclass(frozen=True, kw_only=True)
class RoomEnded(NodeEvent):
    room: str


@dataclass(frozen=True, kw_only=True)
class NodeBooted(NodeEvent):
    """Asterisk finished starting."""


@dataclass(frozen=True, kw_only=True)
class NodeShutdown(NodeEvent):
    """Asterisk is shutting down."""


@dataclass(frozen=True, kw_only=True)
class LinkChanged(NodeEvent):
    """The AMI link to the node was lost (``up`` False) or came back after a loss."""

    up: bool


@dataclass(frozen=True, kw_only=True)
class RoomMember:
    """One member of a room, as the node lists it."""

    call_id: str
    channel: str | None
    token: str | None
    muted: bool

    @property
    def identified(self) -> bool:
        """True when ``call_id`` names exactly one channel."""
        return is_channel(self.call_id)


# The AMI events ``translate`` reads (what the node subscribes its link to).
AMI_EVENTS = ("OriginateResponse", "UserEvent", "DialBegin", "Hangup", "ConfbridgeStart", "ConfbridgeEnd",
              "ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeMute", "ConfbridgeUnmute", "ConfbridgeTalking",
              "FullyBooted", "Shutdown")


def _cause(value: str) -> int | None:
    with contextlib.suppress(ValueError):
        return int(value or 0) or None
    return None


def _call(event: AmiEvent) -> dict[str, object]:
    channel = event.get("Channel")
    token = event.channel_variable(contract.PARTICIPANT_VARIABLE)
    return {"node_id": event.node_id, "call_id": event.get("Uniqueid"),
            "channel": channel if is_channel(channel) else None,
            "token": token if contract.is_dialin_token(token) else None}


def translate(event: AmiEvent) -> NodeEvent | None:
    """The typed event an AMI event means, or None for the events the engine does not follow."""
    name, node = event.name, event.node_id
    if name.startswith("Confbridge") and name not in ("ConfbridgeStart", "ConfbridgeEnd"):
        room = event.get("Conference")
        if name == "ConfbridgeJoin":
            return ParticipantJoined(**_call(event), room=room, muted=event.get("Muted").lower() == "yes")
        if name == "ConfbridgeLeave":
            return ParticipantLeft(**_call(event), room=room)
        if name in ("ConfbridgeMute", "ConfbridgeUnmute"):
            return Muted(**_call(event), room=room, on=name == "ConfbridgeMute")
        if name == "ConfbridgeTalking":
            return Talking(**_call(event), room=room, on=event.get("TalkingStatus").lower() == "on")
        return None
    if name == "Hangup":
        fields = _call(event)
        uid = event.get("Uniqueid")
        far_leg = uid.endswith(contract.FAR_LEG_SUFFIX)
        fields["call_id"] = uid.removesuffix(contract.FAR_LEG_SUFFIX)
        return CallHungUp(**fields, cause=_cause(event.get("Cause")), far_leg=far_leg,
                          dialin=event.get("Context") == contract.DIALIN_CONTEXT)
    if name == "DialBegin":
        uid = event.get("Uniqueid")
        if not uid.endswith(contract.FAR_LEG_SUFFIX):
            return None
        return Ringing(node_id=node, call_id=uid.removesuffix(contract.FAR_LEG_SUFFIX))
    if name == "OriginateResponse":
        return CallPlaced(node_id=node, call_id=event.get("Uniqueid"), answered=event.get("Response") == "Success",
                          reason=event.get("Reason") or None,
                          dialout=f"@{contract.DIALOUT_CONTEXT}" in event.get("Channel"))
    if name == "UserEvent":
        kind = event.get("UserEvent")
        if kind == "VecheDialResult":
            return DialOutcome(node_id=node, call_id=event.get("Call"), status=event.get("DialStatus") or None,
                               cause=_cause(event.get("Cause")))
        if kind == "VecheRecording":
            return RecordingWritten(node_id=node, call_id=event.get("Call"), path=event.get("File"))
        return None
    if name == "ConfbridgeStart":
        return RoomStarted(node_id=node, room=event.get("Conference"))
    if name == "ConfbridgeEnd":
        return RoomEnded(node_id=node, room=event.get("Conference"))
    if name == "FullyBooted":
        return NodeBooted(node_id=node)
    if name == "Shutdown":
        return NodeShutdown(node_id=node)
    return None


def member(event: AmiEvent) -> RoomMember:
    """A room member from one ConfbridgeList entry."""
    fields = _call(event)
    return RoomMember(call_id=str(fields["call_id"]), channel=fields["channel"],  # type: ignore[arg-type]
                      token=fields["token"], muted=event.get("Muted").lower() == "yes")  # type: ignore[arg-type]
