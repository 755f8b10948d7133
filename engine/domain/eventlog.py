"""The conference event log as sentences a person reads: each entry's kind and detail become a
catalogue id with values (translated where shown); the raw detail stays available on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Why a conference ended or failed (conferences.end_reason and the log's "reason").
END_REASONS: dict[str, str] = {
    "deadline": "its time was up",
    "ended_by_owner": "ended by the chair",
    "ended_by_operator": "ended by the operator",
    "empty": "everyone had left",
    "missed": "it was not started in time",
    "account_blocked": "the account is blocked",
    "cancelled": "it was cancelled",
    "recovered": "the engine restarted",
    "asterisk_restarted": "the telephony server restarted",
}

# Why a call did not connect (participants.failure_reason).
FAILURE_REASONS: dict[str, str] = {
    "busy": "the line was busy",
    "no_answer": "nobody answered",
    "congestion": "the network was congested",
    "rejected": "the call was rejected",
    "invalid_number": "the number does not exist",
    "cancelled": "the call was cancelled",
    "error": "the call failed",
}

# ITU-T Q.850 causes the log records, in words (others are shown by number).
HANGUP_CAUSES: dict[int, str] = {
    1: "unassigned number", 3: "no route to destination", 16: "normal call clearing", 17: "user busy",
    18: "no user responding", 19: "no answer", 21: "call rejected", 22: "number changed",
    27: "destination out of order", 28: "invalid number format", 31: "normal, unspecified",
    34: "no circuit available", 38: "network out of order", 41: "temporary failure",
    42: "switching equipment congestion", 127: "interworking, unspecified",
}

_SENTENCES: dict[str, str] = {
    "conference.scheduled": "The conference was planned",
    "conference.updated": "The conference was changed",
    "conference.cancelled": "The conference was cancelled",
    "conference.start_requested": "Start now was pressed",
    "conference.started": "The conference started",
    "conference.warned": "The participants heard that the time is nearly up",
    "conference.extend_refused": "The conference could not be extended further",
    "conference.room_closed": "The conference room was closed",
    "conference.interrupted": "The conference was interrupted",
    "conference.resumed": "The conference resumed after a restart",
    "conference.resume_failed": "The conference could not resume after a restart",
    "participant.kicked": "%(who)s was removed",
    "participant.dialing": "%(who)s is being called",
    "participant.muted": "%(who)s was muted",
    "participant.unmuted": "%(who)s was unmuted",
    "participant.ended": "%(who)s's call ended",
    "conference.locked": "The conference was locked",
    "conference.unlocked": "The conference was unlocked",
    "recording.started": "Recording started",
    "recording.stopped": "Recording stopped",
    "recording.announced": "The participants heard that the conference is recorded",
    "recording.ready": "The recording is ready",
    "recording.deleted": "The recording was deleted",
    "recording.failed": "The recording failed",
    "keypad.pressed": "%(who)s used the keypad",
}


@dataclass(frozen=True)
class Sentence:
    """One log entry in words: ``message_id`` % ``values`` after translating both."""

    message_id: str
    values: dict[str, Any] = field(default_factory=dict)
    cause: str | None = None  # the Q.850 cause in words (a catalogue id), when the entry has one


def _who(detail: dict[str, Any], participant: Any) -> str:
    name = getattr(participant, "name", "") or detail.get("name") or ""
    number = getattr(participant, "number", "") or detail.get("number") or ""
    return f"{name} ({number})" if name and number else name or number or "—"


def cause_words(cause: object) -> str | None:
    """A Q.850 cause in words, or None without a cause."""
    if cause is None or cause == "":
        return None
    try:
        number = int(cause)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return HANGUP_CAUSES.get(number)


def describe(kind: str, detail: dict[str, Any] | None, participant: Any = None) -> Sentence:
    """The sentence of one event-log entry (``participant`` names who it is about, if anyone)."""
    detail = detail or {}
    who = _who(detail, participant)
    cause = cause_words(detail.get("cause"))
    if kind == "conference.scheduled":
        return Sentence("The conference was planned to start at once" if detail.get("immediate")
                        else "The conference was planned")
    if kind == "conference.extended":
        return Sentence("The conference was extended automatically by %(minutes)d minutes" if detail.get("auto")
                        else "The conference was extended by %(minutes)d minutes",
                        {"minutes": int(detail.get("minutes") or 0)})
    if kind in ("conference.ended", "conference.failed"):
        reason = END_REASONS.get(str(detail.get("reason")), "")
        if kind == "conference.failed":
            return Sentence("The conference did not take place: %(reason)s" if reason
                            else "The conference did not take place", {"reason": reason} if reason else {})
        return Sentence("The conference ended: %(reason)s" if reason else "The conference ended",
                        {"reason": reason} if reason else {})
    if kind == "participant.added":
        return Sentence("%(who)s was added", {"who": who})
    if kind == "participant.joined":
        return Sentence("%(who)s dialled in and joined" if detail.get("origin") == "dialin" else "%(who)s joined",
                        {"who": who})
    if kind == "participant.left":
        return Sentence("%(who)s left after %(minutes)d min %(seconds)d s",
                        {"who": who, "minutes": int(detail.get("connected_seconds") or 0) // 60,
                         "seconds": int(detail.get("connected_seconds") or 0) % 60}, cause)
    if kind == "participant.failed":
        reason = FAILURE_REASONS.get(str(detail.get("reason")), FAILURE_REASONS["error"])
        return Sentence("%(who)s was not reached: %(reason)s", {"who": who, "reason": reason}, cause)
    if kind == "participant.role":
        return Sentence("%(who)s became a chair" if detail.get("role") == "chair" else "%(who)s became a guest",
                        {"who": who})
    if kind in _SENTENCES:
        sentence = _SENTENCES[kind]
        return Sentence(sentence, {"who": who} if "%(who)s" in sentence else {}, cause)
    return Sentence("Event %(kind)s", {"kind": kind}, cause)


def actor_words(actor: str | None, owner_id: int | None) -> str:
    """Who acted, as a catalogue id (or the raw actor when it is none of the known ones)."""
    if not actor or actor in ("engine", "system", "scheduler"):
        return "the system"
    if actor == "operator":
        return "the operator"
    if actor == f"account:{owner_id}":
        return "the owner"
    if actor.startswith("account:"):
        return "another account"
    return actor
