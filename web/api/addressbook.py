"""API handlers of the address book (contacts, conference rooms), planning templates, the
account itself and its API tokens. Each parses, calls one service method, renders."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.domain.accounts import Contact, Room, Template
from engine.domain.tokens import ApiToken
from web.api import parse, render
from web.api.common import account, no_content, ok
from web.api.spec_parts import SEARCH
from web.auth import by_token
from web.context import services
from web.security import client_address

CONTACT_FIELDS = ("id", "name", "number", "email")
ROOM_FIELDS = ("id", "name", "number", "location")
TOKEN_FIELDS = ("id", "name", "prefix", "created_at", "last_used_at", "revoked_at", "expires_at")
ACCOUNT_FIELDS = ("id", "phone", "name", "email", "language", "timezone", "role", "max_participants",
                  "max_concurrent_conferences", "max_dialouts_per_minute", "max_concurrent_calls")


def _contact(item: Contact) -> dict[str, Any]:
    return render.fields(item, CONTACT_FIELDS)


def _room(item: Room) -> dict[str, Any]:
    return render.fields(item, ROOM_FIELDS)


def _template(item: Template) -> dict[str, Any]:
    body = render.plain(item)
    body.pop("owner_id", None)
    return body


def _token(item: ApiToken) -> dict[str, Any]:
    return render.fields(item, TOKEN_FIELDS)


# account ---------------------------------------------------------------------------------------

async def me(request: web.Request) -> web.Response:
    return ok(render.fields(account(request), ACCOUNT_FIELDS))


async def list_tokens(request: web.Request) -> web.Response:
    tokens = await services(request).tokens.list(account(request).id)
    return ok({"tokens": [_token(t) for t in tokens]})


async def create_token(request: web.Request) -> web.Response:
    data = await parse.body(request, "TokenCreate", optional=True)
    issued = await services(request).tokens.issue(account(request).id, data.get("name", ""),
                                                  expires_in_days=data.get("expires_in_days"),
                                                  by_token=by_token(request))
    return ok({"token": issued.secret, "details": _token(issued.token)}, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    await services(request).tokens.revoke(account(request).id, parse.path_id(request))
    return no_content()


async def request_password_reset(request: web.Request) -> web.Response:
    """No authentication: the same 202 whether or not the account exists (429 per client address)."""
    data = await parse.body(request, "PasswordResetRequest")
    await services(request).selfservice.request_password_reset(data["phone"], client_address(request))
    return ok({"status": "accepted"}, status=202)


async def confirm_password_reset(request: web.Request) -> web.Response:
    data = await parse.body(request, "PasswordResetConfirm")
    await services(request).selfservice.reset_password(data["token"], data["password"],
                                                       address=client_address(request))
    return no_content()


# contacts --------------------------------------------------------------------------------------

async def list_contacts(request: web.Request) -> web.Response:
    search = parse.query(request, "search", SEARCH)
    contacts = await services(request).addressbook.contacts(account(request).id, search)
    return ok({"contacts": [_contact(c) for c in contacts]})


async def create_contact(request: web.Request) -> web.Response:
    data = await parse.body(request, "ContactInput")
    contact = await services(request).addressbook.add_contact(
        account(request).id, data["name"], data["number"], data.get("email"))
    return ok(_contact(contact), status=201)


async def get_contact(request: web.Request) -> web.Response:
    contact = await services(request).addressbook.contact(account(request).id, parse.path_id(request))
    return ok(_contact(contact))


async def update_contact(request: web.Request) -> web.Response:
    contact_id = parse.path_id(request)
    data = await parse.body(request, "ContactInput")
    contact = await services(request).addressbook.update_contact(
        account(request).id, contact_id, data["name"], data["number"], data.get("email"))
    return ok(_contact(contact))


async def delete_contact(request: web.Request) -> web.Response:
    await services(request).addressbook.delete_contact(account(request).id, parse.path_id(request))
    return no_content()


# conference rooms ------------------------------------------------------------------------------

async def list_rooms(request: web.Request) -> web.Response:
    search = parse.query(request, "search", SEARCH)
    rooms = await services(request).addressbook.rooms(account(request).id, search)
    return ok({"rooms": [_room(r) for r in rooms]})


async def create_room(request: web.Request) -> web.Response:
    data = await parse.body(request, "RoomInput")
    room = await services(request).addressbook.add_room(
        account(request).id, data["name"], data["number"], data.get("location", ""))
    return ok(_room(room), status=201)


async def get_room(request: web.Request) -> web.Response:
    room = await services(request).addressbook.room(account(request).id, parse.path_id(request))
    return ok(_room(room))


async def update_room(request: web.Request) -> web.Response:
    room_id = parse.path_id(request)
    data = await parse.body(request, "RoomInput")
    room = await services(request).addressbook.update_room(
        account(request).id, room_id, data["name"], data["number"], data.get("location", ""))
    return ok(_room(room))


async def delete_room(request: web.Request) -> web.Response:
    await services(request).addressbook.delete_room(account(request).id, parse.path_id(request))
    return no_content()


# templates -------------------------------------------------------------------------------------

async def list_templates(request: web.Request) -> web.Response:
    templates = await services(request).addressbook.templates(account(request).id)
    return ok({"templates": [_template(t) for t in templates]})


async def create_template(request: web.Request) -> web.Response:
    data = await parse.body(request, "TemplateCreate")
    template = await services(request).addressbook.create_template(account(request).id, data)
    return ok(_template(template), status=201)


async def get_template(request: web.Request) -> web.Response:
    template = await services(request).addressbook.template(account(request).id, parse.path_id(request))
    return ok(_template(template))


async def update_template(request: web.Request) -> web.Response:
    template_id = parse.path_id(request)
    data = await parse.body(request, "TemplateUpdate")
    template = await services(request).addressbook.update_template(account(request).id, template_id, data)
    return ok(_template(template))


async def delete_template(request: web.Request) -> web.Response:
    await services(request).addressbook.delete_template(account(request).id, parse.path_id(request))
    return no_content()
