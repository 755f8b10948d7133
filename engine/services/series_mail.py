"""The calendar mail of a recurring series: one event with RRULE for the whole series, EXDATE
for a cancelled occurrence and RECURRENCE-ID for a changed one, queued in the same outbox as every
other conference mail (the notifier sends it)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import asyncpg

from engine.adapters.db import notifications as mail_repo
from engine.adapters.db.series import SeriesRepository
from engine.config import Settings
from engine.domain.model import Conference
from engine.domain.notifications import ConferenceFacts, MessageKind, Recipient, RecipientRole
from engine.domain.recurrence import ical_rule, validate_recurrence
from engine.domain.text import flatten
from engine.services.calls import now_utc
from engine.services.conference_records import ConferenceRecords
from engine.services.mail_messages import MailComposer


class SeriesMail:
    """Composes and queues a series' calendar messages. While a series is changed whole
    (``changing_whole``), its occurrences' own events are not mailed one by one."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, repo: SeriesRepository, records: ConferenceRecords,
                 wake_mail: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.repo = repo
        self.records = records
        self.conferences = records.repo
        self.composer = MailComposer(settings.mail_from)
        self.wake_mail = wake_mail or (lambda: None)
        self._whole: set[int] = set()

    def new_uid(self, kind: str) -> str:
        """The calendar UID of a new series or room (``kind``: series or room)."""
        return f"veche-{kind}-{secrets.token_hex(12)}@{self.composer.domain}"

    @contextlib.contextmanager
    def changing_whole(self, series_id: int) -> Iterator[None]:
        self._whole.add(series_id)
        try:
            yield
        finally:
            self._whole.discard(series_id)

    def is_changing_whole(self, series_id: int) -> bool:
        return series_id in self._whole

    async def send(self, series: dict[str, Any], kind: MessageKind, conference: Conference | None,
                   recurrence_id: datetime | None = None, whole: bool = False) -> int:
        """Queue the series' calendar message for its recipients: the participants only with the
        owner's consent (notify_participants), the owner while the own-copy switch is on."""
        if conference is None:
            ids = await self.repo.conference_ids(series["id"])
            if not ids:
                return 0
            conference = await self.conferences.get(ids[-1], with_participants=False)
        plan = series["plan"]
        owner = await self.repo.owner_mail(series["owner_id"])
        recipients: list[Recipient] = []
        seen: set[str] = set()
        if plan.get("notify_participants"):
            participants = (await self.conferences.participants(conference.id)) if recurrence_id \
                else plan["participants"]
            for p in participants:
                email = ((p.email if recurrence_id else p.get("email")) or "").strip()
                if email and email.lower() not in seen:
                    seen.add(email.lower())
                    recipients.append(Recipient(email, RecipientRole.GUEST,
                                                (p.name if recurrence_id else p.get("name")) or "",
                                                p.id if recurrence_id else None))
        if (owner.get("email") or "").strip() and owner.get("mail_own_copy", True):
            recipients.append(Recipient(owner["email"].strip(), RecipientRole.CHAIR, owner.get("name") or ""))
        if not recipients:
            return 0
        sequence = series["mail_sequence"] if kind is MessageKind.INVITATION else \
            await self.repo.next_sequence(series["id"])
        rule = validate_recurrence(series["recurrence"])
        exdates: tuple[datetime, ...] = ()
        if not whole and recurrence_id is None:
            exdates = tuple(sorted(at for at, state in (await self.repo.occurrence_starts(series["id"])).items()
                                   if state == "cancelled"))
        duration = self.records.minutes(plan["duration_minutes"])
        facts = ConferenceFacts(
            conference_id=conference.id, uid=series["mail_uid"], sequence=sequence, subject=series["subject"],
            starts_at=conference.starts_at, ends_at=conference.starts_at + duration if recurrence_id is None
            else conference.ends_at, duration_minutes=conference.duration_minutes,
            access_number=self.settings.access_number, conference_number=series["conference_number"],
            guest_pin=series["guest_pin"] if plan["guest_pin_required"] else None, chair_pin=series["chair_pin"],
            language=owner.get("language") or "ru", timezone=series["timezone"],
            owner_name=owner.get("name") or "", reminder_minutes=plan.get("reminder_minutes"),
            rrule=None if recurrence_id else ical_rule(rule, series["first_start"], series["timezone"]),
            exdates=exdates, recurrence_id=recurrence_id, series_starts_at=series["first_start"])
        queued = 0
        now = now_utc()
        async with self.pool.acquire() as conn:
            for recipient in recipients:
                try:
                    composed = self.composer.compose(facts, recipient, kind, now=now)
                    subject, message_id, raw, failed = composed.subject, composed.message_id, composed.raw, None
                except Exception as exc:  # noqa: BLE001 - stored as failed with the reason, like the notifier
                    subject, message_id, raw = flatten(series["subject"])[:200], "", b""
                    failed = flatten(f"message not built: {exc}")[:500]
                created = await mail_repo.enqueue(
                    conn, dedup_key=f"series:{series['id']}:{kind.value}:{sequence}:{recipient.role.value}:"
                                    f"{recipient.email.lower()}",
                    conference_id=conference.id, participant_id=recipient.participant_id, kind=kind.value,
                    recipient_role=recipient.role.value, recipient=recipient.email, sender=self.settings.mail_from,
                    subject=subject, message_id=message_id, message=raw, sequence=sequence, now=now,
                    failed_reason=failed)
                queued += int(created and failed is None)
        if queued:
            self.wake_mail()
        return queued

