"""Conferences (upcoming and running), the conference card, editing and cancelling a scheduled
conference, and the chair's live console with its actions and the network status report."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from engine.domain.errors import (
    Forbidden,
    LimitExceeded,
    NotFound,
    StateConflict,
    ValidationError,
    VecheError,
    VersionConflict,
)
from engine.domain.model import (
    Conference,
    ConferenceState,
    Origin,
    Participant,
    ParticipantPlan,
    ParticipantState,
    Role,
)
from engine.domain.notifications import delivery_problem
from engine.domain.planning import EXTEND_STEPS
from web.api import render as shapes
from web.auth import current_account, login_required
from web.context import services
from web.i18n import local_time, translate
from web.views import pictures
from web.views.common import (
    N_,
    checkbox,
    error_text,
    field,
    flash,
    path_id,
    render,
    translate_later,
    wants_json,
)
from web.views.planning import _form_error, form_context, plan_from_form

log = logging.getLogger(__name__)


def display_state(participant: Participant) -> str:
    """What the console shows: connected splits into talking / muted (web/static/console.js
    derives the same from the participant's state, muted and talking)."""
    if participant.state == ParticipantState.CONNECTED:
        if participant.muted:
            return "muted"
        if participant.talking:
            return "talking"
    return str(participant.state)


async def _pin_lockout(request: web.Request, conference_id: int) -> dict[str, Any] | None:
    """The running PIN lock-out of the conference (None when there is none)."""
    return await services(request).pin_guard.pin_lockout(conference_id)


async def _conference(request: web.Request) -> Conference:
    account = await current_account(request)
    return await services(request).planning.get(account.id, path_id(request))


@login_required
async def conferences(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    items = await services(request).planning.list(
        account.id, {ConferenceState.RUNNING, ConferenceState.SCHEDULED})
    running = sorted((c for c in items if c.state == ConferenceState.RUNNING), key=lambda c: c.starts_at)
    upcoming = sorted((c for c in items if c.state == ConferenceState.SCHEDULED), key=lambda c: c.starts_at)
    return await render(request, "conferences.html", {"running": running, "upcoming": upcoming})


@login_required
async def card(request: web.Request) -> web.StreamResponse:
    conference = await _conference(request)
    account = await current_account(request)
    deliveries: list[dict] = []
    try:
        deliveries = [{**d, "problem": delivery_problem(d.get("last_error"))}
                      for d in await services(request).mail_delivery.delivery_status(account.id, conference.id)]
    except VecheError:
        log.warning("delivery status of conference %s unavailable", conference.id, exc_info=True)
    return await render(request, "conference.html", {"conference": conference, "deliveries": deliveries,
                                                     "pin_lockout": await _pin_lockout(request, conference.id)})


@login_required
async def edit(request: web.Request) -> web.StreamResponse:
    conference = await _conference(request)
    if conference.state != ConferenceState.SCHEDULED:
        raise web.HTTPSeeOther(f"/conferences/{conference.id}")
    account = await current_account(request)
    start = local_time(conference.starts_at, account.timezone)
    values = {"subject": conference.subject, "duration_minutes": conference.duration_minutes,
              "max_participants": conference.max_participants, "auto_invite": conference.auto_invite,
              "auto_extend_minutes": conference.auto_extend_minutes,
              "guest_pin_required": conference.guest_pin_required, "reminder_minutes": conference.reminder_minutes,
              "language": conference.language,
              "notify_participants": conference.notify_participants,
              "recording": conference.recording,
              "participants": [{"number": p.number, "name": p.name, "email": p.email, "role": str(p.role)}
                               for p in conference.participants],
              "when": "later", "date": start.strftime("%Y-%m-%d"), "time": start.strftime("%H:%M")}
    context = await form_context(request, values)
    return await render(request, "conference_edit.html",
                        {"conference": conference, "version": conference.version, **context})


def _form_version(form: Any) -> int | None:
    """The conference version the edit form was opened with (its hidden field)."""
    raw = field(form, "version")
    return int(raw) if raw.isdigit() and len(raw) <= 9 else None


async def _other_change(request: web.Request, current: Conference, plan: Any, timezone: str) -> list[dict]:
    """The fields where the conference as saved by someone else differs from what this editor
    submitted: label, the saved value, the submitted value."""
    def numbers(participants: Any) -> str:
        return ", ".join(p.number for p in participants) or "—"

    def moment(value: Any) -> str:
        return local_time(value, timezone).strftime("%Y-%m-%d %H:%M") if value else "—"

    planned = [p for p in current.participants if p.origin == Origin.DIALOUT]
    pairs = [(N_("Subject"), current.subject, plan.subject),
             (N_("Start"), moment(current.starts_at), moment(plan.start)),
             (N_("Duration"), str(current.duration_minutes), str(plan.duration_minutes)),
             (N_("Number of participants"), str(current.max_participants), str(plan.max_participants)),
             (N_("Participants"), numbers(planned), numbers(plan.participants))]
    return [{"label": await translate_later(request, label), "saved": saved, "mine": mine}
            for label, saved, mine in pairs if saved != mine]


@login_required
async def edit_submit(request: web.Request) -> web.StreamResponse:
    conference = await _conference(request)
    account = await current_account(request)
    form = await request.post()
    try:
        plan = plan_from_form(form, account.timezone)
        changes = {"subject": plan.subject, "start": plan.start, "duration_minutes": plan.duration_minutes,
                   "max_participants": plan.max_participants, "auto_invite": plan.auto_invite,
                   "auto_extend_minutes": plan.auto_extend_minutes, "guest_pin_required": plan.guest_pin_required,
                   "reminder_minutes": plan.reminder_minutes, "participants": plan.participants,
                   "language": plan.language, "notify_participants": plan.notify_participants,
                   "recording": plan.recording}
        await services(request).planning.update(account.id, conference.id, changes,
                                                expected_version=_form_version(form))
    except VersionConflict as exc:
        current = exc.current if isinstance(exc.current, Conference) else conference
        response = await _form_error(
            request, form, exc, status=409, template="conference_edit.html",
            extra={"conference": current, "version": current.version,
                   "conflict": await _other_change(request, current, plan, account.timezone)})
        return response
    except (ValidationError, StateConflict, LimitExceeded, Forbidden) as exc:
        return await _form_error(request, form, exc, template="conference_edit.html",
                                 extra={"conference": conference, "version": _form_version(form) or ""})
    await flash(request, await translate(request, "Conference updated"))
    raise web.HTTPSeeOther(f"/conferences/{conference.id}")


@login_required
async def cancel(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    conference_id = path_id(request)
    try:
        await services(request).planning.cancel(account.id, conference_id)
    except StateConflict as exc:
        await flash(request, await error_text(request, exc), "error")
        raise web.HTTPSeeOther(f"/conferences/{conference_id}") from None
    await flash(request, await translate(request, "Conference cancelled"))
    raise web.HTTPSeeOther("/conferences")


@login_required
async def console(request: web.Request) -> web.StreamResponse:
    conference = await _conference(request)
    return await render(request, "console.html", {
        "conference": conference, "extend_steps": EXTEND_STEPS, "display_state": display_state,
        "pin_lockout": await _pin_lockout(request, conference.id),
        "warning_seconds": int(services(request).settings.warning_seconds)})


@login_required
async def console_state(request: web.Request) -> web.StreamResponse:
    """The console's current state as JSON: fetched when the event stream (re)connects and when
    it reports a change, so a reconnecting console always shows the present."""
    conference = await _conference(request)
    body = shapes.conference(conference, services(request).settings.access_number)
    body["pin_lockout"] = shapes.pin_lockout(await _pin_lockout(request, conference.id))
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _action_done(request: web.Request, conference_id: int, message: str,
                       error: VecheError | None = None, target: str | None = None,
                       values: dict[str, Any] | None = None) -> web.StreamResponse:
    text = await error_text(request, error) if error else (await translate(request, message)).format(**(values or {}))
    if wants_json(request):
        if error is not None:
            status = 404 if isinstance(error, NotFound) else 409 if isinstance(
                error, StateConflict | LimitExceeded) else 400
            return web.json_response({"error": {"code": error.code, "message": text}}, status=status)
        return web.json_response({"ok": True, "message": text, "redirect": target})
    await flash(request, text, "error" if error else "ok")
    raise web.HTTPSeeOther(target or f"/conferences/{conference_id}/console")


async def _run_action(request: web.Request, message: str, call: Any, target: str | None = None,
                      values: dict[str, Any] | None = None) -> web.StreamResponse:
    """Runs the action and answers with its message; ``values`` fill the message's {placeholders}."""
    conference_id = path_id(request)
    try:
        await call
    except NotFound:
        raise
    except (ValidationError, StateConflict, LimitExceeded) as exc:
        return await _action_done(request, conference_id, message, exc)
    return await _action_done(request, conference_id, message, target=target, values=values)


@login_required
async def add_participant(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    form = await request.post()
    role = field(form, "role") or "guest"
    if role not in ("chair", "guest"):
        return await _action_done(request, path_id(request), "", ValidationError("Choose chair or guest", "role"))
    participant = ParticipantPlan(field(form, "number"), field(form, "name"), field(form, "email") or None,
                                  Role(role))
    invite = checkbox(form, "invite")
    return await _run_action(request, N_("Participant added"), services(request).live.add_participant(
        account.id, path_id(request), participant, invite=invite))


@login_required
async def invite(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    form = await request.post()
    ids = []
    for value in form.getall("participant", []):
        try:
            ids.append(int(value))
        except ValueError:
            continue
    if not ids:
        return await _action_done(request, path_id(request), "",
                                  ValidationError("Tick the participants to invite", "participant"))
    return await _run_action(request, N_("Invitations sent"), services(request).live.invite(
        account.id, path_id(request), ids))


PARTICIPANT_ACTIONS = {
    "mute": (N_("Participant muted"), lambda s, a, c, p: s.mute(a, c, p, True)),
    "unmute": (N_("Participant unmuted"), lambda s, a, c, p: s.mute(a, c, p, False)),
    "kick": (N_("Participant disconnected"), lambda s, a, c, p: s.kick(a, c, p)),
    "redial": (N_("Calling the participant again"), lambda s, a, c, p: s.invite(a, c, [p])),
    "hangup": (N_("Call cancelled"), lambda s, a, c, p: s.kick(a, c, p)),
    "chair": (N_("The participant is now a chair"), lambda s, a, c, p: s.set_role(a, c, p, Role.CHAIR)),
    "guest": (N_("The participant is now a guest"), lambda s, a, c, p: s.set_role(a, c, p, Role.GUEST)),
}


@login_required
async def participant_action(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    action = request.match_info["action"]
    if action not in PARTICIPANT_ACTIONS:
        raise web.HTTPNotFound()
    message, call = PARTICIPANT_ACTIONS[action]
    return await _run_action(request, message, call(
        services(request).live, account.id, path_id(request), path_id(request, "pid")))


@login_required
async def conference_action(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    action = request.match_info["action"]
    planning, live = services(request).planning, services(request).live
    conference_id = path_id(request)
    if action == "start":
        return await _run_action(request, N_("Conference started"),
                                 planning.start_now(account.id, conference_id),
                                 target=f"/conferences/{conference_id}/console")
    if action == "lock":
        return await _run_action(request, N_("Conference locked"),
                                 live.lock(account.id, conference_id, True))
    if action == "unlock":
        return await _run_action(request, N_("Conference unlocked"),
                                 live.lock(account.id, conference_id, False))
    if action == "extend":
        form = await request.post()
        try:
            minutes = int(field(form, "minutes"))
        except ValueError:
            minutes = 0
        if minutes not in EXTEND_STEPS:
            return await _action_done(request, conference_id, "",
                                      ValidationError("Extend by 15, 30, 45 or 60 minutes", "minutes"))
        # The same words as the console's notice of the conference.extended event, so the chair
        # reads one message whichever of the two arrives last.
        return await _run_action(request, N_("The conference was extended by {minutes} min"),
                                 live.extend(account.id, conference_id, minutes),
                                 values={"minutes": minutes})
    if action == "end":
        form = await request.post()
        if not checkbox(form, "confirm") and not wants_json(request):
            return await _action_done(request, conference_id, "",
                                      ValidationError("Confirm that the conference should end", "confirm"))
        return await _run_action(request, N_("Conference ended"), live.end(account.id, conference_id),
                                 target=f"/history/{conference_id}")
    raise web.HTTPNotFound()


@login_required
async def quality(request: web.Request) -> web.StreamResponse:
    conference = await _conference(request)
    account = await current_account(request)
    rows = await services(request).quality.report(account.id, conference.id)
    jitter, loss = await pictures.network_pictures(request, services(request).pictures, account, conference.id)
    partial = request.query.get("partial") == "1"
    return await render(request, "quality_partial.html" if partial else "quality.html",
                        {"conference": conference, "rows": rows, "jitter_chart": jitter, "loss_chart": loss})
