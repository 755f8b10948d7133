"""Asterisk in one package: the AMI link (ami), the dialplan contract (contract), the typed
events and their translation from AMI (events), and the media node the services talk to (node)."""

from engine.adapters.asterisk.ami import AmiEvent, AmiLink, check_channel, is_channel
from engine.adapters.asterisk.events import (
    CallEvent,
    CallHungUp,
    CallPlaced,
    DialOutcome,
    LinkChanged,
    Muted,
    NodeBooted,
    NodeEvent,
    NodeShutdown,
    ParticipantJoined,
    ParticipantLeft,
    RecordingWritten,
    Ringing,
    RoomEnded,
    RoomMember,
    RoomStarted,
    Talking,
    translate,
)
from engine.adapters.asterisk.node import MediaNode, MediaNodes, PreparedDial

__all__ = [
    "AmiEvent", "AmiLink", "CallEvent", "CallHungUp", "CallPlaced", "DialOutcome", "LinkChanged", "MediaNode",
    "MediaNodes", "Muted", "NodeBooted", "NodeEvent", "NodeShutdown", "ParticipantJoined", "ParticipantLeft",
    "PreparedDial", "RecordingWritten", "Ringing", "RoomEnded", "RoomMember", "RoomStarted", "Talking",
    "check_channel", "is_channel", "translate",
]
