"""API handlers of the operator (/api/v1/operator/...): accounts, number-plan groups, running
conferences with node load, and the audit log. Each parses, calls the operator service
(which refuses anybody who is not an operator), renders."""

from __future__ import annotations

import dataclasses
import re

from aiohttp import web

from engine.domain.errors import NotFound
from web.api import parse, render
from web.api.common import account, no_content, ok
from web.api.operator_spec import GROUP_NAME
from web.context import services

ACCOUNT_ITEM = "/operator/accounts/{id:[0-9]{1,19}}"
GROUP_ITEM = "/operator/plan-groups/{name}"


def _number(request: web.Request, name: str, default: int | None, digits: int = 18) -> int | None:
    raw = parse.query(request, name, {"pattern": f"^[0-9]{{1,{digits}}}$", "description": "a whole number"})
    return int(raw) if raw else default


def _group_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not re.fullmatch(GROUP_NAME["pattern"], name):
        raise NotFound("no such number-plan group")
    return name


async def list_accounts(request: web.Request) -> web.Response:
    found = await services(request).operator.list_accounts(
        account(request).id, parse.query(request, "search"), _number(request, "limit", 200, 4),
        _number(request, "offset", 0, 9))
    return ok({"accounts": render.plain(found)})


async def create_account(request: web.Request) -> web.Response:
    data = await parse.body(request, "OperatorAccountCreate")
    phone, password = data.pop("phone"), data.pop("password")
    created = await services(request).operator.create_account(account(request).id, phone, password, **data)
    return ok(render.plain(created), status=201, headers={"Location": f"{request.path.rstrip('/')}/{created['id']}"})


async def get_account(request: web.Request) -> web.Response:
    found = await services(request).operator.get_account(account(request).id, parse.path_id(request))
    return ok(render.plain(found))


async def update_account(request: web.Request) -> web.Response:
    account_id = parse.path_id(request)
    changes = await parse.body(request, "OperatorAccountUpdate")
    updated = await services(request).operator.update_account(account(request).id, account_id, changes)
    return ok(render.plain(updated))


async def delete_account(request: web.Request) -> web.Response:
    await services(request).operator.delete_account(account(request).id, parse.path_id(request))
    return no_content()


async def block_account(request: web.Request) -> web.Response:
    updated = await services(request).operator.set_blocked(account(request).id, parse.path_id(request), True)
    return ok(render.plain(updated))


async def unblock_account(request: web.Request) -> web.Response:
    updated = await services(request).operator.set_blocked(account(request).id, parse.path_id(request), False)
    return ok(render.plain(updated))


async def reset_password(request: web.Request) -> web.Response:
    account_id = parse.path_id(request)
    data = await parse.body(request, "PasswordReset")
    await services(request).operator.reset_password(account(request).id, account_id, data["password"])
    return no_content()


async def running_conferences(request: web.Request) -> web.Response:
    operator = services(request).operator
    me = account(request).id
    conferences = await operator.running_conferences(me)
    nodes = await operator.node_load(me)
    return ok({"conferences": render.plain(conferences), "nodes": [dataclasses.asdict(n) for n in nodes]})


async def end_conference(request: web.Request) -> web.Response:
    ended = await services(request).operator.end_conference(account(request).id, parse.path_id(request))
    return ok(render.conference(ended, services(request).settings.access_number))


async def list_groups(request: web.Request) -> web.Response:
    groups = await services(request).plan_groups.list_groups(account(request).id)
    return ok({"groups": render.plain(groups)})


async def save_group(request: web.Request) -> web.Response:
    name = _group_name(request)
    data = await parse.body(request, "PlanGroupInput", optional=True)
    group = await services(request).plan_groups.save_group(account(request).id, name, **data)
    return ok(render.plain(group))


async def delete_group(request: web.Request) -> web.Response:
    await services(request).plan_groups.delete_group(account(request).id, _group_name(request))
    return no_content()


async def audit_log(request: web.Request) -> web.Response:
    entries = await services(request).operator.audit_log(
        account(request).id, account_id=_number(request, "account_id", None),
        action=parse.query(request, "action"), limit=_number(request, "limit", 200, 4) or 1,
        before_id=_number(request, "before_id", None))
    return ok({"entries": render.plain(entries)})


# (method, path under /api/v1, handler): registered by web/api/__init__.py with the other routes.
ROUTES = (
    ("GET", "/operator/accounts", list_accounts),
    ("POST", "/operator/accounts", create_account),
    ("GET", ACCOUNT_ITEM, get_account),
    ("PATCH", ACCOUNT_ITEM, update_account),
    ("DELETE", ACCOUNT_ITEM, delete_account),
    ("POST", ACCOUNT_ITEM + "/block", block_account),
    ("POST", ACCOUNT_ITEM + "/unblock", unblock_account),
    ("POST", ACCOUNT_ITEM + "/password", reset_password),
    ("GET", "/operator/conferences", running_conferences),
    ("POST", "/operator/conferences/{id:[0-9]{1,19}}/end", end_conference),
    ("GET", "/operator/plan-groups", list_groups),
    ("PUT", GROUP_ITEM, save_group),
    ("DELETE", GROUP_ITEM, delete_group),
    ("GET", "/operator/audit", audit_log),
)
