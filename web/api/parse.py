"""Turns API requests into the values services take: JSON bodies checked against the OpenAPI
schemas (so a bad body is a 400 naming the field), path ids, dates and conference plans.
Parsing only: the services own every business rule, the one-line text rule of subjects and
names included (engine/domain/text.py, applied by the domain checks the services call)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from engine.domain.errors import NotFound, ValidationError
from engine.domain.model import ConferencePlan, ParticipantPlan, Role
from engine.domain.text import MESSAGE_BAD_CHARACTER, TextRefused
from web.api.openapi import body_schema
from web.api.spec_parts import DAY_OR_MOMENT, ID_MAX


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    return Draft202012Validator(body_schema(schema_name))


def _whole_numbers_as_int(value: Any) -> Any:
    """JSON Schema counts 5.0 as an integer; the services get the int 5 (no field is fractional)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers_as_int(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_int(item) for item in value]
    return value


def _field_of(error: Any) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if error.validator == "required":
        missing = next((name for name in error.validator_value if name not in error.instance), None)
        if missing is not None:
            return f"{path}.{missing}" if path else missing
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = next((name for name in error.instance if name not in allowed), None)
        if extra is not None:
            return f"{path}.{extra}" if path else str(extra)
    return path or "body"


def _message_of(error: Any, field: str) -> str:
    if error.validator == "required":
        return f"{field} is required"
    if error.validator == "additionalProperties":
        return f"unknown field {field}"
    if error.validator == "minProperties":
        return "the body names no field to change"
    if error.validator == "pattern":
        return f"{field}: {error.schema.get('description') or 'contains characters that are not allowed'}"
    return f"{field}: {error.message}"


def _reject_nul(value: Any, field: str = "body") -> None:
    """PostgreSQL text cannot hold NUL; refuse it at the door rather than fail deep inside (as the
    text rule refuses any control character: 422 invalid_text naming the field)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise TextRefused(MESSAGE_BAD_CHARACTER, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, field)
            _reject_nul(item, key if field == "body" else f"{field}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_nul(item, f"{field}[{index}]")


async def body(request: web.Request, schema_name: str, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, valid against components/schemas/``schema_name``."""
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise ValidationError("a JSON body is required", "body")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("the body is not valid JSON", "body") from None
    _reject_nul(data)
    error = best_match(_validator(schema_name).iter_errors(data))
    if error is not None:
        field = _field_of(error)
        raise ValidationError(_message_of(error, field), field)
    return _whole_numbers_as_int(data)


def query(request: web.Request, name: str, schema: dict[str, Any] | None = None) -> str:
    """A query parameter ("" when absent), refused when it holds NUL or misses the schema's pattern."""
    value = request.query.get(name, "")
    if "\x00" in value:
        raise ValidationError(f"{name} contains a NUL character", name)
    if schema is not None and value and not re.fullmatch(schema["pattern"], value):
        raise ValidationError(f"{name}: {schema.get('description') or 'not in the expected form'}", name)
    return value


def path_id(request: web.Request, name: str = "id") -> int:
    """A numeric path parameter; out-of-range ids simply do not exist."""
    raw = request.match_info.get(name, "")
    if not raw.isdigit() or not 0 < int(raw) <= ID_MAX:
        raise NotFound("no such object")
    return int(raw)


def zone(name: str | None, fallback: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or fallback)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {name!r}", "timezone") from None


def _aware(value: datetime, tz: ZoneInfo, field: str) -> datetime:
    """``value`` with ``tz`` when it has no offset; years far outside any calendar use are refused
    so that later arithmetic cannot overflow."""
    if not 1970 <= value.year <= 9000:
        raise ValidationError(f"{field} is out of range", field)
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def start_time(raw: str | None, tz: ZoneInfo) -> datetime | None:
    """None for an immediate conference ("now" or absent), else an aware datetime."""
    if raw is None or raw.strip().lower() == "now":
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValidationError('start is "now" or an ISO 8601 date-time', "start") from None
    return _aware(value, tz, "start")


def participant_plan(raw: dict[str, Any]) -> ParticipantPlan:
    return ParticipantPlan(number=raw["number"], name=raw.get("name") or "", email=raw.get("email") or None,
                           role=Role(raw.get("role", "guest")))


def conference_plan(data: dict[str, Any], account_timezone: str) -> ConferencePlan:
    tz = zone(data.get("timezone"), account_timezone)
    return ConferencePlan(
        subject=data["subject"],
        start=start_time(data.get("start"), tz),
        duration_minutes=data["duration_minutes"],
        max_participants=data["max_participants"],
        participants=tuple(participant_plan(p) for p in data.get("participants", ())),
        auto_invite=data.get("auto_invite", True),
        auto_extend_minutes=data.get("auto_extend_minutes", 0),
        guest_pin_required=data.get("guest_pin_required", True),
        reminder_minutes=data.get("reminder_minutes"),
        timezone=tz.key,
        mode=data.get("mode", "voice"),
        language=data.get("language"),
        notify_participants=data.get("notify_participants", False),
        recording=data.get("recording", False),
    )


def conference_changes(data: dict[str, Any], account_timezone: str) -> dict[str, Any]:
    """The ``changes`` dict of ConferencePlanning.update: ConferencePlan field names and types."""
    changes = dict(data)
    tz = zone(data.get("timezone"), account_timezone)
    if "timezone" in changes:
        changes["timezone"] = tz.key
    if "start" in changes:
        changes["start"] = start_time(changes["start"], tz)
    if "participants" in changes:
        changes["participants"] = tuple(participant_plan(p) for p in changes["participants"])
    return changes


def _moment(raw: str, field: str, tz: ZoneInfo, *, end: bool) -> datetime:
    """A date (whole day in ``tz``; an end date is inclusive) or a date-time."""
    raw = raw.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            value = datetime.combine(day, time(), tzinfo=tz)
            return _aware(value, tz, field) + timedelta(days=1 if end else 0)
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"{field} is a date (YYYY-MM-DD) or an ISO 8601 date-time", field) from None
    return _aware(value, tz, field)


def period(request: web.Request, account_timezone: str) -> tuple[datetime, datetime]:
    """The history period from ?from=&to= (default: the last 30 days)."""
    tz = zone(None, account_timezone)
    raw_from, raw_to = query(request, "from", DAY_OR_MOMENT), query(request, "to", DAY_OR_MOMENT)
    until = _moment(raw_to, "to", tz, end=True) if raw_to.strip() else datetime.now(UTC)
    since = _moment(raw_from, "from", tz, end=False) if raw_from.strip() else until - timedelta(days=30)
    if since >= until:
        raise ValidationError("from must be before to", "from")
    return since, until


_ENTITY_TAG = re.compile(r'^"([0-9]{1,9})"$')


def if_match(request: web.Request) -> int | None:
    """The version named by the If-Match header (one strong entity tag such as ``"7"``, as sent
    in ETag), or None without the header or with ``*``. Weak or foreign tags can never match."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    found = _ENTITY_TAG.match(raw.strip())
    if found is None:
        if raw.strip().startswith('W/"') or raw.strip().startswith('"'):
            return 0  # a tag no conference version has: the update is refused with 412
        raise ValidationError('If-Match takes one entity tag as sent in ETag, e.g. "3"', "If-Match")
    return int(found.group(1))
