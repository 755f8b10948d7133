"""Conference history: a period (from/to or a quick range), the list, a conference's details
(participants' join/leave times, durations, invite outcomes, event log) and CSV export."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from engine.domain.eventlog import actor_words, describe
from engine.domain.model import Conference
from web.auth import current_account, login_required
from web.context import services
from web.i18n import local_time, translations
from web.views import pictures
from web.views.common import N_, flash, path_id, render

QUICK_RANGES = ("today", "yesterday", "7d", "30d", "month")
MAX_PERIOD_DAYS = 366


def period(query: dict, timezone: str) -> tuple[date, date, str]:
    """(first day, last day, chosen quick range or '') in the account's time zone."""
    today = datetime.now(ZoneInfo(timezone)).date()
    chosen = query.get("range", "")
    if chosen in QUICK_RANGES:
        first, last = {
            "today": (today, today),
            "yesterday": (today - timedelta(days=1), today - timedelta(days=1)),
            "7d": (today - timedelta(days=6), today),
            "30d": (today - timedelta(days=29), today),
            "month": (today.replace(day=1), today),
        }[chosen]
        return first, last, chosen
    try:
        first = date.fromisoformat(query.get("from", ""))
    except ValueError:
        first = today - timedelta(days=6)
    try:
        last = date.fromisoformat(query.get("to", ""))
    except ValueError:
        last = today
    if last < first:
        first, last = last, first
    if (last - first).days > MAX_PERIOD_DAYS:  # the page says so (clipped_notice)
        last = first + timedelta(days=MAX_PERIOD_DAYS)
    return first, last, "" if "from" in query or "to" in query else "7d"


async def _history(request: web.Request) -> tuple[list[Conference], date, date, str]:
    account = await current_account(request)
    first, last, chosen = period(dict(request.query), account.timezone)
    zone = ZoneInfo(account.timezone)
    since = datetime.combine(first, time.min, tzinfo=zone)
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)
    items = await services(request).planning.history(account.id, since, until)
    items.sort(key=lambda c: c.started_at or c.starts_at, reverse=True)
    return items, first, last, chosen


def clipped(query: dict, first: date, last: date) -> tuple[str, str] | None:
    """The period asked for, when it was longer than MAX_PERIOD_DAYS and only [first, last] is shown."""
    try:
        asked = sorted((date.fromisoformat(query.get("from", "")), date.fromisoformat(query.get("to", ""))))
    except ValueError:
        return None
    if (asked[0], asked[1]) == (first, last):
        return None
    return asked[0].isoformat(), asked[1].isoformat()


@login_required
async def history(request: web.Request) -> web.StreamResponse:
    items, first, last, chosen = await _history(request)
    account = await current_account(request)
    return await render(request, "history.html", {
        "clipped": clipped(dict(request.query), first, last), "max_days": MAX_PERIOD_DAYS,
        "conferences": items, "first": first.isoformat(), "last": last.isoformat(), "chosen": chosen,
        "quick_ranges": QUICK_RANGES, "recordings": await _recordings(request, account.id, items)})


async def _recordings(request: web.Request, owner_id: int, items: list[Conference]) -> dict[int, list[dict]]:
    """The owner's recordings of ``items``, by conference."""
    by_conference: dict[int, list[dict]] = {}
    for row in await services(request).recording.list_for(owner_id, [c.id for c in items]):
        by_conference.setdefault(row["conference_id"], []).append(row)
    return by_conference


@login_required
async def history_detail(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    planning = services(request).planning
    conference = await planning.get(account.id, path_id(request))
    events = await planning.events(account.id, conference.id)
    recordings = (await _recordings(request, account.id, [conference])).get(conference.id, [])
    timeline = await pictures.timeline_picture(request, services(request).pictures, account, conference.id)
    return await render(request, "history_detail.html", {
        "conference": conference, "events": events, "recordings": recordings, "timeline": timeline,
        "log": await event_sentences(request, conference, events),
        "retention_days": services(request).settings.recording_retention_days})


async def event_sentences(request: web.Request, conference: Conference, events: list[dict]) -> list[dict]:
    """The event log in the visitor's language: when, what happened in words, who did it, and the
    recorded kind and detail for whoever wants them."""
    catalogue = await translations(request)
    people = {p.id: p for p in conference.participants}
    lines = []
    for event in events:
        sentence = describe(event["kind"], event["detail"], people.get(event["participant_id"]))
        values = {k: catalogue.gettext(v) if k == "reason" else v for k, v in sentence.values.items()}
        text = catalogue.gettext(sentence.message_id)
        lines.append({
            "at": event["at"], "text": text % values if values else text,
            "cause": catalogue.gettext(sentence.cause) if sentence.cause else None,
            "by": catalogue.gettext(actor_words(event["actor"], conference.owner_id)),
            "raw": " ".join([event["kind"], *(f"{k}={v}" for k, v in (event["detail"] or {}).items())])})
    return lines


@login_required
async def recording_file(request: web.Request) -> web.StreamResponse:
    """The owner's recording (range requests let the browser's player seek)."""
    account = await current_account(request)
    row, path = await services(request).recording.file(account.id, path_id(request))
    disposition = "attachment" if request.query.get("download") else "inline"
    return web.FileResponse(path, headers={
        "Content-Type": "audio/ogg",
        "Content-Disposition": f'{disposition}; filename="conference-{row["conference_id"]}-{row["id"]}.ogg"'})


@login_required
async def recording_delete(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    recordings = services(request).recording
    row = await recordings.repo.get(path_id(request), account.id)
    await recordings.delete(account.id, path_id(request))
    await flash(request, N_("Recording deleted"))
    raise web.HTTPSeeOther(f"/history/{row['conference_id']}" if row else "/history")


def _cell(value: datetime | None, timezone: str) -> str:
    local = local_time(value, timezone)
    return local.strftime("%Y-%m-%d %H:%M:%S") if local else ""


@login_required
async def history_csv(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    items, first, last, _ = await _history(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["conference_id", "subject", "conference_number", "state", "started_at", "ended_at",
                     "participant_name", "participant_number", "participant_state", "failure_reason",
                     "attempts", "joined_at", "left_at", "connected_seconds"])
    for conference in items:
        rows = conference.participants or [None]
        for participant in rows:
            base = [conference.id, _safe(conference.subject), conference.conference_number, str(conference.state),
                    _cell(conference.started_at or conference.starts_at, account.timezone),
                    _cell(conference.ended_at, account.timezone)]
            if participant is None:
                writer.writerow(base + [""] * 8)
                continue
            writer.writerow(base + [
                _safe(participant.name), participant.number, str(participant.state),
                str(participant.failure_reason or ""), participant.attempts,
                _cell(participant.joined_at, account.timezone), _cell(participant.left_at, account.timezone),
                participant.connected_seconds])
    filename = f"veche-history-{first.isoformat()}-{last.isoformat()}.csv"
    return web.Response(body=("\ufeff" + buffer.getvalue()).encode(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _safe(text: str) -> str:
    """Neutralises spreadsheet formulas in user-supplied text (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
