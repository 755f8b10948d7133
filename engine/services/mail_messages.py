"""Builds the engine's e-mails: subject, plain text and HTML from jinja2 templates in the owner's
language and time zone, with the iCalendar part of engine/services/mail_calendar.py on conference
mail; the chair PIN only ever reaches the chair's own copy because guests' templates and
calendars are rendered without it."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path

from babel.dates import format_date, format_time
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from engine.domain.notifications import ConferenceFacts, MessageKind, Recipient, RecipientRole
from engine.domain.text import flatten, forbidden_character
from engine.services.mail_calendar import build_calendar, calendar_method, occurrence_dropped, zone

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates" / "mail"
LANGUAGES = ("ru", "en")
MIME_POLICY = SMTP.clone(cte_type="7bit")  # every part ASCII-safe: no server needs 8BITMIME


class MessageNotBuilt(ValueError):
    """The stored data cannot make this message; the reason is shown in the deliveries."""


def _check_stored(facts: ConferenceFacts, recipient: Recipient) -> None:
    """Text stored before the one-line rule existed: a subject or an address with a character the
    rule forbids fails this message (names are only shown, so they are flattened instead)."""
    bad = forbidden_character(facts.subject)
    if bad is not None:
        raise MessageNotBuilt(f"the subject contains U+{ord(bad):04X}, which one-line text may not hold; "
                              "change the subject to send this message")
    bad = forbidden_character(recipient.email)
    if bad is not None or any(char.isspace() for char in recipient.email):
        raise MessageNotBuilt("the recipient's e-mail address contains a space or a control character")


@dataclass(frozen=True)
class ComposedMessage:
    subject: str
    message_id: str
    text: str
    html: str
    calendar: bytes | None
    raw: bytes  # the complete MIME message, exactly as it goes to the SMTP server


def _letters(count: int) -> str:
    """Random letters for Message-ID and MIME boundaries: no digit runs that could look like a PIN."""
    return "".join(secrets.choice(string.ascii_letters) for _ in range(count))


def format_when(moment: datetime, timezone: str, language: str) -> str:
    """'25 ноября 2026 г., 15:00' / 'November 25, 2026, 15:00' in the given time zone."""
    local = moment.astimezone(zone(timezone))
    return f"{format_date(local, 'long', locale=language)}, {format_time(local, 'HH:mm', locale=language)}"


class MailComposer:
    """Renders one message for one recipient. Stateless apart from the template environment.
    Stored one-line text (subject, names) is flattened before it is used, so a line break in
    text stored before the one-line rule cannot break a header or a calendar line."""

    def __init__(self, sender: str, template_dir: Path = TEMPLATE_DIR) -> None:
        self.sender = sender
        self.domain = sender.rsplit("@", 1)[-1] if "@" in sender else "localhost"
        self.templates = Environment(
            loader=FileSystemLoader(str(template_dir)),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=StrictUndefined, keep_trailing_newline=True)

    def context(self, facts: ConferenceFacts, recipient: Recipient, kind: MessageKind) -> dict[str, object]:
        language = facts.language if facts.language in LANGUAGES else "ru"
        context: dict[str, object] = {
            "kind": kind.value, "role": recipient.role.value, "language": language,
            "recipient_name": flatten(recipient.name), "owner_name": flatten(facts.owner_name),
            "subject": flatten(facts.subject), "when": format_when(facts.starts_at, facts.timezone, language),
            "ends": format_when(facts.ends_at, facts.timezone, language), "timezone": facts.timezone,
            "duration_minutes": facts.duration_minutes, "access_number": facts.access_number,
            "conference_number": facts.conference_number, "guest_pin": facts.guest_pin,
            "reminder_minutes": facts.reminder_minutes or 0,
        }
        # The chair PIN enters the rendering context only for the chair's own copy.
        context["chair_pin"] = facts.chair_pin if recipient.role is RecipientRole.CHAIR else ""
        return context

    def compose(self, facts: ConferenceFacts, recipient: Recipient, kind: MessageKind,
                now: datetime | None = None) -> ComposedMessage:
        now = now or datetime.now(UTC)
        _check_stored(facts, recipient)
        context = self.context(facts, recipient, kind)
        language = str(context["language"])
        subject = flatten(self.templates.get_template(f"{language}/subject.txt.j2").render(context).strip())
        context["mail_subject"] = subject
        text = self.templates.get_template(f"{language}/body.txt.j2").render(context)
        html = self.templates.get_template(f"{language}/body.html.j2").render(context)
        calendar = build_calendar(facts, recipient, kind, organizer=self.sender, now=now)
        message_id = f"<{kind.value}.{facts.conference_id}.{facts.sequence}.{_letters(16)}@{self.domain}>"
        message = _text_and_html(self.sender, subject, recipient, message_id, now, text, html)
        method = "REQUEST" if occurrence_dropped(facts, kind) else calendar_method(kind)
        message.add_attachment(calendar, maintype="text", subtype="calendar", filename="invite.ics",
                               params={"method": method, "charset": "utf-8"})
        for part in message.walk():
            if part.is_multipart():
                part.set_boundary(f"veche-{_letters(24)}")
        return ComposedMessage(subject=subject, message_id=message_id, text=text, html=html,
                               calendar=calendar, raw=message.as_bytes())


@dataclass(frozen=True)
class PinLockoutFacts:
    """What the owner is told when PIN entry on the conference's number is closed."""

    conference_id: int
    subject: str
    conference_number: str
    failures: int
    until: datetime
    language: str
    timezone: str


