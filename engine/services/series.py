"""Recurring series: one plan, one conference number and one pair of PINs shared by many
ordinary conference rows (its occurrences, materialised by series_occurrences.py), so the
scheduler, the limits, dial-in and History handle each of them unchanged. A series is planned,
read, changed and cancelled whole here; its mail is one calendar event (series_mail.py)."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Any

import asyncpg

from engine.adapters.db.series import SeriesRepository
from engine.config import Settings
from engine.domain.errors import NotFound, StateConflict, ValidationError
from engine.domain.model import Conference, ConferencePlan, ParticipantPlan
from engine.domain.notifications import MessageKind
from engine.domain.pins import generate_conference_number, generate_pins
from engine.domain.planning import changed_plan
from engine.domain.recurrence import occurrence_starts, validate_recurrence
from engine.services.conference_limits import PlanChecks
from engine.services.conference_planning import ConferencePlanning
from engine.services.conference_records import ConferenceRecords, actor_of
from engine.services.series_mail import SeriesMail
from engine.services.series_occurrences import SeriesOccurrences

SERIES_FIELDS = frozenset({"subject", "duration_minutes", "max_participants", "auto_invite", "auto_extend_minutes",
                           "guest_pin_required", "reminder_minutes", "participants", "language",
                           "notify_participants", "recording"})


def plan_json(plan: ConferencePlan, language: str) -> dict[str, Any]:
    """The plan as a series or room stores it for its conferences: no start, the voice language fixed."""
    data = asdict(plan)
    data.pop("start")
    data["language"] = language
    data["participants"] = [{"number": p.number, "name": p.name, "email": p.email, "role": str(p.role)}
                            for p in plan.participants]
    return data


class SeriesPlanning:
    """Plans, reads, changes and cancels recurring series; reads permanent rooms too."""

    def __init__(self, settings: Settings, repo: SeriesRepository, records: ConferenceRecords, checks: PlanChecks,
                 *, planning: ConferencePlanning, occurrences: SeriesOccurrences, mail: SeriesMail) -> None:
        self.settings = settings
        self.repo = repo
        self.conferences = records.repo
        self.checks = checks
        self.planning = planning
        self.occurrences = occurrences
        self.mail = mail

    async def get(self, owner_id: int | None, series_id: int) -> dict[str, Any]:
        """The series with its conferences (earliest first); NotFound when not the owner's."""
        series = await self.repo.get(series_id, owner_id)
        if series is None:
            raise NotFound("no such series")
        series["conferences"] = [await self.conferences.get(cid, with_participants=False)
                                 for cid in await self.repo.conference_ids(series_id)]
        return series

    async def list(self, owner_id: int | None, kind: str | None = None) -> list[dict[str, Any]]:
        return await self.repo.list(owner_id, kind)

    # ----------------------------------------------------------------- planning

    async def plan_series(self, owner_id: int, plan: ConferencePlan, recurrence: Any) -> dict[str, Any]:
        """Validate and store a recurring series and its first occurrences; all of them share one
        conference number and PINs. Every occurrence is checked against the account's limit of
        concurrent conferences; when one is refused, nothing of the series is kept."""
        rules = await self.checks.rules(owner_id)
        checked = await self.checks.checked_plan(owner_id, plan, rules)
        if checked.start is None:
            raise ValidationError("a recurring conference needs a first start time", "start")
        self.checks.refuse_past_start(checked.start)
        rule = validate_recurrence(recurrence, checked.start)
        starts = occurrence_starts(rule, checked.start, checked.timezone)
        if not starts:
            raise ValidationError("the repeat rule gives no occurrence", "recurrence")
        language = checked.language or rules.language
        series = None
        for _ in range(20):
            chair_pin, guest_pin = generate_pins(self.settings.pin_length)
            try:
                series = await self.repo.insert({
                    "owner_id": owner_id, "kind": "recurring", "subject": checked.subject,
                    "plan": plan_json(checked, language), "recurrence": rule.as_dict(), "first_start": starts[0],
                    "timezone": checked.timezone,
                    "conference_number": generate_conference_number(self.settings.conference_number_length),
                    "chair_pin": chair_pin, "guest_pin": guest_pin,
                    "mail_uid": self.mail.new_uid("series")})
                break
            except asyncpg.UniqueViolationError:
                continue  # the random conference number is in use: draw another
        if series is None:
            raise ValidationError("no free conference number; try again later", "subject")
        try:
            created = await self.occurrences.materialise(series["id"], actor=actor_of(owner_id))
        except BaseException:
            await self.repo.delete(series["id"])  # its occurrences go with it
            raise
        if created:
            await self.mail.send(series, MessageKind.INVITATION, created[0])
        return await self.get(owner_id, series["id"])

    # ----------------------------------------------------------------- the whole series

    async def update_series(self, owner_id: int | None, series_id: int, changes: dict) -> dict[str, Any]:
        """Change every upcoming occurrence that was not changed on its own, and the plan of
        the occurrences still to come. The start and the repeat rule stay (a series that should
        move is cancelled and planned anew)."""
        series = await self.repo.get(series_id, owner_id)
        if series is None or series["kind"] != "recurring":
            raise NotFound("no such series")
        if series["state"] != "active":
            raise StateConflict("the series is cancelled")
        unknown = set(changes) - SERIES_FIELDS
        if unknown:
            field = sorted(unknown)[0]
            raise ValidationError("%(name)s cannot be changed for the whole series", field, name=field)
        scheduled = await self.repo.conference_ids(series_id, ("scheduled",))
        plan = dict(series["plan"])
        rules = await self.checks.rules(series["owner_id"])
        current = ConferencePlan(**{**plan, "start": series["first_start"],
                                    "participants": tuple(ParticipantPlan(**p) for p in plan["participants"])})
        proposed = changed_plan(current, changes)
        checked = await self.checks.checked_plan(series["owner_id"], proposed, rules)
        anchor: Conference | None = None
        with self.mail.changing_whole(series_id):
            for conference_id in scheduled:
                conference = await self.conferences.get(conference_id, with_participants=False)
                if conference is None or conference.occurrence_changed:
                    continue
                anchor = await self.planning.update(owner_id, conference_id, changes)
        series = await self.repo.update(series_id, subject=checked.subject,
                                        plan=plan_json(checked, checked.language or plan["language"]))
        await self.mail.send(series, MessageKind.UPDATE, anchor)
        return await self.get(owner_id, series_id)

    async def cancel_series(self, owner_id: int | None, series_id: int) -> dict[str, Any]:
        """Cancel every upcoming occurrence and the series; the calendar event is cancelled whole."""
        series = await self.repo.get(series_id, owner_id)
        if series is None or series["kind"] != "recurring":
            raise NotFound("no such series")
        if series["state"] != "active":
            raise StateConflict("the series is cancelled")
        series = await self.repo.update(series_id, state="cancelled")
        last: Conference | None = None
        with self.mail.changing_whole(series_id):
            for conference_id in await self.repo.conference_ids(series_id, ("scheduled",)):
                with contextlib.suppress(StateConflict):  # started meanwhile: it runs to its end
                    last = await self.planning.cancel(owner_id, conference_id)
        await self.mail.send(series, MessageKind.CANCELLATION, last, whole=True)
        return await self.get(owner_id, series_id)

    async def reissue_pins(self, owner_id: int | None, series_id: int) -> dict[str, Any]:
        """New chair and guest PINs for the series and every upcoming occurrence (after a PIN
        leaked); the conference number stays, the calendar is re-sent. A running occurrence
        keeps the PINs it started with (its callers are in the room already)."""
        series = await self.repo.get(series_id, owner_id)
        if series is None:
            raise NotFound("no such series")
        if series["state"] != "active":
            raise StateConflict("the series is cancelled")
        chair_pin, guest_pin = generate_pins(self.settings.pin_length)
        series = await self.repo.update(series_id, chair_pin=chair_pin, guest_pin=guest_pin)
        for conference_id in await self.repo.conference_ids(series_id, ("scheduled",)):
            await self.conferences.update(conference_id, chair_pin=chair_pin, guest_pin=guest_pin)
            await self.conferences.log_event(conference_id, "conference.pins_reissued", actor=actor_of(owner_id))
        if series["kind"] == "recurring":
            await self.mail.send(series, MessageKind.UPDATE, None)
        return await self.get(owner_id, series_id)

