"""Accounts and their address book (contacts, conference rooms, planning templates): the data
and the input rules the portal, the API and the CLI share. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from engine.domain import speech, text
from engine.domain.errors import ValidationError
from engine.domain.model import AUTO_EXTEND_STEPS
from engine.domain.numberplan import normalise
from engine.domain.passwords import is_common, is_sequence, repeats_a_chunk

LANGUAGES = ("ru", "en")
ROLES = ("customer", "operator")
# The per-account limits an operator may set: field -> (lowest, highest).
LIMIT_RANGES = {"max_participants": (1, 1000), "max_concurrent_conferences": (1, 100),
                "max_dialouts_per_minute": (1, 10000), "max_concurrent_calls": (1, 10000)}
ACCOUNT_PHONE = re.compile(r"^375[0-9]{9}$")
DIAL_NUMBER = re.compile(r"^[0-9]{2,15}$")
EMAIL = re.compile(r"^[^@\s<>\"'\x00-\x1f\x7f]{1,64}@[^@\s<>\"'\x00-\x1f\x7f]{1,255}\.[A-Za-z0-9-]{2,63}$")
PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 128

# Login rate limits: failures counted in a sliding window, per account and per client address.
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_FAILURES_PER_ACCOUNT = 5
LOGIN_FAILURES_PER_ADDRESS = 20


@dataclass
class Account:
    id: int
    phone: str
    name: str = ""
    email: str | None = None
    language: str = "ru"
    timezone: str = "Europe/Minsk"
    role: str = "customer"
    max_participants: int = 50
    max_concurrent_conferences: int = 3
    max_dialouts_per_minute: int = 120
    max_concurrent_calls: int = 50  # dial-outs calling, ringing or connected at once (a full default conference fits)
    blocked: bool = False
    admin: bool = False  # an operator who may block, reset or delete other operators
    mail_own_copy: bool = True  # the owner gets a copy of the conference mail (Personal data)


@dataclass
class Contact:
    id: int
    owner_id: int
    name: str
    number: str
    email: str | None = None


@dataclass
class Room:
    """A named conference-room endpoint (a speakerphone in a meeting room): invitable like a contact."""

    id: int
    owner_id: int
    name: str
    number: str
    location: str = ""


@dataclass
class TemplateParticipant:
    number: str
    name: str = ""
    email: str | None = None
    role: str = "guest"  # chair or guest, as in a conference plan


@dataclass
class Template:
    """A saved Planning form; the account's default template pre-fills Planning."""

    id: int
    owner_id: int
    name: str
    subject: str = ""
    duration_minutes: int = 60
    max_participants: int = 10
    auto_invite: bool = True
    auto_extend_minutes: int = 0
    guest_pin_required: bool = True
    reminder_minutes: int | None = None
    participants: list[TemplateParticipant] = field(default_factory=list)
    is_default: bool = False
    language: str | None = None  # the voice language; None: the owner's portal language
    recording: bool = False


TEMPLATE_FIELDS = ("name", "subject", "duration_minutes", "max_participants", "auto_invite",
                   "auto_extend_minutes", "guest_pin_required", "reminder_minutes", "participants",
                   "is_default", "language", "recording")


def account_phone(raw: str) -> str:
    """The login of a phone account: exactly 375XXXXXXXXX. A '+' or spaces are refused (with a
    hint) rather than silently stripped, so the customer learns the format the IVR uses too."""
    value = raw or ""
    if "+" in value or any(ch.isspace() for ch in value):
        raise ValidationError("Enter the account as 375XXXXXXXXX: digits only, without '+' or spaces", "phone")
    if not ACCOUNT_PHONE.match(value):
        raise ValidationError("The account is 12 digits in the format 375XXXXXXXXX", "phone")
    return value


def password(raw: str, field_name: str = "password", *, phone: str | None = None) -> str:
    """A password hard enough to guess: at least PASSWORD_MIN_LENGTH characters, not on the list of
    common passwords, not one repeated character or chunk, not a run such as 1234567890 or qwerty,
    and not built from the account's phone number."""
    if not raw or len(raw) < PASSWORD_MIN_LENGTH:
        raise ValidationError("The password must have at least %(length)d characters", field_name,
                              length=PASSWORD_MIN_LENGTH)
    if len(raw) > PASSWORD_MAX_LENGTH:
        raise ValidationError("The password is too long", field_name)
    if is_common(raw):  # the shipped list of common passwords
        raise ValidationError("This password is too common; choose a less predictable one", field_name)
    if repeats_a_chunk(raw.strip()) or is_sequence(raw.strip()):
        raise ValidationError("The password repeats or runs through the same characters; choose a less "
                              "predictable one", field_name)
    digits = "".join(ch for ch in raw if ch.isdigit())
    if phone and len(phone) >= 7 and (phone[-7:] in digits or len(digits) >= len(raw) - 3 and digits in phone):
        raise ValidationError("The password must not be your phone number", field_name)
    return raw


