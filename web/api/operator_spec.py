"""The OpenAPI description of the operator's endpoints (/api/v1/operator/...), merged into
web/api/openapi.py's document; its request schemas are what web/api/parse.py validates."""

from __future__ import annotations

from typing import Any

from engine.domain.accounts import LIMIT_RANGES, ROLES
from web.api import spec_parts as spec

GROUP_NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,39}$", "examples": ["default", "international"]}
PATTERN = {"type": "string", "maxLength": 40, "pattern": "^(_[0-9XZNxzn\\[\\]\\-]+[.!]?|[0-9]{2,15})$",
           "examples": ["_375XXXXXXXXX", "_1XXX", "_00X."],
           "description": "Asterisk-style: _ then digits, X (0-9), Z (1-9), N (2-9), [1-5] and a final . or !"}
PHONE = {"type": "string", "pattern": "^375[0-9]{9}$", "examples": ["375291234567"]}
PASSWORD = {"type": "string", "minLength": 8, "maxLength": 128, "description": "not one of the common passwords"}


def _limits() -> dict[str, Any]:
    return {**{name: {"type": "integer", "minimum": low, "maximum": high}
               for name, (low, high) in LIMIT_RANGES.items()},
            "recording_allowed": {"type": "boolean", "description": "the account may record conferences"},
            "plan_group": GROUP_NAME}


def operator_schemas() -> dict[str, Any]:
    profile = {"name": spec.NAME, "email": spec.EMAIL, "language": spec.LANGUAGE}
    account_out = spec._obj({
        "id": spec.ID, "phone": {"type": "string"}, "name": {"type": "string"}, "email": spec.EMAIL_OUT,
        "language": {"type": "string"}, "timezone": {"type": "string"},
        "role": {"type": "string", "enum": list(ROLES)},
        "max_participants": {"type": "integer"}, "max_concurrent_conferences": {"type": "integer"},
        "max_dialouts_per_minute": {"type": "integer"}, "max_concurrent_calls": {"type": "integer"},
        "blocked": {"type": "boolean"}, "recording_allowed": {"type": "boolean"},
        "plan_group": {"type": "string"}, "created_at": spec.DATETIME, "updated_at": spec.DATETIME,
        "admin": {"type": "boolean", "description": "an operator who may block, reset or delete operators"},
    }, ("id", "phone", "role", "blocked", "plan_group"), closed=False)
    group_out = spec._obj({
        "name": {"type": "string"}, "description": {"type": "string"},
        "patterns": {"type": "array", "items": {"type": "string"}},
        "allow_international": {"type": "boolean"}, "allow_premium": {"type": "boolean"},
        "accounts": {"type": "integer"}, "created_at": spec.DATETIME, "updated_at": spec.DATETIME,
    }, ("name", "patterns", "allow_international", "allow_premium"), closed=False)
    return {
        "OperatorAccount": account_out,
        "OperatorAccountList": spec._obj({"accounts": {"type": "array", "items": spec._ref("OperatorAccount")}},
                                         ("accounts",), closed=False),
        "OperatorAccountCreate": spec._obj({"phone": PHONE, "password": PASSWORD, **profile, **_limits()},
                                           ("phone", "password")),
        "OperatorAccountUpdate": {**spec._obj({**profile, **_limits()}), "minProperties": 1},
        "PasswordReset": spec._obj({"password": PASSWORD}, ("password",)),
        "PlanGroup": group_out,
        "PlanGroupList": spec._obj({"groups": {"type": "array", "items": spec._ref("PlanGroup")}}, ("groups",),
                                   closed=False),
        "PlanGroupInput": spec._obj({
            "description": spec._one_line(200),
            "patterns": {"type": "array", "maxItems": 50, "items": PATTERN,
                         "description": "empty: the default plan (375 + 9 digits, internal short numbers)"},
            "allow_international": {"type": "boolean", "default": False},
            "allow_premium": {"type": "boolean", "default": False},
        }),
        "RunningConference": spec._obj({
            "id": spec.ID, "subject": {"type": "string"}, "node_id": {"type": "string"},
            "conference_number": {"type": "string"}, "started_at": spec.NULL_DATETIME, "ends_at": spec.DATETIME,
            "owner_id": spec.ID, "owner_phone": {"type": "string"}, "connected": {"type": "integer"},
            "dialling": {"type": "integer"}, "participants": {"type": "integer"},
        }, ("id", "owner_id", "node_id", "connected"), closed=False),
        "NodeLoad": spec._obj({
            "node_id": {"type": "string"}, "connected": {"type": "boolean"},
            "channels": spec._nullable({"type": "integer"}), "conferences": {"type": "integer"},
            "participants": {"type": "integer"},
        }, ("node_id", "connected", "channels", "conferences", "participants"), closed=False),
        "OperatorConferences": spec._obj({
            "conferences": {"type": "array", "items": spec._ref("RunningConference")},
            "nodes": {"type": "array", "items": spec._ref("NodeLoad")},
        }, ("conferences", "nodes"), closed=False),
        "AuditEntry": spec._obj({
            "id": spec.ID, "at": spec.DATETIME, "actor": {"type": "string"}, "actor_id": spec._nullable(spec.ID),
            "action": {"type": "string"}, "account_id": spec._nullable(spec.ID),
            "conference_id": spec._nullable(spec.ID), "address": spec._nullable({"type": "string"}),
            "detail": {"type": "object"},
        }, ("id", "at", "actor", "action"), closed=False),
        "AuditLog": spec._obj({"entries": {"type": "array", "items": spec._ref("AuditEntry")}}, ("entries",),
                              closed=False),
    }


