"""Settings: personal information and password, contacts, conference rooms and My templates."""

from __future__ import annotations

from aiohttp import web
from aiohttp_session import get_session

from engine.domain.errors import RateLimited, ValidationError
from web.auth import ACCOUNT_KEY, current_account, login_required
from web.context import services
from web.i18n import translate
from web.views.common import N_, checkbox, error_text, field, flash, path_id, render
from web.views.planning import plan_form_values, template_form_context


@login_required
async def profile(request: web.Request) -> web.StreamResponse:
    return await render(request, "settings/profile.html", {"section": "profile", "errors": {}})


@login_required
async def profile_submit(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    form = await request.post()
    accounts = services(request).accounts
    new_email = field(form, "email")
    # A new address counts only once it is confirmed from that address; clearing it needs no link.
    changes = {"name": field(form, "name"), "language": field(form, "language"),
               "mail_own_copy": checkbox(form, "mail_own_copy")}
    confirm = bool(new_email) and new_email.lower() != (account.email or "").lower()
    if not new_email:
        changes["email"] = ""
    try:
        await accounts.update_profile(account.id, **changes)
        if confirm:
            new_email = await services(request).selfservice.request_email_change(account.id, new_email)
    except (ValidationError, RateLimited) as exc:
        return await render(request, "settings/profile.html", {
            "section": "profile", "errors": {getattr(exc, "field", None) or "email": await error_text(request, exc)},
            "form": form}, status=429 if isinstance(exc, RateLimited) else 400)
    request.pop(ACCOUNT_KEY, None)
    session = await get_session(request)
    session["lang"] = field(form, "language")
    await flash(request, await translate(request, "Personal information saved"))
    if confirm:
        await flash(request, await translate(
            request, "We sent a link to %(email)s: the address changes when you open it (within 30 minutes)",
            email=new_email))
    raise web.HTTPSeeOther("/settings")


@login_required
async def password_submit(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    form = await request.post()
    session = await get_session(request)
    try:
        if field(form, "new_password") != field(form, "new_password_again"):
            raise ValidationError("The new passwords do not match", "new_password_again")
        await services(request).accounts.change_password(
            account.id, form.get("old_password", ""), form.get("new_password", ""), keep_session=session.identity)
    except ValidationError as exc:
        return await render(request, "settings/profile.html", {
            "section": "profile", "errors": {exc.field: await error_text(request, exc)}}, status=400)
    await flash(request, await translate(request, "Password changed; your other sessions were signed out"))
    raise web.HTTPSeeOther("/settings")


# contacts and conference rooms share one page shape
ENTRY_KINDS = {
    "contacts": {"list": "contacts", "get": "contact", "add": "add_contact", "update": "update_contact",
                 "delete": "delete_contact", "extra": "email", "saved": N_("Contact saved"),
                 "deleted": N_("Contact deleted")},
    "rooms": {"list": "rooms", "get": "room", "add": "add_room", "update": "update_room",
              "delete": "delete_room", "extra": "location", "saved": N_("Conference room saved"),
              "deleted": N_("Conference room deleted")},
}


def _kind(request: web.Request) -> tuple[str, dict]:
    kind = request.match_info["kind"]
    if kind not in ENTRY_KINDS:
        raise web.HTTPNotFound()
    return kind, ENTRY_KINDS[kind]


async def _entries_page(request: web.Request, *, editing: object = None, errors: dict | None = None,
                        form: object = None, status: int = 200) -> web.Response:
    kind, spec = _kind(request)
    account = await current_account(request)
    search = request.query.get("q", "")[:100]
    entries = await getattr(services(request).addressbook, spec["list"])(account.id, search)
    return await render(request, f"settings/{kind}.html", {
        "section": kind, "entries": entries, "search": search, "editing": editing,
        "errors": errors or {}, "form": form}, status=status)


@login_required
async def entries(request: web.Request) -> web.StreamResponse:
    _kind(request)
    editing = None
    if "edit" in request.query:
        kind, spec = _kind(request)
        account = await current_account(request)
        try:
            entry_id = int(request.query["edit"])
        except ValueError:
            raise web.HTTPNotFound() from None
        editing = await getattr(services(request).addressbook, spec["get"])(account.id, entry_id)
    return await _entries_page(request, editing=editing)


@login_required
async def entry_save(request: web.Request) -> web.StreamResponse:
    kind, spec = _kind(request)
    account = await current_account(request)
    form = await request.post()
    book = services(request).addressbook
    values = (field(form, "name"), field(form, "number"), field(form, spec["extra"]))
    entry_id = request.match_info.get("id")
    try:
        if entry_id is None:
            await getattr(book, spec["add"])(account.id, *values)
        else:
            await getattr(book, spec["update"])(account.id, path_id(request), *values)
    except ValidationError as exc:
        editing = None
        if entry_id is not None:
            editing = await getattr(book, spec["get"])(account.id, path_id(request))
        return await _entries_page(request, editing=editing, errors={exc.field: await error_text(request, exc)},
                                   form=form, status=400)
    await flash(request, await translate(request, spec["saved"]))
    raise web.HTTPSeeOther(f"/settings/{kind}")


@login_required
async def entry_delete(request: web.Request) -> web.StreamResponse:
    kind, spec = _kind(request)
    account = await current_account(request)
    await getattr(services(request).addressbook, spec["delete"])(account.id, path_id(request))
    await flash(request, await translate(request, spec["deleted"]))
    raise web.HTTPSeeOther(f"/settings/{kind}")


@login_required
async def templates(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    items = await services(request).addressbook.templates(account.id)
    return await render(request, "settings/templates.html", {"section": "templates", "templates": items})


@login_required
async def template_edit(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    template = await services(request).addressbook.template(account.id, path_id(request))
    context = await template_form_context(request, template)
    return await render(request, "settings/template_edit.html", {"section": "templates", "template": template,
                                                                  **context})


@login_required
async def template_save(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    book = services(request).addressbook
    template = await book.template(account.id, path_id(request))
    form = await request.post()
    try:
        values = plan_form_values(form, for_template=True)
        values["name"] = field(form, "template_name")
        values["is_default"] = form.get("is_default") == "on"
        await book.update_template(account.id, template.id, values)
    except ValidationError as exc:
        context = await template_form_context(request, template, form=form)
        return await render(request, "settings/template_edit.html", {
            "section": "templates", "template": template, **context,
            "errors": {exc.field or "form": await error_text(request, exc)}}, status=400)
    await flash(request, await translate(request, "Template saved"))
    raise web.HTTPSeeOther("/settings/templates")


@login_required
async def template_default(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    await services(request).addressbook.set_default_template(account.id, path_id(request))
    await flash(request, await translate(request, "Default template set"))
    raise web.HTTPSeeOther("/settings/templates")


@login_required
async def template_delete(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    await services(request).addressbook.delete_template(account.id, path_id(request))
    await flash(request, await translate(request, "Template deleted"))
    raise web.HTTPSeeOther("/settings/templates")