def person_name(raw: str | None, field_name: str = "name", *, required: bool = False) -> str:
    """A person's, contact's, room's or template's name under the one-line text rule."""
    return text.name(raw, field_name, required=required)


def location(raw: str | None, field_name: str = "location") -> str:
    """Where a conference room is, under the one-line text rule (its own, longer limit)."""
    return text.location(raw, field_name)


def email(raw: str | None, field_name: str = "email") -> str | None:
    value = (raw or "").strip()
    if not value:
        return None
    if len(value) > 254 or not EMAIL.match(value):
        raise ValidationError("Enter a valid e-mail address", field_name)
    return value


def dial_number(raw: str | None, field_name: str = "number") -> str:
    """A number to invite (contact, room, participant): digits only, as the number plan dials it."""
    value = normalise(raw or "")
    if "+" in value:
        raise ValidationError("Enter the number in digits, without '+'", field_name)
    if not DIAL_NUMBER.match(value):
        raise ValidationError("Enter a number of 2 to 15 digits", field_name)
    return value


def language(raw: str | None) -> str:
    if raw not in LANGUAGES:
        raise ValidationError("Choose Russian or English", "language")
    return raw


def profile_value(key: str, value: object) -> object:
    """One checked personal-data field (name, e-mail, language, time zone) of an account."""
    if key == "name":
        return person_name(value)  # type: ignore[arg-type]
    if key == "email":
        return email(value)  # type: ignore[arg-type]
    if key == "language":
        return language(value)  # type: ignore[arg-type]
    if key == "timezone":
        return str(value)
    if key == "mail_own_copy":
        if not isinstance(value, bool):
            raise ValidationError("The own-copy switch is on or off", key)
        return value
    raise ValidationError("The profile has no field %(name)s", key, name=key)


def template_values(values: dict) -> dict:
    """Checks the fields of a template (any subset of TEMPLATE_FIELDS) and returns them normalised."""
    out: dict = {}
    for key, value in values.items():
        if key not in TEMPLATE_FIELDS:
            raise ValidationError("Unknown template field %(name)s", key, name=key)
        if key == "name":
            out[key] = person_name(value, "name", required=True)
        elif key == "subject":
            out[key] = text.subject(value, "subject", required=False)
        elif key == "duration_minutes":
            out[key] = _int_between(value, 1, 720, key, "The duration is 1 to 720 minutes")
        elif key == "max_participants":
            out[key] = _int_between(value, 1, 1000, key, "Enter the number of participants")
        elif key == "auto_extend_minutes":
            minutes = _int_between(value, 0, 60, key, "Auto-extend is off, 15, 30, 45 or 60 minutes")
            if minutes not in AUTO_EXTEND_STEPS:
                raise ValidationError("Auto-extend is off, 15, 30, 45 or 60 minutes", key)
            out[key] = minutes
        elif key == "reminder_minutes":
            out[key] = None if value in (None, "", 0) else _int_between(
                value, 1, 1440, key, "The reminder lead time is 1 to 1440 minutes")
        elif key in ("auto_invite", "guest_pin_required", "is_default", "recording"):
            out[key] = bool(value)
        elif key == "participants":
            out[key] = [template_participant(p, i) for i, p in enumerate(value or [])]
        elif key == "language":
            out[key] = None if value in (None, "") else speech.validate_language(value)
    return out


def template_participant(raw: object, index: int = 0) -> TemplateParticipant:
    if isinstance(raw, TemplateParticipant):
        raw = {"number": raw.number, "name": raw.name, "email": raw.email, "role": raw.role}
    if not isinstance(raw, dict):
        raise ValidationError("A participant needs a number", f"participants[{index}]")
    role = raw.get("role") or "guest"
    if role not in ("chair", "guest"):
        raise ValidationError("the role is chair or guest", f"participants[{index}].role")
    return TemplateParticipant(
        number=dial_number(raw.get("number"), f"participants[{index}].number"),
        name=person_name(raw.get("name"), f"participants[{index}].name"),
        email=email(raw.get("email"), f"participants[{index}].email"),
        role=role,
    )


def _int_between(value: object, low: int, high: int, field_name: str, message: str) -> int:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(message, field_name) from None
    if not low <= number <= high:
        raise ValidationError(message, field_name)
    return number
