"""Tells participants about their conferences by e-mail (invitation, reminder, update,
cancellation with an .ics), through a Postgres outbox so a restart neither loses nor repeats mail.

A series' occurrence is announced, changed and cancelled by the series' own calendar mail
(engine/services/series.py); the notifier sends it only its reminder, like any conference's.

How it stays correct across restarts: the notifier compares each conference with what its
recipients were last told (mail_calendar) and queues what is missing under a unique key, both
when a bus event arrives and in a periodic sweep; reminders are found by a query on the due time;
the delivery worker claims rows with FOR UPDATE SKIP LOCKED and a lease and marks a row sent only
after the SMTP server accepted the message."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg

from engine.adapters.db import notifications as repo
from engine.adapters.mail import SendResult, SmtpMailer
from engine.adapters.sms import SmsGateway
from engine.config import Settings
from engine.domain.dialin import PIN_LOCKOUT_EVENT
from engine.domain.errors import NotFound
from engine.domain.notifications import (
    ConferenceFacts,
    DeliveryStatus,
    MessageKind,
    Recipient,
    RecipientRole,
    ReminderDecision,
    SmtpOutcome,
    reminder_decision,
    retry_delay,
)
from engine.domain.text import flatten
from engine.services.bus import Bus, DomainEvent
from engine.services.mail_messages import MailComposer, MessageNotBuilt, PinLockoutFacts, compose_pin_lockout

log = logging.getLogger(__name__)

# Bus events after which a conference is compared with what its recipients were told.
RECONCILE_ON = frozenset({
    "conference.scheduled", "conference.updated", "conference.cancelled", "conference.started",
    "participant.added",
})
SWEEP_EVERY_POLLS = 6  # the full reconcile sweep runs every 6th poll (30 s with the default 5 s poll)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _consented(conference: dict[str, Any], role: str) -> bool:
    """Whether mail for this recipient role may go out: guests need the owner's consent on the
    conference, the owner's own copy follows the account's switch."""
    if role == RecipientRole.CHAIR:
        return bool(conference.get("mail_own_copy", True))
    return bool(conference.get("notify_participants", False))


def _snapshot(conference: dict[str, Any]) -> dict[str, Any]:
    """The facts whose change the recipients must learn about."""
    return {
        "starts_at": conference["starts_at"], "ends_at": conference["ends_at"], "subject": conference["subject"],
        "guest_pin": conference["guest_pin"] if conference["guest_pin_required"] else None,
        "chair_pin": conference["chair_pin"],
    }


class Mailer(Protocol):
    """One SMTP session as the delivery worker uses it (engine.adapters.mail.SmtpMailer)."""

    async def __aenter__(self) -> Mailer: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def send(self, sender: str, recipient: str, raw: bytes) -> SendResult: ...

    async def close(self) -> None: ...


class Notifier:
    """Queues, renders and delivers the notifications of conference events. ``mailer`` opens an
    SMTP session on the settings (a fake of Mailer in unit tests)."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, bus: Bus, *,
                 mailer: Callable[[Settings], Mailer] = SmtpMailer) -> None:
        self.settings = settings
        self.pool = pool
        self.bus = bus
        self.mailer = mailer
        self.composer = MailComposer(settings.mail_from)
        self.sms = SmsGateway(settings)
        self.worker_id = f"{settings.node_id}:{os.getpid()}:{secrets.token_hex(4)}"
        self._wake = asyncio.Event()  # something was queued: the delivery worker looks at once
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self._stop_requested.clear()
        self.bus.subscribe(self.on_event)
        self._tasks = [asyncio.create_task(self._scan_loop(), name="notifier-scan"),
                       asyncio.create_task(self._delivery_loop(), name="notifier-delivery")]
        log.info("notifier %s started (SMTP %s:%s, SMS: %s)", self.worker_id, self.settings.smtp_host,
                 self.settings.smtp_port, "available" if self.sms.available else self.sms.unavailable_reason)

    async def stop(self) -> None:
        """Let a message being handed to the server finish, give back the other claimed ones."""
        self.bus.unsubscribe(self.on_event)
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self.settings.smtp_timeout + 5)
        for task in pending:  # a hung send: its row keeps its lease and is retried after it
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Something was queued elsewhere (a series' mail): the delivery worker looks at once."""
        self._wake.set()

    def channels(self) -> list[dict[str, Any]]:
        """The notification channels and whether they can be used, for the portal and the API."""
        return [{"name": "email", "available": True, "reason": ""},
                {"name": self.sms.name, "available": self.sms.available, "reason": self.sms.unavailable_reason}]

    # --- bus -----------------------------------------------------------------------------

    async def on_event(self, event: DomainEvent) -> None:
        if event.kind == PIN_LOCKOUT_EVENT:
            await self.queue_pin_lockout(event)
            return
        if event.kind not in RECONCILE_ON:
            return
        await self.reconcile(event.conference_id, allow_running=True)

    # --- deciding what to send -------------------------------------------------------------

    async def reconcile(self, conference_id: int, *, allow_running: bool = False,
                        now: datetime | None = None) -> int:
        """Queue whatever this conference's recipients have not been told yet; return how many
        messages were queued now."""
        now = now or _utc_now()
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.lock_conference(conn, conference_id)
            queued = await self._reconcile_locked(conn, conference_id, allow_running, now)
        if queued:
            self._wake.set()
        return queued

    async def _reconcile_locked(self, conn: asyncpg.Connection, conference_id: int, allow_running: bool,
                                now: datetime) -> int:
        conference = await repo.conference_with_owner(conn, conference_id)
        if conference is None:
            return 0
        if conference["series_id"] is not None:
            return 0  # invitations, updates, cancellations of a series are its one RRULE event's (series.py)
        state = conference["state"]
        calendar = await repo.calendar(conn, conference_id)
        snapshot = _snapshot(conference)
        recipients = self._recipients(conference, await repo.participants(conn, conference_id))
        queued = 0
        if calendar is None:
            if state != "scheduled" and not (allow_running and state == "running"):
                return 0  # never announced and not upcoming: nothing to tell
            calendar = await repo.create_calendar(conn, conference_id, self._uid(conference), snapshot)
            for recipient in recipients:
                queued += await self._queue(conn, conference, calendar, recipient, MessageKind.INVITATION,
                                            f"invitation:{calendar['sequence']}", now)
            return queued
        told = {(row["email"], row["recipient_role"]): row
                for row in await repo.calendar_recipients(conn, conference_id)}
        if state == "cancelled":
            if calendar["cancelled"]:
                return 0
            calendar = await repo.advance_calendar(conn, conference_id, snapshot, cancelled=True)
            for (email, role), row in told.items():
                if row["kind"] == MessageKind.CANCELLATION or not _consented(conference, role):
                    continue
                recipient = Recipient(email, RecipientRole(role), self._name_of(conference, recipients, email, role),
                                      row["participant_id"])
                queued += await self._queue(conn, conference, calendar, recipient, MessageKind.CANCELLATION,
                                            f"cancellation:{calendar['sequence']}", now)
            return queued
        if state not in ("scheduled", "running"):
            return 0
        current = {(r.email.lower(), r.role.value) for r in recipients}
        if state == "scheduled" and any(calendar[key] != value for key, value in snapshot.items()):
            guests_affected = any(calendar[key] != snapshot[key] for key in snapshot if key != "chair_pin")
            calendar = await repo.advance_calendar(conn, conference_id, snapshot)
            for recipient in recipients:
                row = told.get((recipient.email.lower(), recipient.role.value))
                if row is None or row["kind"] == MessageKind.CANCELLATION:
                    continue  # not holding the event: gets an invitation below
                if recipient.role is RecipientRole.GUEST and not guests_affected:
                    continue
                queued += await self._queue(conn, conference, calendar, recipient, MessageKind.UPDATE,
                                            f"update:{calendar['sequence']}", now)
        for recipient in recipients:  # added since the last message, or re-added after removal
            row = told.get((recipient.email.lower(), recipient.role.value))
            if row is None or row["kind"] == MessageKind.CANCELLATION:
                after = row["id"] if row else 0
                queued += await self._queue(conn, conference, calendar, recipient, MessageKind.INVITATION,
                                            f"invitation:{calendar['sequence']}:after{after}", now)
        for (email, role), row in told.items():  # removed from the conference: take the event back
            if (email, role) in current or row["kind"] == MessageKind.CANCELLATION \
                    or not _consented(conference, role):
                continue
            recipient = Recipient(email, RecipientRole(role), "", row["participant_id"])
            queued += await self._queue(conn, conference, calendar, recipient, MessageKind.CANCELLATION,
                                        f"cancellation:{calendar['sequence']}:after{row['id']}", now)
        return queued

    async def process_reminders(self, now: datetime | None = None) -> int:
        """Queue the reminders that are due; skip (and log) those the engine missed by more than
        the late window. Driven by the database, so a restart picks up where it left."""
        now = now or _utc_now()
        window = timedelta(seconds=self.settings.reminder_late_window_seconds)
        queued = 0
        async with self.pool.acquire() as conn:
            due = await repo.reminders_due(conn, now)
        for conference_id in due:
            try:
                queued += await self._remind(conference_id, now, window)
            except Exception:  # noqa: BLE001 - one broken conference must not delay the others' reminders
                log.exception("reminders of conference %s failed; the other conferences go on", conference_id)
        if queued:
            self._wake.set()
        return queued

    async def _remind(self, conference_id: int, now: datetime, window: timedelta) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.lock_conference(conn, conference_id)
            queued = await self._reconcile_locked(conn, conference_id, False, now)
            conference = await repo.conference_with_owner(conn, conference_id)
            if conference is None or conference["state"] != "scheduled" or conference["reminder_minutes"] is None:
                return queued
            if conference["series_id"] is None:
                calendar = await repo.calendar(conn, conference_id)
                facts = None
            else:
                calendar, facts = await self._occurrence_calendar(conn, conference)
            if calendar is None or calendar["reminder_for"] == conference["starts_at"]:
                return queued
            decision = reminder_decision(conference["starts_at"], conference["reminder_minutes"], now, window)
            if decision is ReminderDecision.NOT_YET:
                return queued
            if decision is ReminderDecision.SKIP:
                log.warning("reminder for conference %s (start %s, lead %s min) skipped: %s is too late",
                            conference_id, conference["starts_at"].isoformat(), conference["reminder_minutes"],
                            now.isoformat())
                await repo.mark_reminder(conn, conference_id, conference["starts_at"], "skipped")
                return queued
            participants = await repo.participants(conn, conference_id)
            stamp = int(conference["starts_at"].timestamp())
            minutes_left = max(1, round((conference["starts_at"] - now).total_seconds() / 60))
            for recipient in self._recipients(conference, participants):
                queued += await self._queue(conn, conference, calendar, recipient, MessageKind.REMINDER,
                                            f"reminder:{stamp}", now, minutes_left=minutes_left, facts=facts)
            await repo.mark_reminder(conn, conference_id, conference["starts_at"], "queued")
        return queued

    async def _occurrence_calendar(self, conn: asyncpg.Connection, conference: dict[str, Any]
                                   ) -> tuple[dict[str, Any] | None, ConferenceFacts | None]:
        """A series occurrence's reminder row and what its reminder says: the series' UID and
        SEQUENCE with the occurrence's RECURRENCE-ID, so a calendar client files it under the
        series rather than as an event of its own. (None, None) for a permanent room's session."""
        series = await repo.series_calendar(conn, conference["series_id"])
        occurrence_at = conference["occurrence_at"]
        if series is None or occurrence_at is None:
            return None, None
        calendar = await repo.occurrence_calendar(
            conn, conference["id"], f"{series['mail_uid']};RECURRENCE-ID={occurrence_at.astimezone(UTC).isoformat()}",
            _snapshot(conference), series["mail_sequence"])
        facts = dataclasses.replace(
            self._facts(conference, calendar), uid=series["mail_uid"], sequence=series["mail_sequence"],
            timezone=series["timezone"], recurrence_id=occurrence_at, series_starts_at=series["first_start"])
        return calendar, facts

    async def sweep(self, now: datetime | None = None) -> int:
        """Reconcile every upcoming or freshly cancelled conference (catches missed bus events);
        a conference that fails is logged and skipped, the sweep goes on with the next one."""
        async with self.pool.acquire() as conn:
            conference_ids = await repo.conferences_to_reconcile(conn)
        queued = 0
        for conference_id in conference_ids:
            try:
                queued += await self.reconcile(conference_id, now=now)
            except Exception:  # noqa: BLE001 - one broken conference must not stop the sweep
                log.exception("reconciling the mail of conference %s failed; the sweep goes on", conference_id)
        return queued

    def _recipients(self, conference: dict[str, Any], participants: list[dict[str, Any]]) -> list[Recipient]:
        """Who is mailed about the conference: the participants only with the owner's consent
        (notify_participants), the owner only while the account's own-copy switch is on."""
        recipients: list[Recipient] = []
        seen: set[str] = set()
        for participant in participants if _consented(conference, RecipientRole.GUEST) else ():
            email = (participant["email"] or "").strip()
            if not email or email.lower() in seen:
                continue
            seen.add(email.lower())
            # Every participant gets the guest message: only the owner's own copy carries the chair PIN.
            recipients.append(Recipient(email, RecipientRole.GUEST, participant["name"] or "", participant["id"]))
        owner_email = (conference["owner_email"] or "").strip()
        if owner_email and _consented(conference, RecipientRole.CHAIR):
            recipients.append(Recipient(owner_email, RecipientRole.CHAIR, conference["owner_name"] or ""))
        return recipients

    @staticmethod
    def _name_of(conference: dict[str, Any], recipients: list[Recipient], email: str, role: str) -> str:
        for recipient in recipients:
            if recipient.email.lower() == email and recipient.role.value == role:
                return recipient.name
        return (conference["owner_name"] or "") if role == RecipientRole.CHAIR else ""

    def _uid(self, conference: dict[str, Any]) -> str:
        return f"veche-{conference['id']}-{conference['room']}@{self.composer.domain}"

    def _facts(self, conference: dict[str, Any], calendar: dict[str, Any]) -> ConferenceFacts:
        return ConferenceFacts(
            conference_id=conference["id"], uid=calendar["uid"], sequence=calendar["sequence"],
            subject=conference["subject"], starts_at=conference["starts_at"], ends_at=conference["ends_at"],
            duration_minutes=conference["duration_minutes"], access_number=self.settings.access_number,
            conference_number=conference["conference_number"],
            guest_pin=conference["guest_pin"] if conference["guest_pin_required"] else None,
            chair_pin=conference["chair_pin"], language=conference["owner_language"] or "ru",
            timezone=conference["owner_timezone"] or conference["conference_timezone"] or "UTC",
            owner_name=conference["owner_name"] or "", reminder_minutes=conference["reminder_minutes"])

    async def _queue(self, conn: asyncpg.Connection, conference: dict[str, Any], calendar: dict[str, Any],
                     recipient: Recipient, kind: MessageKind, key: str, now: datetime,
                     minutes_left: int | None = None, facts: ConferenceFacts | None = None) -> int:
        """Build one message and queue it (from ``facts`` when given, else from the conference and
        its calendar row). A message that cannot be built is stored as failed with the reason, so
        the recipient's row exists and every other message goes on."""
        dedup_key = f"{conference['id']}:{key}:{recipient.role.value}:{recipient.email.lower()}"
        sequence = facts.sequence if facts is not None else calendar["sequence"]
        try:
            facts = facts or self._facts(conference, calendar)
            if minutes_left is not None:  # a late reminder says how long it really is to the start
                facts = dataclasses.replace(facts, reminder_minutes=minutes_left)
            composed = self.composer.compose(facts, recipient, kind, now=now)
            subject, message_id, message, failed = composed.subject, composed.message_id, composed.raw, None
        except Exception as exc:  # noqa: BLE001 - one unbuildable message must not stop the others
            detail = str(exc) if isinstance(exc, MessageNotBuilt) else f"{type(exc).__name__}: {exc}"
            failed = flatten(f"message not built: {detail}")[:500]
            subject, message_id, message = flatten(conference.get("subject"))[:200], "", b""
            log.warning("%s of conference %s for %s not built: %s", kind.value, conference["id"],
                        recipient.email, failed)
        created = await repo.enqueue(
            conn, dedup_key=dedup_key, conference_id=conference["id"], participant_id=recipient.participant_id,
            kind=kind.value, recipient_role=recipient.role.value, recipient=recipient.email,
            sender=self.settings.mail_from, subject=subject, message_id=message_id,
            message=message, sequence=sequence, now=now, failed_reason=failed)
        if created and failed is None:
            log.info("queued %s of conference %s for %s (%s)", kind.value, conference["id"], recipient.email,
                     recipient.role.value)
        return int(created and failed is None)

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
        async with self.pool.acquire() as conn:
            conference = await repo.conference_with_owner(conn, event.conference_id)
            email = ((conference or {}).get("owner_email") or "").strip()
            if conference is None or not email:
                return 0
            facts = PinLockoutFacts(
                conference_id=conference["id"], subject=conference["subject"],
                conference_number=conference["conference_number"], failures=failures, until=until,
                language=conference["owner_language"] or "ru",
                timezone=conference["owner_timezone"] or conference["conference_timezone"] or "UTC")
            recipient = Recipient(email, RecipientRole.CHAIR, conference["owner_name"] or "")
            composed = compose_pin_lockout(self.composer, facts, recipient, now=now)
            created = await repo.enqueue(
                conn, dedup_key=f"{conference['id']}:pin_lockout:{started_at.timestamp():.6f}:chair:{email.lower()}",
                conference_id=conference["id"], participant_id=None, kind=MessageKind.PIN_LOCKOUT.value,
                recipient_role=RecipientRole.CHAIR.value, recipient=email, sender=self.settings.mail_from,
                subject=composed.subject, message_id=composed.message_id, message=composed.raw, sequence=0,
                now=now)
        if created:
            log.info("queued pin_lockout of conference %s for %s", conference["id"], email)
            self._wake.set()
        return int(created)

    # --- delivery --------------------------------------------------------------------------

    async def deliver_due(self, now: datetime | None = None) -> int:
        """One pass of the delivery worker; returns how many messages it tried."""
        now = now or _utc_now()
        rows = await repo.claim_due(self.pool, self.worker_id, now,
                                    timedelta(seconds=self.settings.mail_lease_seconds), 10)
        if not rows:
            return 0
        unsent = [row["id"] for row in rows]
        connection_failure: SendResult | None = None
        try:
            async with self.mailer(self.settings) as mailer:
                for row in rows:
                    if self._stopping:
                        break
                    if connection_failure is not None:
                        result = connection_failure  # the server is unreachable: no point trying the rest now
                    else:
                        result = await self._send_one(mailer, row)
                        if result.outcome is SmtpOutcome.TEMPORARY and result.code is None:
                            connection_failure = result
                    unsent.remove(row["id"])
                    await self._record(row, result, now)
        finally:
            await repo.release(self.pool, unsent, self.worker_id)
        return len(rows) - len(unsent)

    @staticmethod
    async def _send_one(mailer: Mailer, row: dict[str, Any]) -> SendResult:
        """Hand one row to the server; a message the client library refuses to send (stored before
        today's checks, e.g. a line break in the address) fails alone, for good."""
        try:
            return await mailer.send(row["sender"], row["recipient"], bytes(row["message"]))
        except Exception as exc:  # noqa: BLE001 - one unsendable message must not stop the others
            with contextlib.suppress(Exception):
                await mailer.close()  # the next message starts on a fresh connection
            return SendResult(SmtpOutcome.PERMANENT, f"message could not be sent: {type(exc).__name__}: "
                                                     f"{flatten(exc)}"[:500])

    async def _record(self, row: dict[str, Any], result: SendResult, now: datetime) -> None:
        outbox_id, attempts = row["id"], row["attempts"]
        if result.outcome is SmtpOutcome.SENT:
            await repo.mark_sent(self.pool, outbox_id, self.worker_id, _utc_now())
            log.info("sent %s of conference %s to %s", row["kind"], row["conference_id"], row["recipient"])
        elif result.outcome is SmtpOutcome.PERMANENT:
            await repo.mark_failed(self.pool, outbox_id, self.worker_id, result.reply)
            log.warning("%s to %s failed for good: %s", row["kind"], row["recipient"], result.reply)
        elif attempts >= self.settings.mail_max_attempts:
            await repo.mark_failed(self.pool, outbox_id, self.worker_id, result.reply)
            log.warning("%s to %s failed after %s attempts: %s", row["kind"], row["recipient"], attempts,
                        result.reply)
        else:
            delay = retry_delay(attempts, self.settings.mail_retry_base_seconds, self.settings.mail_retry_max_seconds)
            await repo.mark_retry(self.pool, outbox_id, self.worker_id, result.reply, now + delay)
            log.info("%s to %s will be retried in %.0f s: %s", row["kind"], row["recipient"],
                     delay.total_seconds(), result.reply)

    async def _delivery_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                tried = await self.deliver_due()
            except Exception:  # noqa: BLE001 - the worker must outlive a database hiccup
                log.exception("mail delivery pass failed")
                tried = 0
            if tried or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.mail_poll_interval)

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

    # --- the portal's conference card ------------------------------------------------------

    async def delivery_status(self, owner_id: int | None, conference_id: int) -> list[dict[str, Any]]:
        """Per message and recipient: participant_id, email, kind, status, last_error (plus role,
        attempts, sent_at, channel). Participants without an e-mail show 'not_available', those the
        owner did not consent to mail 'not_wanted'."""
        async with self.pool.acquire() as conn:
            owner = await repo.conference_owner(conn, conference_id)
            if owner is None or (owner_id is not None and owner != owner_id):
                raise NotFound("conference not found")
            conference = await repo.conference_with_owner(conn, conference_id) or {}
            rows = await repo.delivery_rows(conn, conference_id)
            participants = await repo.participants(conn, conference_id)
        # A participant list replaced by an update gets new ids: match older messages by address.
        current_ids = {(p["email"] or "").strip().lower(): p["id"] for p in participants if p["email"]}
        statuses: list[dict[str, Any]] = []
        for row in rows:
            status = DeliveryStatus(row["status"])
            participant_id = row["participant_id"]
            if participant_id is None and row["recipient_role"] == RecipientRole.GUEST:
                participant_id = current_ids.get(row["recipient"].lower())
            statuses.append({
                "participant_id": participant_id, "email": row["recipient"], "kind": row["kind"],
                "status": (DeliveryStatus.QUEUED if status is DeliveryStatus.SENDING else status).value,
                "last_error": row["last_error"], "role": row["recipient_role"], "attempts": row["attempts"],
                "sent_at": row["sent_at"], "channel": "email"})
        mailed = {status["participant_id"] for status in statuses if status["role"] == RecipientRole.GUEST}
        for participant in participants:
            if (participant["email"] or "").strip() and participant["id"] not in mailed \
                    and not _consented(conference, RecipientRole.GUEST):
                statuses.append({
                    "participant_id": participant["id"], "email": participant["email"],
                    "kind": MessageKind.INVITATION.value, "status": DeliveryStatus.NOT_WANTED.value,
                    "last_error": "e-mail notification of the participants is off", "role": RecipientRole.GUEST.value,
                    "attempts": 0, "sent_at": None, "channel": "email"})
            if not (participant["email"] or "").strip():
                statuses.append({
                    "participant_id": participant["id"], "email": None, "kind": MessageKind.INVITATION.value,
                    "status": DeliveryStatus.NOT_AVAILABLE.value, "last_error": "no e-mail address",
                    "role": RecipientRole.GUEST.value, "attempts": 0, "sent_at": None, "channel": "email"})
        return statuses

