"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json. Its request-body schemas
are also what web/api/parse.py validates bodies against, so the description cannot drift from
what the API accepts; tests check that every route is described."""

from __future__ import annotations

import copy
from typing import Any

from engine.domain.accounts import ROLES
from engine.domain.model import (
    AUTO_EXTEND_STEPS,
    ConferenceState,
    FailureReason,
    Origin,
    ParticipantState,
    Role,
)
from engine.domain.planning import EXTEND_STEPS, MAX_DURATION_MINUTES, MAX_REMINDER_MINUTES
from engine.domain.quality import Verdict
from web.api.operator_spec import operator_paths, operator_schemas
from web.api.spec_parts import (
    _PLAN_FIELDS,
    CONF,
    CONF_PARTICIPANT,
    DATETIME,
    DAY_OR_MOMENT,
    EMAIL,
    EMAIL_OUT,
    ID,
    IDEMPOTENCY_KEY,
    IF_MATCH,
    LANGUAGE,
    LIVE,
    NAME,
    NAME_REQUIRED,
    NO_CONTENT,
    NULL_DATETIME,
    NUMBER,
    SEARCH,
    STATE_FILTER,
    _json,
    _nullable,
    _obj,
    _one_line,
    _op,
    _path_id,
    _query,
    _ref,
    _replayable,
    _values,
    _with_etag,
)

PARTICIPANT_STATES = _values(ParticipantState)
CONFERENCE_STATES = _values(ConferenceState)
FAILURE_REASONS = _values(FailureReason)


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({
        "code": {"type": "string", "description": "stable, machine-readable",
                 "examples": ["validation", "unauthenticated", "forbidden", "csrf", "not_found",
                              "state_conflict", "limit_exceeded", "rate_limited", "unavailable"]},
        "message": {"type": "string"},
        "field": {"type": "string", "description": "the offending field (validation errors)"},
    }, ("code", "message"), closed=False)}, ("error",), closed=False),
    "Account": _obj({
        "id": ID, "phone": {"type": "string"}, "name": {"type": "string"}, "email": EMAIL_OUT,
        "language": LANGUAGE, "timezone": {"type": "string"},
        "role": {"type": "string", "enum": list(ROLES)},
        "max_participants": {"type": "integer"}, "max_concurrent_conferences": {"type": "integer"},
        "max_dialouts_per_minute": {"type": "integer"}, "max_concurrent_calls": {"type": "integer"},
    }, ("id", "phone"), closed=False),
    "ParticipantInput": _obj({
        "number": NUMBER, "name": NAME, "email": EMAIL,
        "role": {"type": "string", "enum": _values(Role), "default": "guest"},
    }, ("number",)),
    "ParticipantAdd": _obj({
        "number": NUMBER, "name": NAME, "email": EMAIL,
        "role": {"type": "string", "enum": _values(Role), "default": "guest"},
        "invite": {"type": "boolean", "default": True, "description": "dial at once (running conference); false adds "
                   "the participant to be invited later"},
    }, ("number",)),
    "ParticipantUpdate": _obj({
        "role": {"type": "string", "enum": _values(Role),
                 "description": "a connected participant takes the role in the call at once "
                                "(re-enters the room with the chair or guest profile; the call stays up)"},
    }, ("role",)),
    "Participant": _obj({
        "id": ID, "conference_id": ID, "number": {"type": "string"}, "name": {"type": "string"}, "email": EMAIL_OUT,
        "role": {"type": "string", "enum": _values(Role)},
        "origin": {"type": "string", "enum": _values(Origin)},
        "state": {"type": "string", "enum": PARTICIPANT_STATES},
        "failure_reason": _nullable({"type": "string", "enum": FAILURE_REASONS}),
        "hangup_cause": _nullable({"type": "integer"}),
        "muted": {"type": "boolean"}, "talking": {"type": "boolean"}, "attempts": {"type": "integer"},
        "joined_at": NULL_DATETIME, "left_at": NULL_DATETIME, "connected_seconds": {"type": "integer"},
    }, ("id", "number", "state"), closed=False),
    "ConferenceCreate": _obj(
        _PLAN_FIELDS, ("subject", "duration_minutes", "max_participants"),
        description="start defaults to now; auto_invite and guest_pin_required default to true"),
    "ConferenceUpdate": {**_obj({**_PLAN_FIELDS, "start": {
        "type": "string", "format": "date-time", "maxLength": 64, "examples": ["2030-01-31T10:00:00+03:00"],
        "description": "ISO 8601 date-time, not in the past (a scheduled conference keeps a start time)"}}),
                         "minProperties": 1,
                         "description": "any subset of the planning fields; participants replaces the list"},
    "Conference": _obj({
        "id": ID, "subject": {"type": "string"}, "mode": {"type": "string", "enum": ["voice"]},
        "state": {"type": "string", "enum": CONFERENCE_STATES},
        "access_number": {"type": "string", "description": "the number callers dial first"},
        "conference_number": {"type": "string", "description": "keyed in after the access number, then #"},
        "chair_pin": {"type": "string"}, "guest_pin": {"type": "string"},
        "guest_pin_required": {"type": "boolean"}, "immediate": {"type": "boolean"},
        "starts_at": DATETIME, "duration_minutes": {"type": "integer"}, "ends_at": DATETIME,
        "timezone": {"type": "string"}, "max_participants": {"type": "integer"},
        "auto_invite": {"type": "boolean"}, "auto_extend_minutes": {"type": "integer"},
        "extended_minutes": {"type": "integer"}, "reminder_minutes": _nullable({"type": "integer"}),
        "locked": {"type": "boolean"}, "started_at": NULL_DATETIME, "ended_at": NULL_DATETIME,
        "cancelled_at": NULL_DATETIME, "end_reason": _nullable({"type": "string"}),
        "language": {**LANGUAGE, "description": "the voice language callers hear"},
        "notify_participants": {"type": "boolean"},
        "participants": {"type": "array", "items": _ref("Participant")},
        "recording": {"type": "boolean"},
        "recording_error": _nullable({"type": "string", "description": "why the last recording failed"}),
        "version": {"type": "integer", "minimum": 1,
                    "description": "moves on every change; also sent as the ETag header (\"<version>\")"},
        "series_id": _nullable({**ID, "description": "the recurring series (GET /series/{id}) it belongs to"}),
        "occurrence_at": NULL_DATETIME,
        "node_id": {"type": "string", "description": "the media node the conference lives on: chosen by load "
                    "when it starts (before that, where it would start by default)"},
    }, ("id", "subject", "state", "access_number", "conference_number", "chair_pin", "guest_pin",
        "starts_at", "ends_at", "participants"), closed=False),
    "ConferenceList": _obj({"conferences": {"type": "array", "items": _ref("Conference")}},
                           ("conferences",), closed=False),
    "InviteRequest": _obj({"participant_ids": {"type": "array", "minItems": 1, "maxItems": 1000,
                                               "items": ID}}, ("participant_ids",)),
    "ExtendRequest": _obj({"minutes": {"type": "integer", "enum": list(EXTEND_STEPS)}}, ("minutes",)),
    "QualityRow": _obj({
        "participant_id": ID, "number": {"type": "string"}, "name": {"type": "string"},
        "codec": _nullable({"type": "string"}), "jitter_ms": _nullable({"type": "number"}),
        "loss_percent": _nullable({"type": "number"}), "rtt_ms": _nullable({"type": "number"}),
        "mos": _nullable({"type": "number"}),
        "verdict": {"type": "string", "enum": _values(Verdict)},
    }, ("participant_id", "verdict"), closed=False),
    "QualityReport": _obj({"participants": {"type": "array", "items": _ref("QualityRow")}},
                          ("participants",), closed=False),
    "Delivery": _obj({
        "participant_id": _nullable(ID), "email": _nullable({"type": "string"}),
        "kind": {"type": "string", "examples": ["invitation", "reminder", "update", "cancellation"]},
        "status": {"type": "string", "enum": ["queued", "sent", "retrying", "failed", "not_available",
                                                   "not_wanted"]},
        "last_error": _nullable({"type": "string"}), "role": _nullable({"type": "string"}),
        "attempts": _nullable({"type": "integer"}), "sent_at": NULL_DATETIME, "channel": {"type": "string"},
    }, ("participant_id", "kind", "status"), closed=False),
    "DeliveryList": _obj({"deliveries": {"type": "array", "items": _ref("Delivery")}}, ("deliveries",),
                         closed=False),
    "LogEntry": _obj({
        "at": DATETIME, "kind": {"type": "string"}, "actor": {"type": "string"},
        "participant_id": _nullable(ID), "detail": {"type": "object"},
    }, ("at", "kind"), closed=False),
    "ConferenceLog": _obj({"events": {"type": "array", "items": _ref("LogEntry")}}, ("events",), closed=False),
    "DomainEvent": _obj({
        "kind": {"type": "string", "examples": ["participant.state", "conference.extended"]},
        "conference_id": ID, "participant_id": _nullable(ID), "data": {"type": "object"}, "at": DATETIME,
    }, ("kind", "conference_id", "data", "at"), closed=False),
    "History": _obj({
        "from": DATETIME, "to": DATETIME, "conferences": {"type": "array", "items": _ref("Conference")},
    }, ("from", "to", "conferences"), closed=False),
    "ContactInput": _obj({"name": NAME_REQUIRED, "number": NUMBER,
                          "email": EMAIL}, ("name", "number")),
    "Contact": _obj({"id": ID, "name": {"type": "string"}, "number": {"type": "string"}, "email": EMAIL_OUT},
                    ("id", "name", "number"), closed=False),
    "ContactList": _obj({"contacts": {"type": "array", "items": _ref("Contact")}}, ("contacts",), closed=False),
    "RoomInput": _obj({"name": NAME_REQUIRED, "number": NUMBER,
                       "location": NAME}, ("name", "number")),
    "Room": _obj({"id": ID, "name": {"type": "string"}, "number": {"type": "string"},
                  "location": {"type": "string"}}, ("id", "name", "number"), closed=False),
    "RoomList": _obj({"rooms": {"type": "array", "items": _ref("Room")}}, ("rooms",), closed=False),
    "TemplateParticipantInput": _obj({"number": NUMBER, "name": NAME, "email": EMAIL,
                                      "role": {"type": "string", "enum": _values(Role), "default": "guest"}},
                                     ("number",)),
    "TemplateParticipant": _obj({"number": {"type": "string"}, "name": {"type": "string"}, "email": EMAIL_OUT,
                                 "role": {"type": "string", "enum": _values(Role)}},
                                ("number",), closed=False),
    "TemplateInput": _obj({
        "name": NAME_REQUIRED,
        "subject": _one_line(200),
        "duration_minutes": {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_MINUTES},
        "max_participants": {"type": "integer", "minimum": 1, "maximum": 1000},
        "auto_invite": {"type": "boolean"}, "auto_extend_minutes": {"type": "integer", "enum": list(AUTO_EXTEND_STEPS)},
        "guest_pin_required": {"type": "boolean"},
        "reminder_minutes": _nullable({"type": "integer", "minimum": 1, "maximum": MAX_REMINDER_MINUTES}),
        "participants": {"type": "array", "maxItems": 1000, "items": _ref("TemplateParticipantInput")},
        "is_default": {"type": "boolean", "description": "make it the default that pre-fills Planning"},
        "language": _nullable({**LANGUAGE,
                               "description": "the voice language; null: the account's portal language"}),
        "recording": {"type": "boolean", "description": "conferences planned from it are recorded"},
    }),
    "Template": _obj({
        "id": ID, "name": {"type": "string"}, "subject": {"type": "string"}, "duration_minutes": {"type": "integer"},
        "max_participants": {"type": "integer"}, "auto_invite": {"type": "boolean"},
        "auto_extend_minutes": {"type": "integer"}, "guest_pin_required": {"type": "boolean"},
        "reminder_minutes": _nullable({"type": "integer"}),
        "participants": {"type": "array", "items": _ref("TemplateParticipant")},
        "is_default": {"type": "boolean"}, "language": _nullable(LANGUAGE),
        "recording": {"type": "boolean"},
    }, ("id", "name"), closed=False),
    "TemplateList": _obj({"templates": {"type": "array", "items": _ref("Template")}}, ("templates",),
                         closed=False),
    "Accepted": _obj({"status": {"type": "string", "enum": ["accepted"]}}, ("status",)),
    "PasswordResetRequest": _obj({"phone": {"type": "string", "maxLength": 32,
                                            "description": "the phone account, 375XXXXXXXXX"}}, ("phone",)),
    "PasswordResetConfirm": _obj({
        "token": {"type": "string", "minLength": 20, "maxLength": 100, "pattern": "^[A-Za-z0-9_-]+$",
                  "description": "the secret at the end of the mailed link /password/reset/{token}"},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024}}, ("token", "password")),
    "Recording": _obj({
        "id": ID, "conference_id": ID,
        "state": {"type": "string", "enum": ["recording", "converting", "ready", "failed"]},
        "duration_seconds": _nullable({"type": "number"}), "size_bytes": _nullable({"type": "integer"}),
        "error": _nullable({"type": "string"}), "started_at": DATETIME, "stopped_at": NULL_DATETIME,
        "created_at": DATETIME,
    }, ("id", "conference_id", "state"), closed=False),
    "RecordingList": _obj({"recordings": {"type": "array", "items": _ref("Recording")}}, ("recordings",),
                          closed=False),
    "TokenCreate": _obj({"name": NAME, "expires_in_days": {
        "type": "integer", "minimum": 1, "maximum": 3650,
        "description": "the token stops working this many days from now (default: never)"}}),
    "Token": _obj({"id": ID, "name": {"type": "string"}, "prefix": {"type": "string"}, "created_at": DATETIME,
                   "last_used_at": NULL_DATETIME, "revoked_at": NULL_DATETIME, "expires_at": NULL_DATETIME},
                  ("id", "prefix"), closed=False),
    "TokenCreated": _obj({"token": {"type": "string", "description": "the bearer secret, shown only now"},
                          "details": _ref("Token")}, ("token", "details"), closed=False),
    "TokenList": _obj({"tokens": {"type": "array", "items": _ref("Token")}}, ("tokens",), closed=False),
}
# "name" of a template is required on create only; TemplateInput serves PATCH too.
SCHEMAS["TemplateCreate"] = {**SCHEMAS["TemplateInput"], "required": ["name"]}
SCHEMAS["TemplateUpdate"] = {**SCHEMAS["TemplateInput"], "minProperties": 1}
del SCHEMAS["TemplateInput"]



def _crud(kind: str, singular: str, tag: str, list_schema: str, item_schema: str, create_body: str,
          update_body: str, update_method: str, search: bool) -> dict[str, Any]:
    item = [_path_id("id", singular)]
    list_params = [_query("search", "text in the name, number or e-mail", SEARCH)] if search else None
    title = singular.capitalize()
    return {
        f"/{kind}": {
            "get": _op(f"list_{kind}", f"List {kind}", {"200": _json(list_schema, kind)}, tag=tag,
                       errors=("401", "403"), params=list_params),
            "post": _op(f"create_{singular.replace(' ', '_')}", f"Add a {singular}",
                        {"201": _json(item_schema, f"the new {singular}")}, tag=tag, body=create_body,
                        errors=("401", "403", "422")),
        },
        f"/{kind}/{{id}}": {
            "get": _op(f"get_{singular.replace(' ', '_')}", f"One {singular}", {"200": _json(item_schema, title)},
                       tag=tag, params=item),
            update_method: _op(f"update_{singular.replace(' ', '_')}", f"Change a {singular}",
                               {"200": _json(item_schema, f"the changed {singular}")}, tag=tag,
                               body=update_body, params=item, errors=("401", "403", "404", "422")),
            "delete": _op(f"delete_{singular.replace(' ', '_')}", f"Delete a {singular}", NO_CONTENT, tag=tag,
                          params=item),
        },
    }


PATHS: dict[str, Any] = {
    "/openapi.json": {"get": {"operationId": "openapi", "summary": "This description", "tags": ["meta"],
                              "security": [], "responses": {"200": {"description": "OpenAPI 3.1 document",
                                                                    "content": {"application/json": {}}}}}},
    "/me": {"get": _op("me", "The authenticated account", {"200": _json("Account", "account")}, tag="account",
                       errors=("401", "403"))},
    "/conferences": {
        "get": _op("list_conferences", "Upcoming and running conferences (or those in `state`)",
                   {"200": _json("ConferenceList", "conferences")}, tag="conferences", errors=("401", "403"),
                   params=[_query("state", "which conferences", STATE_FILTER)]),
        "post": _op("create_conference", "Plan a conference (immediate with start \"now\")",
                    {"201": _replayable(_json("Conference", "the planned conference"))}, tag="conferences",
                    body="ConferenceCreate", params=[IDEMPOTENCY_KEY],
                    errors=("401", "403", "409", "422", "429", "503")),
    },
    "/conferences/{id}": {
        "get": _op("get_conference", "A conference with its participants and their states",
                   {"200": _with_etag(_json("Conference", "conference"))}, tag="conferences", params=CONF),
        "patch": _op("update_conference", "Change a scheduled conference (If-Match: refused with 412 when "
                     "someone else changed it since)",
                     {"200": _with_etag(_json("Conference", "the changed conference"))}, tag="conferences",
                     body="ConferenceUpdate", params=[*CONF, IF_MATCH],
                     errors=("401", "403", "404", "409", "412", "422")),
        "delete": _op("cancel_conference", "Cancel a scheduled conference",
                      {"200": _json("Conference", "the cancelled conference")}, tag="conferences",
                      params=CONF, errors=("401", "403", "404", "409")),
    },
    "/conferences/{id}/start": {
        "post": _op("start_conference", "Start a scheduled conference now: it runs its planned duration from "
                    "now, planned participants are dialled when auto-invite is on; the account's limits apply",
                    {"200": _json("Conference", "the running conference")}, tag="live", params=CONF,
                    errors=("401", "403", "404", "409", "422", "429", "503")),
    },
    "/conferences/{id}/participants/{pid}": {
        "patch": _op("update_participant", "Make a participant a chair or a guest (live in a running conference)",
                     {"200": _json("Participant", "the changed participant")}, tag="live",
                     body="ParticipantUpdate", params=CONF_PARTICIPANT, errors=(*LIVE, "422")),
    },
    "/conferences/{id}/participants": {
        "post": _op("add_participant", "Add a participant (dialled at once into a running conference)",
                    {"201": _json("Participant", "the new participant")}, tag="live", body="ParticipantAdd",
                    params=CONF, errors=("401", "403", "404", "409", "422", "429", "503")),
    },
    "/conferences/{id}/invite": {
        "post": _op("invite_participants", "Invite (dial or re-dial) the selected participants", NO_CONTENT,
                    tag="live", body="InviteRequest", params=CONF, errors=(*LIVE, "422", "429")),
    },
    "/conferences/{id}/participants/{pid}/invite": {
        "post": _op("invite_participant", "Invite (dial or re-dial) one participant", NO_CONTENT, tag="live",
                    params=CONF_PARTICIPANT, errors=(*LIVE, "422", "429")),
    },
    "/conferences/{id}/participants/{pid}/mute": {
        "post": _op("mute_participant", "Mute a connected participant", NO_CONTENT, tag="live",
                    params=CONF_PARTICIPANT, errors=LIVE),
    },
    "/conferences/{id}/participants/{pid}/unmute": {
        "post": _op("unmute_participant", "Unmute a connected participant", NO_CONTENT, tag="live",
                    params=CONF_PARTICIPANT, errors=LIVE),
    },
    "/conferences/{id}/participants/{pid}/kick": {
        "post": _op("kick_participant", "Remove a participant from the conference", NO_CONTENT, tag="live",
                    params=CONF_PARTICIPANT, errors=LIVE),
    },
    "/conferences/{id}/lock": {
        "post": _op("lock_conference", "Lock: no more guests may dial in", NO_CONTENT, tag="live", params=CONF,
                    errors=LIVE),
    },
    "/conferences/{id}/unlock": {
        "post": _op("unlock_conference", "Unlock", NO_CONTENT, tag="live", params=CONF, errors=LIVE),
    },
    "/conferences/{id}/extend": {
        "post": _op("extend_conference", "Extend a running conference",
                    {"200": _json("Conference", "the extended conference")}, tag="live", body="ExtendRequest",
                    params=CONF, errors=(*LIVE, "422")),
    },
    "/conferences/{id}/end": {
        "post": _op("end_conference", "End a running conference: everyone leaves, the room closes",
                    {"200": _json("Conference", "the ended conference")}, tag="live", params=CONF, errors=LIVE),
    },
    "/conferences/{id}/quality": {
        "get": _op("conference_quality", "Network quality of each connected participant (RTCP)",
                   {"200": _json("QualityReport", "one row per connected participant")}, tag="live", params=CONF,
                   errors=LIVE),
    },
    "/conferences/{id}/deliveries": {
        "get": _op("conference_deliveries", "E-mail delivery status of the invitations, reminders and updates",
                   {"200": _json("DeliveryList", "one row per message and recipient")}, tag="conferences",
                   params=CONF, errors=("401", "403", "404", "503")),
    },
    "/conferences/{id}/log": {
        "get": _op("conference_log", "What happened in the conference, in order (the history's detail)",
                   {"200": _json("ConferenceLog", "event log")}, tag="history", params=CONF),
    },
    "/conferences/{id}/events": {
        "get": _op("conference_events", "Live Server-Sent Events of the conference",
                   {"200": {"description": (
                       "text/event-stream. First an event named `snapshot` whose data is the Conference "
                       "(as GET /conferences/{id}); then one unnamed (`message`) event per domain event, "
                       "data a DomainEvent (`kind` e.g. participant.state with data.state/reason/cause, "
                       "participant.muted, participant.talking, conference.extended, conference.ended); "
                       "comment lines as heartbeats. A reconnecting client gets a fresh snapshot."),
                       "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
                   tag="live", params=CONF, errors=("401", "403", "404", "429")),
    },
    "/history": {
        "get": _op("history", "Past conferences (ended, cancelled, failed) whose start is in [from, to)",
                   {"200": _json("History", "conferences")}, tag="history", errors=("401", "403"),
                   params=[_query("from", "date (YYYY-MM-DD, in the account's time zone) or date-time; "
                                  "default 30 days before `to`", DAY_OR_MOMENT),
                           _query("to", "date (inclusive) or date-time (exclusive); default now",
                                  DAY_OR_MOMENT)]),
    },
    "/conferences/{id}/recording/start": {
        "post": _op("start_recording", "Start recording a running conference (everyone hears it)",
                    {"201": _json("Recording", "the recording")}, tag="live", params=CONF, errors=LIVE),
    },
    "/conferences/{id}/recording/stop": {
        "post": _op("stop_recording", "Stop the running recording (the file is converted afterwards)",
                    NO_CONTENT, tag="live", params=CONF, errors=LIVE),
    },
    "/conferences/{id}/recordings": {
        "get": _op("list_recordings", "The conference's recordings with duration and size",
                   {"200": _json("RecordingList", "recordings")}, tag="history", params=CONF),
    },
    "/recordings/{id}/file": {
        "get": _op("recording_file", "The recording as Ogg/Opus; HTTP range requests let a player seek",
                   {"200": {"description": "the file", "content": {"audio/ogg": {}}},
                    "206": {"description": "the requested range", "content": {"audio/ogg": {}}}},
                   tag="history", params=[_path_id("id", "recording")]),
    },
    "/recordings/{id}": {
        "delete": _op("delete_recording", "Delete a recording", NO_CONTENT, tag="history",
                      params=[_path_id("id", "recording")], errors=("401", "403", "404", "409")),
    },
    **_crud("contacts", "contact", "address book", "ContactList", "Contact", "ContactInput", "ContactInput",
            "put", True),
    **_crud("rooms", "room", "address book", "RoomList", "Room", "RoomInput", "RoomInput", "put", True),
    **_crud("templates", "template", "templates", "TemplateList", "Template", "TemplateCreate", "TemplateUpdate",
            "patch", False),
    "/tokens": {
        "get": _op("list_tokens", "The account's API tokens (never their secrets)",
                   {"200": _json("TokenList", "tokens")}, tag="account", errors=("401", "403")),
        "post": _op("create_token", "Issue an API token (from a portal session only: a bearer token gets 403); "
                    "the secret is in this response only",
                    {"201": _json("TokenCreated", "the new token")}, tag="account", body="TokenCreate",
                    errors=("401", "403", "422"), body_required=False),
    },
    "/tokens/{id}": {
        "delete": _op("revoke_token", "Revoke an API token", NO_CONTENT, tag="account",
                      params=[_path_id("id", "token")]),
    },
    "/password-reset": {"post": {**_op(
        "request_password_reset", "Mail a password-reset link (valid 30 minutes, usable once) to the account's "
        "e-mail address. No authentication; the answer is the same whether or not the account exists. At most 3 "
        "mails per account and 10 requests per client address an hour (429)",
        {"202": _json("Accepted", "accepted")}, tag="account", body="PasswordResetRequest", errors=("429",)),
        "security": []}},
    "/password-reset/confirm": {"post": {**_op(
        "confirm_password_reset", "Set a new password with the mailed link's token (once); every session and "
        "API token of the account is revoked. A used, expired or unknown token: 400 with field `link`",
        NO_CONTENT, tag="account", body="PasswordResetConfirm", errors=()),
        "security": []}},
}

# The operator's endpoints are described in a module of their own.
SCHEMAS.update(operator_schemas())
PATHS.update(operator_paths())

from web.api.prompts_spec import prompt_paths, prompt_schemas  # noqa: E402

SCHEMAS.update(prompt_schemas())
PATHS.update(prompt_paths())

from web.api.series_spec import series_paths, series_schemas  # noqa: E402

SCHEMAS.update(series_schemas())
PATHS.update(series_paths())

from web.api.nodes_spec import node_paths, node_schemas  # noqa: E402

SCHEMAS.update(node_schemas())
PATHS.update(node_paths())

DESCRIPTION = """\
The JSON API of Veche, the audio-conference service. Authenticate with `Authorization: Bearer <token>`
(a token comes from `python -m engine token create <account>` or POST /tokens), or with the portal's
session cookie; cookie-authenticated writes must carry the session's CSRF token in `X-CSRF-Token`.
Errors are JSON `{"error": {"code", "message", "field"?}}` with a stable `code`. Strings must not contain NUL."""


def build_spec(server_url: str = "/api/v1") -> dict[str, Any]:
    """The OpenAPI document (a fresh dict each time)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Veche API", "version": "1.0.0", "description": DESCRIPTION},
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}, {"session": []}],
        "tags": [{"name": name} for name in ("conferences", "live", "history", "address book", "templates",
                                              "account", "operator", "meta")],
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API token"},
                "session": {"type": "apiKey", "in": "cookie", "name": "veche_session",
                            "description": "portal session; writes also need X-CSRF-Token"},
            },
        },
    }


def body_schema(name: str) -> dict[str, Any]:
    """A self-contained JSON Schema (2020-12) for validating a request body of component ``name``."""
    return {"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}}
