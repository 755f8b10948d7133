"""Building blocks of the API's OpenAPI description (schema fragments and operation helpers),
shared by web/api/openapi.py and web/api/operator_spec.py."""

from __future__ import annotations

from enum import Enum
from typing import Any

from engine.domain.model import AUTO_EXTEND_STEPS, ConferenceState
from engine.domain.planning import MAX_DURATION_MINUTES, MAX_REMINDER_MINUTES
from engine.domain.speech import LANGUAGES

INT32_MAX = 2**31 - 1
ID_MAX = 2**63 - 1

# Reusable schema fragments -------------------------------------------------------------------


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _values(kind: type[Enum]) -> list[Any]:
    """The values of a domain enum, in its order: the spec's enums are read from the domain."""
    return [member.value for member in kind]


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = True,
         description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


LANGUAGE = {"type": "string", "enum": list(LANGUAGES)}
ID = {"type": "integer", "minimum": 1, "maximum": ID_MAX}
DATETIME = {"type": "string", "format": "date-time"}
NULL_DATETIME = _nullable(DATETIME)


def _one_line(limit: int, required: bool = False) -> dict[str, Any]:
    """A field under the one-line text rule (engine/domain/text.py), which the service applies:
    text that breaks it is refused with 422 and code invalid_text naming the field."""
    return {"type": "string", "description": (
        ("required; " if required else "") + f"one line, at most {limit} characters after trimming; "
        "no control characters (CR, LF, TAB, C1), no U+2028/U+2029, no bidi overrides or isolates")}


SUBJECT = _one_line(200, required=True)
NAME = _one_line(100)
NAME_REQUIRED = _one_line(100, required=True)
NUMBER = {"type": "string", "pattern": "^[0-9 ().-]{2,30}$", "examples": ["375291234567", "375 29 123-45-67"],
          "description": "2 to 15 digits, without +; spaces, dashes, dots and brackets typed between them are removed "
                         "(participants, contacts, rooms and template participants must also be in the number plan)"}
EMAIL = {"anyOf": [{"type": "string", "maxLength": 254,
                    "pattern": "^[^@\\s<>\"'\\u0000-\\u001f]{1,64}@[^@\\s<>\"'\\u0000-\\u001f]{1,255}"
                               "\\.[A-Za-z0-9-]{2,63}$"},
                   {"const": ""}, {"type": "null"}],
         "description": "an e-mail address; empty or null for none"}
EMAIL_OUT = _nullable({"type": "string"})
STATE_NAMES = "|".join(ConferenceState)
STATE_FILTER = {"type": "string", "pattern": f"^(all|({STATE_NAMES})(,({STATE_NAMES}))*)?$",
                "examples": ["scheduled,running", "all"],
                "description": "comma-separated states, or all; default scheduled,running"}
SEARCH = {"type": "string", "pattern": "^[^\\u0000]*$", "description": "any text without NUL"}
DAY_OR_MOMENT = {"type": "string", "examples": ["2026-11-25", "2026-11-25T10:00:00+03:00"],
                 "pattern": r"^(\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)?$",
                 "description": "a date YYYY-MM-DD or an ISO 8601 date-time (years 1970 to 9000)"}


# Operations ----------------------------------------------------------------------------------

_ERRORS = {
    "400": "invalid JSON or a field that fails validation (`field` names it)",
    "401": "no or invalid credentials",
    "403": "account blocked, or a cookie-authenticated write without a valid X-CSRF-Token",
    "404": "no such object for this account",
    "409": "the object's state does not allow this",
    "422": "an account limit would be exceeded, or a text field breaks the one-line text rule "
           "(code invalid_text, `field` names it)",
    "412": "If-Match names a version the conference has moved on from (code version_conflict): someone "
           "else changed it; the ETag header carries the current version, GET it, merge, send again",
    "413": "the body is too large",
    "429": "too many requests",
    "503": "the telephony engine cannot be reached",
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _error(status: str) -> dict[str, Any]:
    return _json("Error", _ERRORS[status])


def _op(operation_id: str, summary: str, ok: dict[str, dict[str, Any]], *, tag: str, body: str | None = None,
        errors: tuple[str, ...] = ("401", "403", "404"), params: list[dict[str, Any]] | None = None,
        body_required: bool = True) -> dict[str, Any]:
    responses = dict(ok)
    if body is not None or params:
        responses["400"] = _error("400")
    if body is not None:
        responses["413"] = _error("413")
    for status in errors:
        responses[status] = _error(status)
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag],
                                 "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": body_required,
                                    "content": {"application/json": {"schema": _ref(body)}}}
    if params:
        operation["parameters"] = params
    return operation


