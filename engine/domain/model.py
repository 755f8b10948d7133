"""Domain types: conferences, participants and their states. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ConferenceState(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    ENDED = "ended"
    CANCELLED = "cancelled"
    FAILED = "failed"


class ParticipantState(StrEnum):
    PLANNED = "planned"
    CALLING = "calling"
    RINGING = "ringing"
    CONNECTED = "connected"
    LEFT = "left"
    FAILED = "failed"


class FailureReason(StrEnum):
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    REJECTED = "rejected"
    INVALID_NUMBER = "invalid_number"
    CANCELLED = "cancelled"
    ERROR = "error"
    NODE_FAILED = "node_failed"  # its media node failed under a dial-in caller


class Role(StrEnum):
    CHAIR = "chair"
    GUEST = "guest"


class Origin(StrEnum):
    DIALOUT = "dialout"
    DIALIN = "dialin"


AUTO_EXTEND_STEPS = (0, 15, 30, 45, 60)


@dataclass(frozen=True)
class ParticipantPlan:
    """A participant as planned by the customer (before validation by the number plan)."""

    number: str
    name: str = ""
    email: str | None = None
    role: Role = Role.GUEST


@dataclass(frozen=True)
class ConferencePlan:
    """What a customer asks for in Planning (portal form, API body or CLI)."""

    subject: str
    start: datetime | None  # None: immediate
    duration_minutes: int
    max_participants: int
    participants: tuple[ParticipantPlan, ...] = ()
    auto_invite: bool = True
    auto_extend_minutes: int = 0
    guest_pin_required: bool = True
    reminder_minutes: int | None = None
    timezone: str = "Europe/Minsk"
    mode: str = "voice"
    language: str | None = None  # the voice language; None: the owner's portal language
    notify_participants: bool = False  # the owner's consent to mail the participants
    recording: bool = False  # record the room (the operator allows it per account)


@dataclass
class Participant:
    id: int
    conference_id: int
    number: str
    name: str
    email: str | None
    role: Role
    origin: Origin
    state: ParticipantState
    failure_reason: FailureReason | None = None
    hangup_cause: int | None = None
    call_id: str | None = None
    channel: str | None = None
    node_id: str | None = None
    muted: bool = False
    talking: bool = False
    attempts: int = 0
    joined_at: datetime | None = None
    left_at: datetime | None = None
    connected_seconds: int = 0


@dataclass
class Conference:
    id: int
    owner_id: int
    subject: str
    mode: str
    node_id: str
    room: str
    conference_number: str
    chair_pin: str
    guest_pin: str
    guest_pin_required: bool
    immediate: bool
    starts_at: datetime
    duration_minutes: int
    ends_at: datetime
    timezone: str
    max_participants: int
    auto_invite: bool
    auto_extend_minutes: int
    extend_cap_minutes: int
    extended_minutes: int
    reminder_minutes: int | None
    locked: bool
    state: ConferenceState
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cancelled_at: datetime | None = None
    end_reason: str | None = None
    language: str = "ru"  # the voice language its callers hear (engine.domain.speech.LANGUAGES)
    participants: list[Participant] = field(default_factory=list)
    notify_participants: bool = False
    recording: bool = False
    recording_error: str | None = None  # why the last recording failed, for the console card
    version: int = 1  # moves on every change of the row (sql/023): the API's ETag, the forms' hidden field
    series_id: int | None = None  # the recurring series or permanent room it belongs to
    occurrence_at: datetime | None = None  # the start the series' rule gave it (RECURRENCE-ID)
    occurrence_changed: bool = False  # this occurrence was edited on its own
    wait_for_chair: bool = False  # a permanent room's session: dial-in guests wait until a chair is in


# Why an action does not apply to a conference in this state, as a person reads it (catalogue ids).
STATE_REFUSALS: dict[str, str] = {
    "scheduled": "the conference has not started yet",
    "running": "the conference is already running",
    "ended": "the conference has ended",
    "cancelled": "the conference was cancelled",
    "failed": "the conference could not start",
}


def state_refusal(state: object) -> str:
    """The sentence (a catalogue id) saying that a conference in ``state`` does not allow the action."""
    return STATE_REFUSALS.get(str(state), "the conference does not allow this now")
