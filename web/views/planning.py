"""Planning: the form (pre-filled from the default template), Schedule and Create template;
also the form parsing the conference edit page and template editing reuse."""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from engine.domain.accounts import Template
from engine.domain.errors import Forbidden, IdempotencyKeyReused, LimitExceeded, StateConflict, ValidationError
from engine.domain.model import AUTO_EXTEND_STEPS, ConferencePlan, ParticipantPlan
from engine.services.idempotency import Answer
from web.auth import current_account, login_required
from web.context import services
from web.i18n import translate
from web.views.common import checkbox, error_text, field, flash, render

DURATIONS = (15, 30, 45, 60, 90, 120, 180, 240)
PARTICIPANT_ROW = re.compile(r"^participants\[([0-9]+)\]")
REMINDER_LEADS = (5, 15, 30, 60, 120, 1440)
EMPTY_ROWS = 3


def _int(form: MultiDictProxy, name: str, message: str) -> int:
    try:
        return int(field(form, name))
    except ValueError:
        raise ValidationError(message, name) from None


def form_participants(form: MultiDictProxy) -> list[dict[str, Any]]:
    numbers, names, emails = form.getall("p_number", []), form.getall("p_name", []), form.getall("p_email", [])
    roles = form.getall("p_role", [])
    rows = []
    for index, number in enumerate(numbers):
        name = names[index].strip() if index < len(names) else ""
        email = emails[index].strip() if index < len(emails) else ""
        role = roles[index] if index < len(roles) else "guest"
        if number.strip() or name or email:
            rows.append({"number": number.strip(), "name": name, "email": email or None, "role": role})
    return rows


def plan_form_values(form: MultiDictProxy, *, for_template: bool = False) -> dict[str, Any]:
    """The Planning form's fields as plain values (template fields; no start time)."""
    values: dict[str, Any] = {
        "subject": field(form, "subject"),
        "duration_minutes": _int(form, "duration_minutes", "Choose the duration"),
        "max_participants": _int(form, "max_participants", "Enter the number of participants"),
        "auto_invite": checkbox(form, "auto_invite"),
        "auto_extend_minutes": _int(form, "auto_extend_minutes", "Auto-extend is off, 15, 30, 45 or 60 minutes"),
        "guest_pin_required": checkbox(form, "guest_pin_required"),
        "recording": checkbox(form, "recording"),
        "reminder_minutes": _int(form, "reminder_minutes", "Choose the reminder lead time")
        if checkbox(form, "reminder") else None,
        "participants": form_participants(form),
        "language": field(form, "language") or None,
    }
    if not for_template:
        values["notify_participants"] = checkbox(form, "notify_participants")
    return values


def form_start(form: MultiDictProxy, timezone: str) -> datetime | None:
    if field(form, "when", "now") == "now":
        return None
    try:
        day = datetime.strptime(field(form, "date"), "%Y-%m-%d").date()
        clock = datetime.strptime(field(form, "time"), "%H:%M").time()
    except ValueError:
        raise ValidationError("Enter the date and time of the conference", "date") from None
    return datetime.combine(day, clock, tzinfo=ZoneInfo(timezone))


def plan_from_form(form: MultiDictProxy, timezone: str) -> ConferencePlan:
    values = plan_form_values(form)
    participants = tuple(ParticipantPlan(p["number"], p["name"], p["email"], p["role"])
                         for p in values.pop("participants"))
    return ConferencePlan(start=form_start(form, timezone), participants=participants, timezone=timezone,
                          mode="voice", **values)


def _values_from_template(template: Template | None) -> dict[str, Any]:
    if template is None:
        return {"subject": "", "duration_minutes": 60, "max_participants": 10, "auto_invite": True,
                "auto_extend_minutes": 0, "guest_pin_required": True, "reminder_minutes": None, "participants": [],
                "language": None, "notify_participants": False, "recording": False}
    return {"subject": template.subject, "duration_minutes": template.duration_minutes,
            "max_participants": template.max_participants, "auto_invite": template.auto_invite,
            "auto_extend_minutes": template.auto_extend_minutes, "guest_pin_required": template.guest_pin_required,
            "reminder_minutes": template.reminder_minutes, "language": template.language, "notify_participants": False,
            "recording": template.recording,
            "participants": [asdict(p) for p in template.participants]}


def _values_from_form(form: MultiDictProxy) -> dict[str, Any]:
    """What the customer typed, to show the form again after an error (no validation)."""
    def number(name: str, default: int) -> int:
        try:
            return int(field(form, name))
        except ValueError:
            return default

    return {"subject": field(form, "subject"), "duration_minutes": number("duration_minutes", 60),
            "max_participants": number("max_participants", 10), "auto_invite": checkbox(form, "auto_invite"),
            "auto_extend_minutes": number("auto_extend_minutes", 0),
            "guest_pin_required": checkbox(form, "guest_pin_required"),
            "recording": checkbox(form, "recording"),
            "reminder_minutes": number("reminder_minutes", 60) if checkbox(form, "reminder") else None,
            "notify_participants": checkbox(form, "notify_participants"),
            "participants": form_participants(form), "when": field(form, "when", "now"),
            "date": field(form, "date"), "time": field(form, "time"),
            "template_name": field(form, "template_name"), "language": field(form, "language") or None,
            "idempotency_key": field(form, "idempotency_key")}


