"""Conference notifications as plain data: message kinds, recipients, delivery states and the
rules for retries and reminders, so the notifier service and its tests agree on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class MessageKind(StrEnum):
    INVITATION = "invitation"
    REMINDER = "reminder"
    UPDATE = "update"
    CANCELLATION = "cancellation"
    PIN_LOCKOUT = "pin_lockout"  # to the owner: PIN entry closed after too many wrong PINs (no calendar)


class RecipientRole(StrEnum):
    CHAIR = "chair"  # the conference owner's own copy: the only message that may carry the chair PIN
    GUEST = "guest"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    NOT_AVAILABLE = "not_available"
    NOT_WANTED = "not_wanted"  # the owner did not consent to mail this recipient


class ReminderDecision(StrEnum):
    NOT_YET = "not_yet"
    SEND = "send"
    SKIP = "skip"  # the engine missed the lead time by more than the late window


@dataclass(frozen=True)
class Recipient:
    email: str
    role: RecipientRole
    name: str = ""
    participant_id: int | None = None


@dataclass(frozen=True)
class ConferenceFacts:
    """What a message tells about a conference, in the owner's language and time zone."""

    conference_id: int
    uid: str
    sequence: int
    subject: str
    starts_at: datetime  # aware, UTC
    ends_at: datetime  # aware, UTC
    duration_minutes: int
    access_number: str
    conference_number: str
    guest_pin: str | None  # None: guests join without a PIN
    chair_pin: str
    language: str  # 'ru' | 'en'
    timezone: str
    owner_name: str = ""
    reminder_minutes: int | None = None
    # a recurring series: the RRULE value (icalendar vRecur mapping) of the whole series, the
    # cancelled occurrences' starts (EXDATE), or the one changed occurrence's rule start (RECURRENCE-ID)
    rrule: dict | None = None
    exdates: tuple[datetime, ...] = ()
    recurrence_id: datetime | None = None
    series_starts_at: datetime | None = None  # the series' first start (DTSTART of the RRULE event)


class SmtpOutcome(StrEnum):
    SENT = "sent"
    TEMPORARY = "temporary"  # 4xx answer, connection refused or dropped, timeout: retry later
    PERMANENT = "permanent"  # 5xx answer: retrying does not help


def classify_smtp_code(code: int | None) -> SmtpOutcome:
    """4xx (and no code at all: the connection failed) is worth retrying; 5xx is final."""
    if code is not None and 500 <= code < 600:
        return SmtpOutcome.PERMANENT
    return SmtpOutcome.TEMPORARY


def retry_delay(attempts: int, base_seconds: float, max_seconds: float) -> timedelta:
    """Exponential back-off: base, 2*base, 4*base ... capped at max_seconds."""
    exponent = max(attempts - 1, 0)
    return timedelta(seconds=min(base_seconds * (2 ** min(exponent, 30)), max_seconds))


def reminder_decision(starts_at: datetime, reminder_minutes: int, now: datetime,
                      late_window: timedelta) -> ReminderDecision:
    """A reminder is due at start - lead time; one that is late by more than the window
    (the engine was down) is skipped rather than sent at a confusing moment."""
    due = starts_at - timedelta(minutes=reminder_minutes)
    if now < due:
        return ReminderDecision.NOT_YET
    if now - due > late_window or now >= starts_at:
        return ReminderDecision.SKIP
    return ReminderDecision.SEND


# What a mail failure means for the person reading the card (catalogue ids); the recorded
# server reply or exception text stays available as the technical detail.
_PROBLEMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("smtpconnecterror", "connection refused", "timed out", "timeout", "unreachable", "name or service",
      "connection lost", "server disconnected", "could not connect"), "the mail server could not be reached"),
    (("authentication", "smtpauth", " 535", "535 "), "the mail server did not accept our login"),
    (("recipient", " 550", "550 ", " 551", " 553", "5.1.1", "no such user", "mailbox unavailable"),
     "the mail server refused this address"),
    ((" 552", "552 ", "too large", "size"), "the message was too large for the mail server"),
    (("starttls", "ssl", "certificate", "tls"), "a secure connection to the mail server failed"),
)


def delivery_problem(last_error: str | None) -> str | None:
    """The failure of a message in words (a catalogue id), or None when it is not a known kind
    of mail-server problem (the recorded text is then shown as it is)."""
    text = (last_error or "").lower()
    if not text:
        return None
    for needles, sentence in _PROBLEMS:
        if any(needle in text for needle in needles):
            return sentence
    return None
