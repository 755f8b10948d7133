"""The one JSON shape of each resource (conference, participant, delivery, recording, domain
event), used by the API, the chair console's state and the event stream alike; the OpenAPI schemas
in web/api/openapi.py describe exactly these."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from enum import Enum
from typing import Any

from engine.domain.model import Conference, Participant
from engine.services.bus import DomainEvent


def plain(value: Any) -> Any:
    """Datetimes as ISO 8601, enums as their value, dataclasses and containers recursively."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


PARTICIPANT_FIELDS = ("id", "conference_id", "number", "name", "email", "role", "origin", "state",
                      "failure_reason", "hangup_cause", "muted", "talking", "attempts", "joined_at",
                      "left_at", "connected_seconds")

CONFERENCE_FIELDS = ("id", "subject", "mode", "state", "conference_number", "chair_pin", "guest_pin",
                     "guest_pin_required", "immediate", "starts_at", "duration_minutes", "ends_at",
                     "timezone", "max_participants", "auto_invite", "auto_extend_minutes", "extended_minutes",
                     "reminder_minutes", "locked", "started_at", "ended_at", "cancelled_at", "end_reason",
                     "language", "notify_participants", "recording", "recording_error", "version", "series_id",
                     "occurrence_at", "node_id")


def participant(item: Participant) -> dict[str, Any]:
    return {name: plain(getattr(item, name)) for name in PARTICIPANT_FIELDS}


def conference(item: Conference, access_number: str) -> dict[str, Any]:
    body = {name: plain(getattr(item, name)) for name in CONFERENCE_FIELDS}
    body["access_number"] = access_number
    body["participants"] = [participant(p) for p in item.participants]
    return body


RECORDING_FIELDS = ("id", "conference_id", "state", "duration_seconds", "size_bytes", "error", "started_at",
                    "stopped_at", "created_at")


def delivery(row: dict[str, Any]) -> dict[str, Any]:
    """One message to one recipient, as the notifier reports it."""
    return {name: plain(value) for name, value in row.items()}


def recording(row: dict[str, Any]) -> dict[str, Any]:
    return {name: plain(row.get(name)) for name in RECORDING_FIELDS}


def pin_lockout(lockout: dict[str, datetime] | None) -> dict[str, str] | None:
    """A running PIN lock-out of a conference (its moments), or None."""
    return {name: moment.isoformat() for name, moment in lockout.items()} if lockout else None


def event(item: DomainEvent) -> dict[str, Any]:
    return {"kind": item.kind, "conference_id": item.conference_id, "participant_id": item.participant_id,
            "data": plain(item.data), "at": item.at.isoformat()}


def fields(item: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: plain(getattr(item, name)) for name in names}
