"""The operator's pages (accounts.role = 'operator'): running conferences with the load of each
Asterisk node, customer accounts (create, limits, number-plan group, block, password, delete),
number-plan groups and the audit log. Every action goes through the operator's services
(engine/services/operator.py, engine/services/numberplans.py)."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from engine.domain.errors import Forbidden, LimitExceeded, NotFound, StateConflict, ValidationError
from web.auth import View, current_account, login_required
from web.context import services
from web.i18n import translate
from web.views import pictures
from web.views.common import N_, checkbox, error_text, field, flash, int_param, path_id, render

LIMIT_FIELDS = ("max_participants", "max_concurrent_conferences", "max_dialouts_per_minute", "max_concurrent_calls")
ACCOUNT_DEFAULTS = {"phone": "", "name": "", "email": "", "language": "ru", "plan_group": "default",
                    "max_participants": 50, "max_concurrent_conferences": 3, "max_dialouts_per_minute": 120,
                    "max_concurrent_calls": 50}
GROUP_DEFAULTS = {"name": "", "description": "", "patterns": "", "allow_international": False,
                  "allow_premium": False}


def operator_required(view: View) -> View:
    """Logged-in operators only; anybody else gets 403 (the service checks again)."""

    @functools.wraps(view)
    @login_required
    async def wrapper(request: web.Request) -> web.StreamResponse:
        account = await current_account(request)
        if account is None or account.role != "operator":
            raise web.HTTPForbidden()
        return await view(request)

    return wrapper


async def _operator_id(request: web.Request) -> int:
    account = await current_account(request)
    assert account is not None
    return account.id


def _account_fields(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in ("name", "email", "language", "plan_group", *LIMIT_FIELDS):
        if name in form:
            values[name] = field(form, name)
    for name in LIMIT_FIELDS:
        if name in values:
            values[name] = int_param(values[name], default=-1)
    if "recording_field" in form:  # the form's checkbox sends nothing when unticked
        values["recording_allowed"] = checkbox(form, "recording_allowed")
    return values


async def _fail(request: web.Request, exc: Exception, target: str) -> web.StreamResponse:
    await flash(request, await error_text(request, exc), "error")  # type: ignore[arg-type]
    raise web.HTTPSeeOther(target)


# ------------------------------------------------------------------ dashboard


@operator_required
async def dashboard(request: web.Request) -> web.StreamResponse:
    operator = services(request).operator
    me = await _operator_id(request)
    load = await pictures.load_picture(request, services(request).pictures, await current_account(request))
    return await render(request, "operator/dashboard.html", {
        "conferences": await operator.running_conferences(me), "nodes": await operator.node_load(me), "load": load,
        "alerts": list(reversed(services(request).guard.alerts[-20:]))})


@operator_required
async def end_conference(request: web.Request) -> web.StreamResponse:
    target = str(request.app.router["operator"].url_for())
    try:
        await services(request).operator.end_conference(await _operator_id(request), path_id(request))
    except (StateConflict, NotFound) as exc:
        return await _fail(request, exc, target)
    await flash(request, await translate(request, "The conference was ended"))
    raise web.HTTPSeeOther(target)


# ------------------------------------------------------------------ accounts


async def _accounts_page(request: web.Request, *, values: dict[str, Any] | None = None,
                         errors: dict[str, str] | None = None, status: int = 200) -> web.StreamResponse:
    operator = services(request).operator
    me = await _operator_id(request)
    search = request.query.get("search", "")[:100]
    return await render(request, "operator/accounts.html", {
        "accounts": await operator.list_accounts(me, search),
        "groups": await services(request).plan_groups.list_groups(me),
        "search": search, "values": {**ACCOUNT_DEFAULTS, **(values or {})}, "errors": errors or {},
    }, status=status)


@operator_required
async def accounts(request: web.Request) -> web.StreamResponse:
    return await _accounts_page(request)


@operator_required
async def create_account(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = _account_fields(form)
    phone, password = field(form, "phone"), form.get("password", "")
    try:
        created = await services(request).operator.create_account(
            await _operator_id(request), phone, password if isinstance(password, str) else "", **values)
    except (ValidationError, LimitExceeded, StateConflict) as exc:
        name = getattr(exc, "field", None) or "phone"
        return await _accounts_page(request, values={**values, "phone": phone},
                                    errors={name: await error_text(request, exc)}, status=400)
    await flash(request, await translate(request, "Account %(phone)s created", phone=created["phone"]))
    raise web.HTTPSeeOther(request.app.router["operator_account"].url_for(id=str(created["id"])))


async def _account_page(request: web.Request, account_id: int, *, errors: dict[str, str] | None = None,
                        status: int = 200) -> web.StreamResponse:
    operator = services(request).operator
    me = await _operator_id(request)
    account = await operator.get_account(me, account_id)
    return await render(request, "operator/account.html", {
        "item": account, "groups": await services(request).plan_groups.list_groups(me), "errors": errors or {},
        "entries": await operator.audit_log(me, account_id=account_id, limit=50)}, status=status)


@operator_required
async def account_page(request: web.Request) -> web.StreamResponse:
    return await _account_page(request, path_id(request))


@operator_required
async def update_account(request: web.Request) -> web.StreamResponse:
    account_id = path_id(request)
    form = await request.post()
    try:
        await services(request).operator.update_account(await _operator_id(request), account_id,
                                                          _account_fields(form))
    except ValidationError as exc:
        return await _account_page(request, account_id, errors={exc.field or "name": await error_text(request, exc)},
                                   status=400)
    await flash(request, await translate(request, "Changes saved"))
    raise web.HTTPSeeOther(request.path)


@operator_required
async def account_action(request: web.Request) -> web.StreamResponse:
    """block, unblock, password (reset) or delete."""
    account_id = path_id(request)
    action = request.match_info["action"]
    operator = services(request).operator
    me = await _operator_id(request)
    target = str(request.app.router["operator_account"].url_for(id=str(account_id)))
    form = await request.post()
    try:
        if action in ("block", "unblock"):
            await operator.set_blocked(me, account_id, action == "block")
            message = "The account is blocked" if action == "block" else "The account is unblocked"
        elif action == "password":
            password = form.get("password", "")
            await operator.reset_password(me, account_id, password if isinstance(password, str) else "")
            message = "The password was changed; the account's sessions were ended"
        elif action == "delete":
            await operator.delete_account(me, account_id)
            await flash(request, await translate(request, "The account was deleted"))
            raise web.HTTPSeeOther(request.app.router["operator_accounts"].url_for())
        else:
            raise web.HTTPNotFound()
    except ValidationError as exc:
        return await _account_page(request, account_id, errors={"password": await error_text(request, exc)},
                                   status=400)
    except (StateConflict, Forbidden) as exc:
        return await _fail(request, exc, target)
    await flash(request, await translate(request, message))
    raise web.HTTPSeeOther(target)


# ------------------------------------------------------------------ number-plan groups


async def _groups_page(request: web.Request, *, values: dict[str, Any] | None = None,
                       errors: dict[str, str] | None = None, check: dict[str, Any] | None = None,
                       status: int = 200) -> web.StreamResponse:
    groups = await services(request).plan_groups.list_groups(await _operator_id(request))
    return await render(request, "operator/groups.html", {
        "groups": groups, "values": {**GROUP_DEFAULTS, **(values or {})}, "errors": errors or {},
        "check": check}, status=status)


@operator_required
async def groups(request: web.Request) -> web.StreamResponse:
    edit = request.query.get("edit", "")
    chosen = next((g for g in await services(request).plan_groups.list_groups(await _operator_id(request))
                   if g["name"] == edit), None)
    values = {**chosen, "patterns": "\n".join(chosen["patterns"])} if chosen else {}
    return await _groups_page(request, values=values)


@operator_required
async def save_group(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {"name": field(form, "name"), "description": field(form, "description"),
              "patterns": field(form, "patterns"), "allow_international": form.get("allow_international") == "on",
              "allow_premium": form.get("allow_premium") == "on"}
    patterns = [line.strip() for line in values["patterns"].replace(",", "\n").splitlines() if line.strip()]
    try:
        await services(request).plan_groups.save_group(
            await _operator_id(request), values["name"], description=values["description"], patterns=patterns,
            allow_international=values["allow_international"], allow_premium=values["allow_premium"])
    except ValidationError as exc:
        name = (exc.field or "name").split("[", 1)[0]
        return await _groups_page(request, values=values, errors={name: await error_text(request, exc)}, status=400)
    await flash(request, await translate(request, "Changes saved"))
    raise web.HTTPSeeOther(request.app.router["operator_groups"].url_for())


@operator_required
async def delete_group(request: web.Request) -> web.StreamResponse:
    target = str(request.app.router["operator_groups"].url_for())
    try:
        await services(request).plan_groups.delete_group(await _operator_id(request), request.match_info["group"])
    except (StateConflict, NotFound) as exc:
        return await _fail(request, exc, target)
    await flash(request, await translate(request, "The group was deleted"))
    raise web.HTTPSeeOther(target)


# The kinds NumberPlan.classify names, as the operator's number check shows them.
NUMBER_KINDS = {"internal": N_("internal number"), "mobile": N_("mobile number"), "fixed": N_("fixed-line number"),
                "toll_free": N_("toll-free number"), "premium": N_("premium-rate number"),
                "international": N_("international number"), "unknown": N_("unknown kind of number")}


@operator_required
async def check_number(request: web.Request) -> web.StreamResponse:
    group, number = request.query.get("group", "default")[:40], request.query.get("number", "")[:40]
    try:
        check = await services(request).plan_groups.check_number(await _operator_id(request), group, number)
    except NotFound as exc:
        check = {"number": number, "allowed": False, "refusal": exc, "kind": "unknown"}
    reason = await error_text(request, check["refusal"]) if check["refusal"] is not None else ""
    kind = await translate(request, NUMBER_KINDS.get(check["kind"], NUMBER_KINDS["unknown"]))
    return await _groups_page(request, check={**check, "reason": reason, "kind": kind, "group": group})


# ------------------------------------------------------------------ audit log


@operator_required
async def audit(request: web.Request) -> web.StreamResponse:
    account_id = int_param(request.query.get("account_id", ""))
    before_id = int_param(request.query.get("before_id", ""))
    action = request.query.get("action", "")[:64]
    entries = await services(request).operator.audit_log(
        await _operator_id(request), account_id=account_id if account_id and 0 < account_id < 2**62 else None,
        action=action, limit=100, before_id=before_id if before_id and 0 < before_id < 2**62 else None)
    return await render(request, "operator/audit.html", {
        "entries": entries, "account_id": account_id or "", "action": action})


def setup_operator_routes(app: web.Application) -> None:
    add = app.router
    add.add_get("/operator", dashboard, name="operator")
    add.add_post(r"/operator/conferences/{id:\d+}/end", end_conference, name="operator_end")
    add.add_get("/operator/accounts", accounts, name="operator_accounts")
    add.add_post("/operator/accounts", create_account)
    add.add_get(r"/operator/accounts/{id:\d+}", account_page, name="operator_account")
    add.add_post(r"/operator/accounts/{id:\d+}", update_account)
    add.add_post(r"/operator/accounts/{id:\d+}/{action:block|unblock|password|delete}", account_action,
                 name="operator_account_action")
    add.add_get("/operator/groups", groups, name="operator_groups")
    add.add_post("/operator/groups", save_group)
    add.add_post(r"/operator/groups/{group:[a-z0-9][a-z0-9_-]{0,39}}/delete", delete_group,
                 name="operator_group_delete")
    add.add_get("/operator/groups/check", check_number, name="operator_check")
    add.add_get("/operator/audit", audit, name="operator_audit")