def _text_and_html(sender: str, subject: str, recipient: Recipient, message_id: str, now: datetime, text: str,
                   html: str) -> EmailMessage:
    """The headers and the text and HTML alternatives every message of the engine has."""
    message = EmailMessage(policy=MIME_POLICY)
    message["Subject"] = subject
    message["From"] = sender
    name = flatten(recipient.name)
    message["To"] = formataddr((name, recipient.email)) if name else recipient.email
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _compose_plain(composer: MailComposer, template: str, language: str, context: dict[str, object],
                   recipient: Recipient, message_id: str, now: datetime) -> ComposedMessage:
    """A message without a calendar, from the ``template`` subject, text and HTML of ``language``;
    stored text in the context is flattened by the caller, the subject and name here."""
    subject = flatten(composer.templates.get_template(f"{language}/{template}.subject.txt.j2").render(context).strip())
    context = {**context, "mail_subject": subject}
    text = composer.templates.get_template(f"{language}/{template}.txt.j2").render(context)
    html = composer.templates.get_template(f"{language}/{template}.html.j2").render(context)
    message = _text_and_html(composer.sender, subject, recipient, message_id, now, text, html)
    for part in message.walk():
        if part.is_multipart():
            part.set_boundary(f"veche-{_letters(24)}")
    return ComposedMessage(subject=subject, message_id=message_id, text=text, html=html, calendar=None,
                           raw=message.as_bytes())


def compose_pin_lockout(composer: MailComposer, facts: PinLockoutFacts, recipient: Recipient,
                        now: datetime | None = None) -> ComposedMessage:
    """The owner's warning about a PIN lock-out: text and HTML, no calendar, no PIN at all."""
    now = now or datetime.now(UTC)
    language = facts.language if facts.language in LANGUAGES else "ru"
    context: dict[str, object] = {
        "language": language, "recipient_name": flatten(recipient.name), "subject": flatten(facts.subject),
        "conference_number": facts.conference_number, "failures": facts.failures,
        "until": format_when(facts.until, facts.timezone, language), "timezone": facts.timezone}
    message_id = f"<pin_lockout.{facts.conference_id}.{_letters(16)}@{composer.domain}>"
    return _compose_plain(composer, "pin_lockout", language, context, recipient, message_id, now)


@dataclass(frozen=True)
class AccountLinkFacts:
    """A password-reset or e-mail-change message: the one-time link and how long it works."""

    purpose: str  # "password_reset" or "email_change"
    phone: str
    link: str
    minutes: int
    language: str


def compose_account_link(composer: MailComposer, facts: AccountLinkFacts, recipient: Recipient,
                         now: datetime | None = None) -> ComposedMessage:
    """The account's own mail with a one-time link: text and HTML, no calendar."""
    now = now or datetime.now(UTC)
    language = facts.language if facts.language in LANGUAGES else "ru"
    context: dict[str, object] = {
        "purpose": facts.purpose, "phone": facts.phone, "link": facts.link, "minutes": facts.minutes,
        "recipient_name": flatten(recipient.name)}
    message_id = f"<{facts.purpose}.{_letters(16)}@{composer.domain}>"
    return _compose_plain(composer, "account_link", language, context, recipient, message_id, now)
