"""Conference e-mails as rendered: both languages, every kind, the .ics content, and the chair
PIN only in the chair's own copy; plus the retry and reminder rules."""

from __future__ import annotations

import dataclasses
import email
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.policy import default

import icalendar
import pytest

from engine.domain.notifications import (
    ConferenceFacts,
    MessageKind,
    Recipient,
    RecipientRole,
    ReminderDecision,
    SmtpOutcome,
    classify_smtp_code,
    reminder_decision,
    retry_delay,
)
from engine.services.mail_messages import MailComposer, format_when

CHAIR_PIN = "864209"
GUEST_PIN = "135797"
START = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

FACTS = ConferenceFacts(
    conference_id=42, uid="veche-42-room@example.org", sequence=3, subject="Планёрка <отдела>",
    starts_at=START, ends_at=START + timedelta(minutes=45), duration_minutes=45, access_number="7000",
    conference_number="246802", guest_pin=GUEST_PIN, chair_pin=CHAIR_PIN, language="ru",
    timezone="Europe/Minsk", owner_name="Иван Петров", reminder_minutes=15)
GUEST = Recipient("guest@example.org", RecipientRole.GUEST, "Пётр", 7)
CHAIR = Recipient("chair@example.org", RecipientRole.CHAIR, "Иван Петров")


def parts(raw: bytes) -> dict[str, str | bytes]:
    """text/plain, text/html (decoded) and the calendar attachment of one MIME message."""
    message = email.message_from_bytes(raw, policy=default)
    found: dict[str, str | bytes] = {"subject": str(message["Subject"])}
    for part in message.walk():
        assert isinstance(part, Message)
        content_type = part.get_content_type()
        if content_type in ("text/plain", "text/html"):
            found[content_type] = part.get_content()
        elif content_type == "text/calendar":
            found["method"] = part.get_param("method")
            found["filename"] = part.get_filename()
            found["ics"] = part.get_payload(decode=True)
    return found


@pytest.mark.parametrize("kind", list(MessageKind))
@pytest.mark.parametrize("language", ["ru", "en"])
def test_guest_message_never_contains_the_chair_pin(kind: MessageKind, language: str) -> None:
    facts = dataclasses.replace(FACTS, language=language)
    composed = MailComposer("veche@example.org").compose(facts, GUEST, kind)
    found = parts(composed.raw)
    for key in ("subject", "text/plain", "text/html", "ics"):
        value = found[key]
        text = value.decode() if isinstance(value, bytes) else value
        assert CHAIR_PIN not in text, (kind, language, key)
    assert CHAIR_PIN.encode() not in composed.raw
    if kind is not MessageKind.CANCELLATION:
        assert GUEST_PIN in found["text/plain"] and GUEST_PIN in found["text/html"]


@pytest.mark.parametrize("kind", [MessageKind.INVITATION, MessageKind.REMINDER, MessageKind.UPDATE])
def test_chair_copy_carries_the_chair_pin(kind: MessageKind) -> None:
    found = parts(MailComposer("veche@example.org").compose(FACTS, CHAIR, kind).raw)
    assert CHAIR_PIN in found["text/plain"] and CHAIR_PIN in found["text/html"]
    event = icalendar.Calendar.from_ical(found["ics"]).walk("VEVENT")[0]
    assert CHAIR_PIN in str(event["DESCRIPTION"])
    assert CHAIR_PIN not in str(event["LOCATION"])  # LOCATION shows in calendar lists


def test_russian_invitation_shows_local_time_and_dial_in_details() -> None:
    found = parts(MailComposer("veche@example.org").compose(FACTS, GUEST, MessageKind.INVITATION).raw)
    text = found["text/plain"]
    assert found["subject"] == "Приглашение на конференцию: Планёрка <отдела>"
    assert "Пётр, здравствуйте!" in text
    assert "1 декабря 2026" in text and "12:30" in text  # 09:30 UTC in Minsk (UTC+3)
    assert "Номер доступа: 7000" in text and "Номер конференции: 246802" in text
    assert "PIN участника: 135797" in text
    html = found["text/html"]
    assert "Планёрка &lt;отдела&gt;" in html and "<отдела>" not in html  # escaped in HTML


