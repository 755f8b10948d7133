"""The mail outbox's delivery worker and its report: claims due messages with FOR UPDATE SKIP
LOCKED and a lease, hands them to the SMTP server, marks a row sent only after the server
accepted it and retries with back-off otherwise; and tells the portal's conference card what
became of each message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from engine.adapters.db.notifications import NotificationRepository
from engine.adapters.mail import SendResult, SmtpMailer
from engine.adapters.sms import SmsGateway
from engine.config import Settings
from engine.domain.errors import NotFound
from engine.domain.notifications import DeliveryStatus, MessageKind, RecipientRole, SmtpOutcome, retry_delay
from engine.domain.text import flatten
from engine.services.conference_mail import consented

log = logging.getLogger(__name__)


class Mailer(Protocol):
    """One SMTP session as the delivery worker uses it (engine.adapters.mail.SmtpMailer)."""

    async def __aenter__(self) -> Mailer: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def send(self, sender: str, recipient: str, raw: bytes) -> SendResult: ...

    async def close(self) -> None: ...


class MailDelivery:
    """Delivers what is queued in the outbox. ``mailer`` opens an SMTP session on the settings (a
    fake of Mailer in unit tests); ``wake`` tells the worker something was queued."""

    def __init__(self, settings: Settings, repo: NotificationRepository, *,
                 mailer: Callable[[Settings], Mailer] = SmtpMailer) -> None:
        self.settings = settings
        self.repo = repo
        self.mailer = mailer
        self.sms = SmsGateway(settings)
        self.worker_id = f"{settings.node_id}:{os.getpid()}:{secrets.token_hex(4)}"
        self._wake = asyncio.Event()  # something was queued: the worker looks at once
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._delivery_loop(), name="mail-delivery")
        log.info("mail delivery %s started (SMTP %s:%s, SMS: %s)", self.worker_id, self.settings.smtp_host,
                 self.settings.smtp_port, "available" if self.sms.available else self.sms.unavailable_reason)

    async def stop(self) -> None:
        """Let a message being handed to the server finish, give back the other claimed ones."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        _done, pending = await asyncio.wait([task], timeout=self.settings.smtp_timeout + 5)
        for hung in pending:  # a hung send: its row keeps its lease and is retried after it
            hung.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hung

    def wake(self) -> None:
        """Something was queued: the worker looks at once."""
        self._wake.set()

    def channels(self) -> list[dict[str, Any]]:
        """The notification channels and whether they can be used, for the portal and the API."""
        return [{"name": "email", "available": True, "reason": ""},
                {"name": self.sms.name, "available": self.sms.available, "reason": self.sms.unavailable_reason}]

    # --- delivery --------------------------------------------------------------------------

    async def deliver_due(self, now: datetime | None = None) -> int:
        """One pass of the delivery worker; returns how many messages it tried."""
        now = now or datetime.now(UTC)
        rows = await self.repo.claim_due(self.worker_id, now, timedelta(seconds=self.settings.mail_lease_seconds), 10)
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
            await self.repo.release(unsent, self.worker_id)
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
            await self.repo.mark_sent(outbox_id, self.worker_id, datetime.now(UTC))
            log.info("sent %s of conference %s to %s", row["kind"], row["conference_id"], row["recipient"])
        elif result.outcome is SmtpOutcome.PERMANENT:
            await self.repo.mark_failed(outbox_id, self.worker_id, result.reply)
            log.warning("%s to %s failed for good: %s", row["kind"], row["recipient"], result.reply)
        elif attempts >= self.settings.mail_max_attempts:
            await self.repo.mark_failed(outbox_id, self.worker_id, result.reply)
            log.warning("%s to %s failed after %s attempts: %s", row["kind"], row["recipient"], attempts,
                        result.reply)
        else:
            delay = retry_delay(attempts, self.settings.mail_retry_base_seconds, self.settings.mail_retry_max_seconds)
            await self.repo.mark_retry(outbox_id, self.worker_id, result.reply, now + delay)
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

    # --- the portal's conference card ------------------------------------------------------

    async def delivery_status(self, owner_id: int | None, conference_id: int) -> list[dict[str, Any]]:
        """Per message and recipient: participant_id, email, kind, status, last_error (plus role,
        attempts, sent_at, channel). Participants without an e-mail show 'not_available', those the
        owner did not consent to mail 'not_wanted'."""
        async with self.repo.reading() as ledger:
            owner = await ledger.conference_owner(conference_id)
            if owner is None or (owner_id is not None and owner != owner_id):
                raise NotFound("conference not found")
            conference = await ledger.conference_with_owner(conference_id) or {}
            rows = await ledger.delivery_rows(conference_id)
            participants = await ledger.participants(conference_id)
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
                    and not consented(conference, RecipientRole.GUEST):
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