async def form_context(request: web.Request, values: dict[str, Any]) -> dict[str, Any]:
    account = await current_account(request)
    book = services(request).addressbook
    zone = ZoneInfo(account.timezone)
    later = (datetime.now(zone) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    values = {"when": "now", "date": later.strftime("%Y-%m-%d"), "time": later.strftime("%H:%M"),
              "template_name": "", **values}
    values["idempotency_key"] = values.get("idempotency_key") or secrets.token_urlsafe(16)
    rows = list(values["participants"]) + [{"number": "", "name": "", "email": None, "role": "guest"}] * EMPTY_ROWS
    return {"values": values, "rows": rows, "contacts": await book.contacts(account.id),
            "rooms": await book.rooms(account.id), "durations": DURATIONS, "extend_steps": AUTO_EXTEND_STEPS,
            "reminder_leads": REMINDER_LEADS, "errors": {}}


async def template_form_context(request: web.Request, template: Template,
                                form: MultiDictProxy | None = None) -> dict[str, Any]:
    values = _values_from_form(form) if form is not None else _values_from_template(template)
    values["template_name"] = values.get("template_name") or template.name
    return await form_context(request, values)


@login_required
async def planning(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    book = services(request).addressbook
    template = None
    if "template" in request.query:
        try:
            template = await book.template(account.id, int(request.query["template"]))
        except ValueError:
            raise web.HTTPNotFound() from None
    else:
        template = await book.default_template(account.id)
    context = await form_context(request, _values_from_template(template))
    return await render(request, "planning.html", {"template": template, **context})


async def _form_error(request: web.Request, form: MultiDictProxy, exc: Exception, status: int = 400,
                      template: str = "planning.html", extra: dict | None = None) -> web.Response:
    context = await form_context(request, _values_from_form(form))
    name = getattr(exc, "field", None) or "form"
    message = await error_text(request, exc)
    row = PARTICIPANT_ROW.match(name)
    if row:  # say which row of the participant table is wrong
        message = await translate(request, "Participant %(row)d: %(error)s", row=int(row.group(1)) + 1,
                                  error=message)
    context["errors"] = {name: message}
    context.setdefault("template", None)
    return await render(request, template, {**context, **(extra or {})}, status=status)


def repeat_values(form: MultiDictProxy) -> dict[str, Any]:
    """The Repeat fieldset as typed (to show it again after an error)."""
    return {"frequency": field(form, "repeat", "none"), "weekdays": tuple(form.getall("repeat_days", ())),
            "end": field(form, "repeat_end", "count"), "count": field(form, "repeat_count"),
            "until": field(form, "repeat_until")}


def recurrence_from_form(form: MultiDictProxy) -> dict[str, Any]:
    """The repeat rule for SeriesPlanning.plan_series (validated there)."""
    typed = repeat_values(form)
    rule: dict[str, Any] = {"frequency": typed["frequency"], "weekdays": list(typed["weekdays"])}
    if typed["end"] == "until":
        rule["until"] = typed["until"] or None
    else:
        count = typed["count"].strip()
        rule["count"] = int(count) if count.isdigit() else (count or None)
    return rule


async def schedule_series(request: web.Request, account: Any, form: MultiDictProxy) -> web.StreamResponse:
    extra = {"repeat": repeat_values(form)}
    try:
        plan = plan_from_form(form, account.timezone)
        if plan.start is None:
            raise ValidationError("A recurring conference needs a date and time of its first occurrence", "date")
        series = await services(request).series.plan_series(account.id, plan, recurrence_from_form(form))
    except ValidationError as exc:
        return await _form_error(request, form, exc, extra=extra)
    except (LimitExceeded, StateConflict) as exc:
        return await _form_error(request, form, exc, status=409, extra=extra)
    except Forbidden as exc:
        return await _form_error(request, form, exc, status=403, extra=extra)
    await flash(request, await translate(request, "Recurring conference scheduled: %(count)s occurrences planned",
                                         count=len(series["conferences"])))
    raise web.HTTPSeeOther(f"/series/{series['id']}")


@login_required
async def schedule(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    form = await request.post()
    if field(form, "repeat", "none") != "none":
        return await schedule_series(request, account, form)

    async def schedule_once() -> Answer:
        conference = await services(request).planning.plan(account.id, plan_from_form(form, account.timezone))
        return Answer(303, "", {"Location": f"/conferences/{conference.id}"})

    # The form's one-time key makes a double submit (or a resent POST) plan one conference.
    key = field(form, "idempotency_key")
    submitted = sorted((name, value) for name, value in form.items() if isinstance(value, str))
    try:
        answer = await schedule_once() if not key else await services(request).idempotency.once(
            account.id, f"portal:{key}", "portal_schedule", submitted, schedule_once)
    except ValidationError as exc:
        return await _form_error(request, form, exc)
    except IdempotencyKeyReused:
        # The page was sent before (e.g. reached again with Back) and then changed: a fresh key.
        fresh = MultiDictProxy(MultiDict((k, v) for k, v in form.items() if k != "idempotency_key"))
        refusal = StateConflict("This form was sent already; check the values and schedule again")
        return await _form_error(request, fresh, refusal, status=409)
    except (LimitExceeded, StateConflict) as exc:
        return await _form_error(request, form, exc, status=409)
    except Forbidden as exc:
        return await _form_error(request, form, exc, status=403)
    if not answer.replayed:
        started = field(form, "when", "now") == "now"
        await flash(request, await translate(request, "Conference started" if started else "Conference scheduled"))
    raise web.HTTPSeeOther(answer.headers["Location"])


@login_required
async def create_template(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    form = await request.post()
    try:
        values = plan_form_values(form, for_template=True)
        values["name"] = field(form, "template_name") or values["subject"] or await translate(request, "My template")
        values["is_default"] = checkbox(form, "template_default")
        template = await services(request).addressbook.create_template(account.id, values)
    except ValidationError as exc:
        return await _form_error(request, form, exc)
    await flash(request, await translate(request, "Template “%(name)s” created", name=template.name))
    raise web.HTTPSeeOther(f"/planning?template={template.id}")