def test_english_update_and_no_pin_needed() -> None:
    facts = dataclasses.replace(FACTS, language="en", timezone="America/New_York", guest_pin=None)
    found = parts(MailComposer("veche@example.org").compose(facts, GUEST, MessageKind.UPDATE).raw)
    assert found["subject"] == "Conference changed: Планёрка <отдела>"
    assert "December 1, 2026, 04:30" in found["text/plain"]
    assert "No participant PIN is needed" in found["text/plain"]
    assert GUEST_PIN not in found["text/plain"]


@pytest.mark.parametrize(("kind", "method", "status"), [
    (MessageKind.INVITATION, "REQUEST", "CONFIRMED"),
    (MessageKind.UPDATE, "REQUEST", "CONFIRMED"),
    (MessageKind.REMINDER, "REQUEST", "CONFIRMED"),
    (MessageKind.CANCELLATION, "CANCEL", "CANCELLED"),
])
def test_calendar_attachment(kind: MessageKind, method: str, status: str) -> None:
    found = parts(MailComposer("veche@example.org").compose(FACTS, GUEST, kind).raw)
    assert found["method"] == method and found["filename"] == "invite.ics"
    calendar = icalendar.Calendar.from_ical(found["ics"])
    assert calendar["METHOD"] == method
    event = calendar.walk("VEVENT")[0]
    assert str(event["UID"]) == FACTS.uid
    assert int(event["SEQUENCE"]) == 3
    assert str(event["STATUS"]) == status
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert start == START and start.utcoffset() == timedelta(0)
    assert end == START + timedelta(minutes=45)
    assert b"DTSTART:20261201T093000Z" in found["ics"]
    assert "7000" in str(event["LOCATION"]) and "246802" in str(event["LOCATION"])
    assert GUEST_PIN in str(event["DESCRIPTION"])
    assert str(event["ATTENDEE"]) == "mailto:guest@example.org"


def test_format_when_falls_back_to_utc_for_an_unknown_zone() -> None:
    assert format_when(START, "Mars/Olympus", "en") == "December 1, 2026, 09:30"


def test_smtp_codes_and_back_off() -> None:
    assert classify_smtp_code(451) is SmtpOutcome.TEMPORARY
    assert classify_smtp_code(None) is SmtpOutcome.TEMPORARY
    assert classify_smtp_code(550) is SmtpOutcome.PERMANENT
    assert [retry_delay(n, 30, 100).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


@pytest.mark.parametrize(("now_offset", "expected"), [
    (timedelta(minutes=-16), ReminderDecision.NOT_YET),
    (timedelta(minutes=-15), ReminderDecision.SEND),
    (timedelta(minutes=-10), ReminderDecision.SEND),  # engine was down 5 minutes: still sent
    (timedelta(minutes=-2), ReminderDecision.SKIP),  # 13 minutes late: beyond the 10 minute window
    (timedelta(minutes=1), ReminderDecision.SKIP),  # the conference has started
])
def test_reminder_decision(now_offset: timedelta, expected: ReminderDecision) -> None:
    assert reminder_decision(START, 15, START + now_offset, timedelta(minutes=10)) is expected


async def test_sms_channel_reports_not_available_and_never_sends() -> None:
    from engine.adapters.sms import SmsGateway
    from engine.config import Settings
    from engine.domain.errors import ConfigError

    gateway = SmsGateway(Settings())
    assert not gateway.available and "not available" in gateway.unavailable_reason
    with pytest.raises(ConfigError):
        await gateway.send("375291234567", "hello")
    configured = Settings.from_env({"VECHE_SMS_GATEWAY": "https://sms.example.org"})
    assert configured.sms_gateway == "https://sms.example.org"
    assert not SmsGateway(configured).available  # no driver: still no fake sending
