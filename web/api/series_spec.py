"""The OpenAPI description of recurring series (/api/v1/series), merged into web/api/openapi.py's
document; its request schemas are what web/api/parse.py validates."""

from __future__ import annotations

from typing import Any

from web.api import spec_parts as spec

SERIES_NUMBER_NOTE = (
    "All occurrences of a series share one conference number and one pair of PINs: the number is what "
    "callers keep in their calendars, so it must not change from week to week. A PIN that leaks therefore "
    "opens every occurrence; the chair re-issues them with POST /series/{id}/pins (new chair and guest "
    "PINs for every upcoming occurrence, the calendar is re-sent). "
    "PATCH or DELETE /conferences/{id} on an occurrence changes or cancels that one only "
    "(mailed with RECURRENCE-ID or EXDATE); PATCH or DELETE /series/{id} acts on the whole series.")

ROOM_NOTE = (
    "A permanent room (a personal meeting room) has a standing conference number and PINs and is open "
    "for dial-in whenever called; each session, from the first caller to the last leaving, is one conference "
    "(one History entry) and counts against the account's concurrent-conference and participant limits "
    "(a caller beyond them is refused). New PINs: POST /permanent-rooms/{id}/pins.")

RECURRENCE = {
    "type": "object", "additionalProperties": False, "required": ["frequency"],
    "description": "how the series repeats; exactly one of until (last day, in the series' time zone) "
                   "and count (1 to 100)",
    "properties": {
        "frequency": {"type": "string", "enum": ["daily", "weekdays", "weekly", "monthly"],
                      "description": "weekdays: Monday to Friday; monthly: on the first start's day of the month"},
        "weekdays": {"type": "array", "maxItems": 7, "uniqueItems": True,
                     "items": {"type": "string", "enum": ["mo", "tu", "we", "th", "fr", "sa", "su"]},
                     "description": "weekly only: the days of the week"},
        "until": {"type": ["string", "null"], "format": "date", "maxLength": 10, "examples": ["2027-03-31"]},
        "count": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
    },
}


def series_schemas() -> dict[str, Any]:
    plan = dict(spec._PLAN_FIELDS)
    changes = {k: v for k, v in plan.items() if k not in ("start", "timezone", "mode")}
    return {
        "SeriesCreate": spec._obj({**plan, "recurrence": RECURRENCE},
                                  ("subject", "start", "duration_minutes", "max_participants", "recurrence"),
                                  description="a conference plan whose start is the first occurrence, and the "
                                              "repeat rule. " + SERIES_NUMBER_NOTE),
        "SeriesUpdate": {**spec._obj(changes), "minProperties": 1,
                         "description": "planning fields for every upcoming occurrence not changed on its own "
                                        "(the start and the rule stay: cancel and plan anew to move a series)"},
        "Series": spec._obj({
            "id": spec.ID, "kind": {"type": "string", "enum": ["recurring", "permanent"]},
            "state": {"type": "string", "enum": ["active", "cancelled"]}, "subject": {"type": "string"},
            "recurrence": {"type": ["object", "null"]}, "first_start": spec.NULL_DATETIME,
            "timezone": {"type": "string"}, "access_number": {"type": "string"},
            "conference_number": {"type": "string", "description": "shared by every occurrence"},
            "chair_pin": {"type": "string"}, "guest_pin": {"type": "string"},
            "plan": {"type": "object"}, "guests_wait_for_chair": {"type": "boolean"},
            "conferences": {"type": "array", "items": spec._ref("Conference"),
                            "description": "the materialised occurrences, earliest first"},
        }, ("id", "kind", "state", "conference_number", "conferences"), closed=False),
        "RoomCreate": spec._obj({
            "subject": plan["subject"], "max_participants": plan["max_participants"],
            "guest_pin_required": plan["guest_pin_required"], "language": plan["language"],
            "timezone": plan["timezone"],
            "guests_wait_for_chair": {"type": "boolean", "default": False,
                                      "description": "dial-in guests wait (in silence) until a chair is in the room"},
        }, ("subject", "max_participants"), description="a permanent room. " + ROOM_NOTE),
        "SeriesList": spec._obj({"series": {"type": "array", "items": spec._ref("Series")}}, ("series",),
                                closed=False),
    }


def series_paths() -> dict[str, Any]:
    item = [spec._path_id("id", "series")]
    return {
        "/series": {
            "get": spec._op("list_series", "Active recurring series", {"200": spec._json("SeriesList", "series")},
                            tag="conferences", errors=("401", "403")),
            "post": spec._op("create_series", "Plan a recurring conference (daily, weekdays, weekly on chosen "
                             "days, monthly; until a date or N times). " + SERIES_NUMBER_NOTE,
                             {"201": spec._json("Series", "the series with its first occurrences")},
                             tag="conferences", body="SeriesCreate", errors=("401", "403", "409", "422", "429")),
        },
        "/series/{id}": {
            "get": spec._op("get_series", "A series with its occurrences (each has its own History entry)",
                            {"200": spec._json("Series", "series")}, tag="conferences", params=item),
            "patch": spec._op("update_series", "Change the whole series (every upcoming occurrence not "
                              "changed on its own)", {"200": spec._json("Series", "the changed series")},
                              tag="conferences", body="SeriesUpdate", params=item,
                              errors=("401", "403", "404", "409", "422")),
            "delete": spec._op("cancel_series", "Cancel the whole series (every upcoming occurrence)",
                               {"200": spec._json("Series", "the cancelled series")}, tag="conferences",
                               params=item, errors=("401", "403", "404", "409")),
        },
        "/permanent-rooms": {
            "get": spec._op("list_permanent_rooms", "Open permanent rooms",
                            {"200": spec._json("SeriesList", "rooms (key series)")}, tag="conferences",
                            errors=("401", "403")),
            "post": spec._op("create_permanent_room", "Open a permanent room. " + ROOM_NOTE,
                             {"201": spec._json("Series", "the room (kind permanent)")}, tag="conferences",
                             body="RoomCreate", errors=("401", "403", "422")),
        },
        "/permanent-rooms/{id}": {
            "get": spec._op("get_permanent_room", "A permanent room with its sessions (conferences)",
                            {"200": spec._json("Series", "room")}, tag="conferences", params=item),
            "delete": spec._op("close_permanent_room", "Close a permanent room (a session in progress ends)",
                               {"200": spec._json("Series", "the closed room")}, tag="conferences", params=item,
                               errors=("401", "403", "404", "409")),
        },
        "/permanent-rooms/{id}/pins": {
            "post": spec._op("reissue_room_pins", "New chair and guest PINs for a permanent room; the number stays",
                             {"200": spec._json("Series", "the room")}, tag="conferences", params=item,
                             errors=("401", "403", "404", "409")),
        },
        "/series/{id}/pins": {
            "post": spec._op("reissue_series_pins", "New chair and guest PINs for every upcoming occurrence "
                             "(after a PIN leaked); the number stays", {"200": spec._json("Series", "the series")},
                             tag="conferences", params=item, errors=("401", "403", "404", "409")),
        },
    }
