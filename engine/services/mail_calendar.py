"""The iCalendar (.ics) part of a conference e-mail: one VEVENT with the conference's stable UID
and SEQUENCE, a series' RRULE/EXDATE or one occurrence's RECURRENCE-ID, and the dial-in details
(the chair PIN only in the chair's own copy)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event, vCalAddress, vText

from engine.domain.notifications import ConferenceFacts, MessageKind, Recipient, RecipientRole
from engine.domain.text import flatten

PRODID = "-//Veche//Audio conferences//EN"

_CALENDAR_LABELS = {
    "ru": {
        "access": "Номер доступа", "conference": "Номер конференции", "guest_pin": "PIN участника",
        "no_pin": "PIN участника не нужен", "chair_pin": "PIN председателя",
        "location": "Тел. {access}, конференция {number}", "pin": "PIN {pin}",
        "cancelled": "Конференция отменена.",
    },
    "en": {
        "access": "Access number", "conference": "Conference number", "guest_pin": "Participant PIN",
        "no_pin": "No participant PIN is needed", "chair_pin": "Chair PIN",
        "location": "Phone {access}, conference {number}", "pin": "PIN {pin}",
        "cancelled": "The conference has been cancelled.",
    },
}



def calendar_method(kind: MessageKind) -> str:
    return "CANCEL" if kind is MessageKind.CANCELLATION else "REQUEST"


def occurrence_dropped(facts: ConferenceFacts, kind: MessageKind) -> bool:
    """One cancelled occurrence of a series: the series goes on and is re-sent (METHOD REQUEST)
    with the cancelled starts as EXDATE; without EXDATE a cancelled series is cancelled whole."""
    return kind is MessageKind.CANCELLATION and facts.rrule is not None and bool(facts.exdates)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def dial_in_lines(facts: ConferenceFacts, recipient: Recipient) -> list[str]:
    labels = _CALENDAR_LABELS.get(facts.language, _CALENDAR_LABELS["ru"])
    lines = [f"{labels['access']}: {facts.access_number}",
             f"{labels['conference']}: {facts.conference_number}",
             f"{labels['guest_pin']}: {facts.guest_pin}" if facts.guest_pin else labels["no_pin"]]
    if recipient.role is RecipientRole.CHAIR:
        lines.append(f"{labels['chair_pin']}: {facts.chair_pin}")
    return lines


def location_text(facts: ConferenceFacts) -> str:
    """Guest dial-in details only: LOCATION is shown in calendar lists, so no chair PIN here."""
    labels = _CALENDAR_LABELS.get(facts.language, _CALENDAR_LABELS["ru"])
    location = labels["location"].format(access=facts.access_number, number=facts.conference_number)
    if facts.guest_pin:
        location += ", " + labels["pin"].format(pin=facts.guest_pin)
    return location


def build_calendar(facts: ConferenceFacts, recipient: Recipient, kind: MessageKind, *, organizer: str,
                   now: datetime | None = None) -> bytes:
    """An RFC 5545 calendar with one VEVENT: METHOD REQUEST (invitation, reminder, update) or
    CANCEL, the conference's stable UID and current SEQUENCE, start and end in UTC."""
    now = now or datetime.now(UTC)
    labels = _CALENDAR_LABELS.get(facts.language, _CALENDAR_LABELS["ru"])
    method = calendar_method(kind)
    dropped = occurrence_dropped(facts, kind)
    if dropped:
        method = "REQUEST"
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", facts.uid)
    event.add("sequence", facts.sequence)
    event.add("dtstamp", now.astimezone(UTC))
    if facts.rrule is not None or facts.recurrence_id is not None:
        _add_recurrence(event, facts)
    else:
        event.add("dtstart", facts.starts_at.astimezone(UTC))
        event.add("dtend", facts.ends_at.astimezone(UTC))
    event.add("summary", flatten(facts.subject))
    description = "\n".join(dial_in_lines(facts, recipient))
    if kind is MessageKind.CANCELLATION:
        description = labels["cancelled"] + "\n" + description
    event.add("description", description)
    event.add("location", location_text(facts))
    event.add("status", "CANCELLED" if kind is MessageKind.CANCELLATION and not dropped
              else "CONFIRMED")
    organizer_address = vCalAddress(f"mailto:{organizer}")
    organizer_address.params["cn"] = vText(flatten(facts.owner_name) or "Veche")
    event.add("organizer", organizer_address)
    attendee = vCalAddress(f"mailto:{recipient.email}")
    attendee.params["role"] = vText("CHAIR" if recipient.role is RecipientRole.CHAIR else "REQ-PARTICIPANT")
    attendee.params["partstat"] = vText("NEEDS-ACTION")
    attendee.params["rsvp"] = vText("FALSE")
    if flatten(recipient.name):
        attendee.params["cn"] = vText(flatten(recipient.name))
    event.add("attendee", attendee)
    calendar.add_component(event)
    if facts.rrule is not None or facts.recurrence_id is not None:
        calendar.add_missing_timezones()
    return calendar.to_ical()


def _add_recurrence(event: Event, facts: ConferenceFacts) -> None:
    """A series' times in the owner's time zone (so each occurrence keeps its local time across
    DST): the series with RRULE and EXDATE, or one changed occurrence with RECURRENCE-ID."""
    tz = zone(facts.timezone)
    if facts.recurrence_id is not None:
        event.add("dtstart", facts.starts_at.astimezone(tz))
        event.add("dtend", facts.ends_at.astimezone(tz))
        event.add("recurrence-id", facts.recurrence_id.astimezone(tz))
        return
    first = facts.series_starts_at or facts.starts_at
    event.add("dtstart", first.astimezone(tz))
    event.add("dtend", (first + (facts.ends_at - facts.starts_at)).astimezone(tz))
    event.add("rrule", facts.rrule)
    if facts.exdates:
        event.add("exdate", [moment.astimezone(tz) for moment in facts.exdates])