def operator_paths() -> dict[str, Any]:
    tag = "operator"
    errors = ("401", "403")
    item = [spec._path_id("id", "account")]
    group = [{"name": "name", "in": "path", "required": True, "description": "group name", "schema": GROUP_NAME}]
    paging = [spec._query("limit", "at most this many (1-1000)", {"type": "string", "pattern": "^[0-9]{1,4}$"}),
              spec._query("offset", "skip this many", {"type": "string", "pattern": "^[0-9]{1,9}$"})]
    return {
        "/operator/accounts": {
            "get": spec._op("operator_list_accounts", "Every account (operator only)",
                            {"200": spec._json("OperatorAccountList", "accounts")}, tag=tag, errors=errors,
                            params=[spec._query("search", "text in the phone, name or e-mail",
                                                {"type": "string", "maxLength": 100}), *paging]),
            "post": spec._op("operator_create_account", "Create a customer account with its limits",
                             {"201": spec._json("OperatorAccount", "the new account")}, tag=tag,
                             body="OperatorAccountCreate", errors=errors),
        },
        "/operator/accounts/{id}": {
            "get": spec._op("operator_get_account", "One account", {"200": spec._json("OperatorAccount", "account")},
                            tag=tag, params=item),
            "patch": spec._op("operator_update_account", "Change an account's profile, limits or number-plan group",
                              {"200": spec._json("OperatorAccount", "the changed account")}, tag=tag,
                              body="OperatorAccountUpdate", params=item),
            "delete": spec._op("operator_delete_account", "Delete an account with its conferences and data",
                               spec.NO_CONTENT, tag=tag, params=item, errors=("401", "403", "404", "409")),
        },
        "/operator/accounts/{id}/block": {
            "post": spec._op("operator_block_account", "Block: no login, no API, no conference starts",
                             {"200": spec._json("OperatorAccount", "the blocked account")}, tag=tag, params=item,
                             errors=("401", "403", "404", "409")),
        },
        "/operator/accounts/{id}/unblock": {
            "post": spec._op("operator_unblock_account", "Unblock an account",
                             {"200": spec._json("OperatorAccount", "the account")}, tag=tag, params=item,
                             errors=("401", "403", "404", "409")),
        },
        "/operator/accounts/{id}/password": {
            "post": spec._op("operator_reset_password", "Set a new password (ends the account's sessions "
                             "and revokes its API tokens)",
                             spec.NO_CONTENT, tag=tag, body="PasswordReset", params=item),
        },
        "/operator/conferences": {
            "get": spec._op("operator_running_conferences",
                            "Running conferences of every account and the load of each Asterisk node",
                            {"200": spec._json("OperatorConferences", "conferences and nodes")}, tag=tag,
                            errors=errors),
        },
        "/operator/conferences/{id}/end": {
            "post": spec._op("operator_end_conference", "End any running conference",
                             {"200": spec._json("Conference", "the ended conference")}, tag=tag, params=spec.CONF,
                             errors=spec.LIVE),
        },
        "/operator/plan-groups": {
            "get": spec._op("operator_list_plan_groups", "Number-plan groups (which numbers accounts may dial)",
                            {"200": spec._json("PlanGroupList", "groups")}, tag=tag, errors=errors),
        },
        "/operator/plan-groups/{name}": {
            "put": spec._op("operator_save_plan_group", "Create or replace a number-plan group",
                            {"200": spec._json("PlanGroup", "the group")}, tag=tag, body="PlanGroupInput",
                            params=group, errors=("401", "403", "404", "422"), body_required=False),
            "delete": spec._op("operator_delete_plan_group", "Delete a group no account uses", spec.NO_CONTENT,
                               tag=tag, params=group, errors=("401", "403", "404", "409")),
        },
        "/operator/audit": {
            "get": spec._op("operator_audit_log", "The audit log, newest first",
                            {"200": spec._json("AuditLog", "entries")}, tag=tag, errors=errors,
                            params=[spec._query("account_id", "entries by or about this account",
                                                {"type": "string", "pattern": "^[0-9]{1,18}$"}),
                                    spec._query("action", "actions starting with this text",
                                                {"type": "string", "maxLength": 64}),
                                    spec._query("before_id", "entries older than this id (paging)",
                                                {"type": "string", "pattern": "^[0-9]{1,18}$"}),
                                    paging[0]]),
        },
    }