def _path_id(name: str, what: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": f"id of the {what}", "schema": ID}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


NO_CONTENT = {"204": {"description": "done"}}
ETAG_HEADER = {"ETag": {"description": "the conference's version as a strong entity tag, e.g. \"3\"; send it "
                                       "back in If-Match to change the conference only if nobody else did",
                        "schema": {"type": "string"}}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "description": "the ETag of the conference as last read. With it the change is refused with 412 "
                           "when the conference changed meanwhile (optimistic concurrency); without it (or with "
                           "*) the change applies to whatever version is current. One entity tag only.",
            "schema": {"type": "string"}}


IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "description": "1 to 255 visible ASCII characters chosen by the client (e.g. a UUID) to make a "
                                  "retry safe: a second request with the same key and the same body gets the first "
                                  "answer again (with Idempotent-Replayed: true) and plans nothing; the same key "
                                  "with another body is refused with 422 (idempotency_key_reused), and while the "
                                  "first request is still being answered with 409 (idempotency_in_progress). Keys "
                                  "are kept per account for VECHE_IDEMPOTENCY_HOURS (24 h); a request that failed "
                                  "does not keep its key.",
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}}


def _with_etag(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "headers": ETAG_HEADER}


def _replayable(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "headers": {
        **ETAG_HEADER, "Location": {"description": "the new conference", "schema": {"type": "string"}},
        "Idempotent-Replayed": {"description": "true when this is the stored answer to an earlier request "
                                               "with the same Idempotency-Key", "schema": {"type": "string"}}}}

CONF = [_path_id("id", "conference")]
CONF_PARTICIPANT = [*CONF, _path_id("pid", "participant")]
LIVE = ("401", "403", "404", "409", "503")


# The fields of a conference plan (create, update, and a series' first occurrence).
_PLAN_FIELDS: dict[str, Any] = {
    "subject": SUBJECT,
    "start": {"type": "string", "maxLength": 64, "examples": ["now", "2030-01-31T10:00:00+03:00"],
              "pattern": r"^(now|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)$",
              "description": '"now" for an immediate conference, or an ISO 8601 date-time (without an '
                             "offset it is read in `timezone`, else the account's time zone)"},
    "timezone": {"type": "string", "maxLength": 64, "description": "IANA zone, e.g. Europe/Minsk"},
    "duration_minutes": {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_MINUTES},
    "max_participants": {"type": "integer", "minimum": 1, "maximum": INT32_MAX,
                         "description": "at most the account's limit"},
    "auto_invite": {"type": "boolean", "description": "dial every planned participant at the start"},
    "auto_extend_minutes": {"type": "integer", "enum": list(AUTO_EXTEND_STEPS)},
    "guest_pin_required": {"type": "boolean"},
    "reminder_minutes": _nullable({"type": "integer", "minimum": 1, "maximum": MAX_REMINDER_MINUTES}),
    "participants": {"type": "array", "maxItems": 1000, "items": _ref("ParticipantInput")},
    "mode": {"type": "string", "enum": ["voice"], "default": "voice"},
    "language": {**LANGUAGE,
                 "description": "the voice language callers hear; default: the account's portal language"},
    "notify_participants": {"type": "boolean", "default": False,
                            "description": "the owner's consent to e-mail the participants (invitation, update, "
                                           "cancellation, reminder); off unless sent as true. The owner's own "
                                           "copy follows the account's mail_own_copy switch"},
    "recording": {"type": "boolean", "default": False,
                  "description": "record the conference (403 when the operator forbids it for the account)"},
}
