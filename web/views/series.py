"""Portal pages of recurring series: scheduling one from Planning, the series page with its
occurrences, and changing, re-issuing the PINs of or cancelling the whole series."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.domain.errors import Forbidden, LimitExceeded, NotFound, StateConflict, ValidationError
from engine.domain.model import ConferencePlan
from web.auth import current_account, login_required
from web.context import services
from web.i18n import translate
from web.views.common import checkbox, error_text, field, flash, render


async def _series(request: web.Request) -> dict[str, Any]:
    account = await current_account(request)
    try:
        return await services(request).series.get(account.id, int(request.match_info["id"]))
    except NotFound:
        raise web.HTTPNotFound() from None


@login_required
async def series_page(request: web.Request) -> web.StreamResponse:
    series = await _series(request)
    return await render(request, "room.html" if series["kind"] == "permanent" else "series.html",
                        {"series": series, "errors": {}})


@login_required
async def rooms_page(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    rooms = await services(request).series.list(account.id, "permanent")
    return await render(request, "rooms.html", {"rooms": rooms, "errors": {}, "values": {}})


@login_required
async def create_room(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    form = await request.post()
    values = {"subject": field(form, "subject"), "max_participants": field(form, "max_participants"),
              "wait": checkbox(form, "guests_wait_for_chair"),
              "guest_pin_required": checkbox(form, "guest_pin_required")}
    try:
        if not values["max_participants"].isdigit():
            raise ValidationError("Enter a whole number", "max_participants")
        plan = ConferencePlan(subject=values["subject"], start=None, duration_minutes=1,
                              max_participants=int(values["max_participants"]),
                              guest_pin_required=values["guest_pin_required"], timezone=account.timezone)
        room = await services(request).rooms.plan_room(account.id, plan, values["wait"])
    except (ValidationError, LimitExceeded, Forbidden) as exc:
        rooms = await services(request).series.list(account.id, "permanent")
        return await render(request, "rooms.html", {
            "rooms": rooms, "values": values,
            "errors": {getattr(exc, "field", None) or "form": await error_text(request, exc)}}, status=400)
    await flash(request, await translate(request, "Permanent room opened"))
    raise web.HTTPSeeOther(f"/series/{room['id']}")


@login_required
async def series_action(request: web.Request) -> web.StreamResponse:
    """Save, re-issue PINs or cancel the whole series."""
    account = await current_account(request)
    series = await _series(request)
    action = request.match_info["action"]
    form = await request.post()
    series_service = services(request).series
    try:
        if action == "edit":
            changes: dict[str, Any] = {"subject": field(form, "subject")}
            for name in ("duration_minutes", "max_participants"):
                raw = field(form, name)
                if not raw.isdigit():
                    raise ValidationError("Enter a whole number", name)
                changes[name] = int(raw)
            await series_service.update_series(account.id, series["id"], changes)
            message = "The whole series was changed"
        elif action == "close":
            await services(request).rooms.close_room(account.id, series["id"])
            message = "The room was closed"
        elif action == "pins":
            await series_service.reissue_pins(account.id, series["id"])
            message = "New PINs were issued for every upcoming occurrence"
        else:
            await series_service.cancel_series(account.id, series["id"])
            message = "The whole series was cancelled"
    except (ValidationError, LimitExceeded, StateConflict) as exc:
        field_name = getattr(exc, "field", None) or "form"
        return await render(request, "room.html" if series["kind"] == "permanent" else "series.html",
                            {"series": series,
                                                     "errors": {field_name: await error_text(request, exc)}},
                            status=409 if isinstance(exc, StateConflict) else 400)
    await flash(request, await translate(request, message))
    raise web.HTTPSeeOther(f"/series/{series['id']}")
