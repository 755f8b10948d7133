"""Decides which conference e-mails are due (invitation, reminder, update, cancellation with an
.ics, the owner's PIN lock-out warning) and queues them in the Postgres outbox, so a restart
neither loses nor repeats mail; rendering is engine/services/conference_mail.py's, delivery
engine/services/mail_delivery.py's.

A series' occurrence is announced, changed and cancelled by the series' own calendar mail
(engine/services/series.py); the notifier sends it only its reminder, like any conference's.

How it stays correct across restarts: the notifier compares each conference with what its
recipients were last told (mail_calendar) and queues what is missing under a unique key, both
when a bus event arrives and in a periodic sweep; reminders are found by a query on the due time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.adapters.db.notifications import MailLedger, NotificationRepository
from engine.config import Settings
from engine.domain.dialin import PIN_LOCKOUT_EVENT
from engine.domain.notifications import (
    ConferenceFacts,
    MessageKind,
    Recipient,
    RecipientRole,
    ReminderDecision,
    reminder_decision,
)
from engine.services.bus import Bus, DomainEvent
from engine.services.conference_mail import ConferenceMail, calendar_snapshot, consented
from engine.services.mail_delivery import MailDelivery

log = logging.getLogger(__name__)

# Bus events after which a conference is compared with what its recipients were told.
RECONCILE_ON = frozenset({
    "conference.scheduled", "conference.updated", "conference.cancelled", "conference.started",
    "participant.added",
})
SWEEP_EVERY_POLLS = 6  # the full reconcile sweep runs every 6th poll (30 s with the default 5 s poll)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    """Finds the messages each conference is owed (on bus events, in the sweep, by the reminder
    query), has ``mail`` render them into the outbox and wakes ``delivery``."""

    def __init__(self, settings: Settings, repo: NotificationRepository, bus: Bus, mail: ConferenceMail,
                 delivery: MailDelivery) -> None:
        self.settings = settings
        self.repo = repo
        self.bus = bus
        self.mail = mail
        self.delivery = delivery
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping = False
        self._stop_requested.clear()
        self.bus.subscribe(self.on_event, kinds=RECONCILE_ON | {PIN_LOCKOUT_EVENT})
        self._task = asyncio.create_task(self._scan_loop(), name="notifier-scan")

    async def stop(self) -> None:
        self.bus.unsubscribe(self.on_event)
        self._stopping = True
        self._stop_requested.set()
        task, self._task = self._task, None
        if task is None:
            return
        _done, pending = await asyncio.wait([task], timeout=self.settings.smtp_timeout + 5)
        for hung in pending:
            hung.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hung

    async def on_event(self, event: DomainEvent) -> None:
        """A PIN lock-out is told to the owner; the other kinds it hears (RECONCILE_ON) may change
        what the recipients should have been told."""
        if event.kind == PIN_LOCKOUT_EVENT:
            await self.queue_pin_lockout(event)
            return
        await self.reconcile(event.conference_id, allow_running=True)

    async def reconcile(self, conference_id: int, *, allow_running: bool = False,
                        now: datetime | None = None) -> int:
        """Queue whatever this conference's recipients have not been told yet; return how many
        messages were queued now."""
        now = now or _utc_now()
        async with self.repo.conference(conference_id) as ledger:
            queued = await self._reconcile_locked(ledger, conference_id, allow_running, now)
        if queued:
            self.delivery.wake()
        return queued

    async def _reconcile_locked(self, ledger: MailLedger, conference_id: int, allow_running: bool,
                                now: datetime) -> int:
        conference = await ledger.conference_with_owner(conference_id)
        if conference is None:
            return 0
        if conference["series_id"] is not None:
            return 0  # invitations, updates, cancellations of a series are its one RRULE event's (series.py)
        state = conference["state"]
        calendar = await ledger.calendar(conference_id)
        snapshot = calendar_snapshot(conference)
        recipients = self.mail.recipients(conference, await ledger.participants(conference_id))
        queued = 0
        if calendar is None:
            if state != "scheduled" and not (allow_running and state == "running"):
                return 0  # never announced and not upcoming: nothing to tell
            calendar = await ledger.create_calendar(conference_id, self.mail.uid(conference), snapshot)
            for recipient in recipients:
                queued += await self.mail.queue(ledger, conference, calendar, recipient, MessageKind.INVITATION,
                                                f"invitation:{calendar['sequence']}", now)
            return queued
        told = {(row["email"], row["recipient_role"]): row
                for row in await ledger.calendar_recipients(conference_id)}
        if state == "cancelled":
            if calendar["cancelled"]:
                return 0
            calendar = await ledger.advance_calendar(conference_id, snapshot, cancelled=True)
            for (email, role), row in told.items():
                if row["kind"] == MessageKind.CANCELLATION or not consented(conference, role):
                    continue
                name = self.mail.name_of(conference, recipients, email, role)
                recipient = Recipient(email, RecipientRole(role), name, row["participant_id"])
                queued += await self.mail.queue(ledger, conference, calendar, recipient, MessageKind.CANCELLATION,
                                                f"cancellation:{calendar['sequence']}", now)
            return queued
        if state not in ("scheduled", "running"):
            return 0
        current = {(r.email.lower(), r.role.value) for r in recipients}
        if state == "scheduled" and any(calendar[key] != value for key, value in snapshot.items()):
            guests_affected = any(calendar[key] != snapshot[key] for key in snapshot if key != "chair_pin")
            calendar = await ledger.advance_calendar(conference_id, snapshot)
            for recipient in recipients:
                row = told.get((recipient.email.lower(), recipient.role.value))
                if row is None or row["kind"] == MessageKind.CANCELLATION:
                    continue  # not holding the event: gets an invitation below
                if recipient.role is RecipientRole.GUEST and not guests_affected:
                    continue
                queued += await self.mail.queue(ledger, conference, calendar, recipient, MessageKind.UPDATE,
                                                f"update:{calendar['sequence']}", now)
        for recipient in recipients:  # added since the last message, or re-added after removal
            row = told.get((recipient.email.lower(), recipient.role.value))
            if row is None or row["kind"] == MessageKind.CANCELLATION:
                after = row["id"] if row else 0
                queued += await self.mail.queue(ledger, conference, calendar, recipient, MessageKind.INVITATION,
                                                f"invitation:{calendar['sequence']}:after{after}", now)
        for (email, role), row in told.items():  # removed from the conference: take the event back
            if (email, role) in current or row["kind"] == MessageKind.CANCELLATION \
                    or not consented(conference, role):
                continue
            recipient = Recipient(email, RecipientRole(role), "", row["participant_id"])
            queued += await self.mail.queue(ledger, conference, calendar, recipient, MessageKind.CANCELLATION,
                                            f"cancellation:{calendar['sequence']}:after{row['id']}", now)
        return queued

    async def process_reminders(self, now: datetime | None = None) -> int:
        """Queue the reminders that are due; skip (and log) those the engine missed by more than
        the late window. Driven by the database, so a restart picks up where it left."""
        now = now or _utc_now()
        window = timedelta(seconds=self.settings.reminder_late_window_seconds)
        queued = 0
        due = await self.repo.reminders_due(now)
        for conference_id in due:
            try:
                queued += await self._remind(conference_id, now, window)
            except Exception:  # noqa: BLE001 - one broken conference must not delay the others' reminders
                log.exception("reminders of conference %s failed; the other conferences go on", conference_id)
        if queued:
            self.delivery.wake()
        return queued

    async def _remind(self, conference_id: int, now: datetime, window: timedelta) -> int:
        async with self.repo.conference(conference_id) as ledger:
            queued = await self._reconcile_locked(ledger, conference_id, False, now)
            conference = await ledger.conference_with_owner(conference_id)
            if conference is None or conference["state"] != "scheduled" or conference["reminder_minutes"] is None:
                return queued
            if conference["series_id"] is None:
                calendar = await ledger.calendar(conference_id)
                facts = None
            else:
                calendar, facts = await self._occurrence_calendar(ledger, conference)
            if calendar is None or calendar["reminder_for"] == conference["starts_at"]:
                return queued
            decision = reminder_decision(conference["starts_at"], conference["reminder_minutes"], now, window)
            if decision is ReminderDecision.NOT_YET:
                return queued
            if decision is ReminderDecision.SKIP:
                log.warning("reminder for conference %s (start %s, lead %s min) skipped: %s is too late",
                            conference_id, conference["starts_at"].isoformat(), conference["reminder_minutes"],
                            now.isoformat())
                await ledger.mark_reminder(conference_id, conference["starts_at"], "skipped")
                return queued
            participants = await ledger.participants(conference_id)
            stamp = int(conference["starts_at"].timestamp())
            minutes_left = max(1, round((conference["starts_at"] - now).total_seconds() / 60))
            for recipient in self.mail.recipients(conference, participants):
                queued += await self.mail.queue(ledger, conference, calendar, recipient, MessageKind.REMINDER,
                                                f"reminder:{stamp}", now, minutes_left=minutes_left, facts=facts)
            await ledger.mark_reminder(conference_id, conference["starts_at"], "queued")
        return queued

    async def _occurrence_calendar(self, ledger: MailLedger, conference: dict[str, Any]
                                   ) -> tuple[dict[str, Any] | None, ConferenceFacts | None]:
        """A series occurrence's reminder row and what its reminder says: the series' UID and
        SEQUENCE with the occurrence's RECURRENCE-ID, so a calendar client files it under the
        series rather than as an event of its own. (None, None) for a permanent room's session."""
        series = await ledger.series_calendar(conference["series_id"])
        occurrence_at = conference["occurrence_at"]
        if series is None or occurrence_at is None:
            return None, None
        calendar = await ledger.occurrence_calendar(conference["id"], self.mail.occurrence_uid(conference, series),
                                                    calendar_snapshot(conference), series["mail_sequence"])
        return calendar, self.mail.occurrence_facts(conference, calendar, series)

    async def sweep(self, now: datetime | None = None) -> int:
        """Reconcile every upcoming or freshly cancelled conference (catches missed bus events);
        a conference that fails is logged and skipped, the sweep goes on with the next one."""
        conference_ids = await self.repo.conferences_to_reconcile()
        queued = 0
        for conference_id in conference_ids:
            try:
                queued += await self.reconcile(conference_id, now=now)
            except Exception:  # noqa: BLE001 - one broken conference must not stop the sweep
                log.exception("reconciling the mail of conference %s failed; the sweep goes on", conference_id)
        return queued

    async def queue_pin_lockout(self, event: DomainEvent) -> int:
        """Queue the owner's e-mail about a PIN lock-out of the conference: once per lock-out
        (keyed by its start), through the outbox like every other message."""
        now = _utc_now()
        try:
            until = datetime.fromisoformat(event.data["until"])
            started_at = datetime.fromisoformat(event.data["started_at"])
            failures = int(event.data["failures"])
        except (KeyError, TypeError, ValueError):
            log.exception("malformed %s event of conference %s", event.kind, event.conference_id)
            return 0
        async with self.repo.reading() as ledger:
            conference = await ledger.conference_with_owner(event.conference_id)
            if conference is None:
                return 0
            created = await self.mail.queue_pin_lockout(ledger, conference, failures=failures,
                                                        started_at=started_at, until=until, now=now)
        if created:
            self.delivery.wake()
        return created

    async def _scan_loop(self) -> None:
        polls = 0
        while not self._stopping:
            try:
                if polls % SWEEP_EVERY_POLLS == 0:
                    await self.sweep()
                await self.process_reminders()
            except Exception:  # noqa: BLE001 - a failing scan is retried on the next poll
                log.exception("notifier scan failed")
            polls += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), self.settings.mail_poll_interval)
