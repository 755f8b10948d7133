"""Turns a conference's rows into queued messages: who is mailed (consent, the owner's own copy),
the facts each message is rendered from, and the outbox row of each rendered message (a message
that cannot be built is stored as failed with the reason, so every other message goes on)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

from engine.adapters.db.notifications import MailLedger
from engine.config import Settings
from engine.domain.notifications import ConferenceFacts, MessageKind, Recipient, RecipientRole
from engine.domain.text import flatten
from engine.services.mail_messages import MailComposer, MessageNotBuilt, PinLockoutFacts, compose_pin_lockout

log = logging.getLogger(__name__)


def consented(conference: dict[str, Any], role: str) -> bool:
    """Whether mail for this recipient role may go out: guests need the owner's consent on the
    conference, the owner's own copy follows the account's switch."""
    if role == RecipientRole.CHAIR:
        return bool(conference.get("mail_own_copy", True))
    return bool(conference.get("notify_participants", False))


def calendar_snapshot(conference: dict[str, Any]) -> dict[str, Any]:
    """The facts whose change the recipients must learn about."""
    return {
        "starts_at": conference["starts_at"], "ends_at": conference["ends_at"], "subject": conference["subject"],
        "guest_pin": conference["guest_pin"] if conference["guest_pin_required"] else None,
        "chair_pin": conference["chair_pin"],
    }


class ConferenceMail:
    """Renders a conference's messages (engine/services/mail_messages.py) into the outbox."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.composer = MailComposer(settings.mail_from)

    def recipients(self, conference: dict[str, Any], participants: list[dict[str, Any]]) -> list[Recipient]:
        """Who is mailed about the conference: the participants only with the owner's consent
        (notify_participants), the owner only while the account's own-copy switch is on."""
        recipients: list[Recipient] = []
        seen: set[str] = set()
        for participant in participants if consented(conference, RecipientRole.GUEST) else ():
            email = (participant["email"] or "").strip()
            if not email or email.lower() in seen:
                continue
            seen.add(email.lower())
            # Every participant gets the guest message: only the owner's own copy carries the chair PIN.
            recipients.append(Recipient(email, RecipientRole.GUEST, participant["name"] or "", participant["id"]))
        owner_email = (conference["owner_email"] or "").strip()
        if owner_email and consented(conference, RecipientRole.CHAIR):
            recipients.append(Recipient(owner_email, RecipientRole.CHAIR, conference["owner_name"] or ""))
        return recipients

    @staticmethod
    def name_of(conference: dict[str, Any], recipients: list[Recipient], email: str, role: str) -> str:
        for recipient in recipients:
            if recipient.email.lower() == email and recipient.role.value == role:
                return recipient.name
        return (conference["owner_name"] or "") if role == RecipientRole.CHAIR else ""

    def uid(self, conference: dict[str, Any]) -> str:
        return f"veche-{conference['id']}-{conference['room']}@{self.composer.domain}"

    def facts(self, conference: dict[str, Any], calendar: dict[str, Any]) -> ConferenceFacts:
        return ConferenceFacts(
            conference_id=conference["id"], uid=calendar["uid"], sequence=calendar["sequence"],
            subject=conference["subject"], starts_at=conference["starts_at"], ends_at=conference["ends_at"],
            duration_minutes=conference["duration_minutes"], access_number=self.settings.access_number,
            conference_number=conference["conference_number"],
            guest_pin=conference["guest_pin"] if conference["guest_pin_required"] else None,
            chair_pin=conference["chair_pin"], language=conference["owner_language"] or "ru",
            timezone=conference["owner_timezone"] or conference["conference_timezone"] or "UTC",
            owner_name=conference["owner_name"] or "", reminder_minutes=conference["reminder_minutes"])

    def occurrence_facts(self, conference: dict[str, Any], calendar: dict[str, Any],
                         series: dict[str, Any]) -> ConferenceFacts:
        """A series occurrence's facts: the series' UID and SEQUENCE with the occurrence's
        RECURRENCE-ID, so a calendar client files it under the series."""
        return dataclasses.replace(
            self.facts(conference, calendar), uid=series["mail_uid"], sequence=series["mail_sequence"],
            timezone=series["timezone"], recurrence_id=conference["occurrence_at"],
            series_starts_at=series["first_start"])

    @staticmethod
    def occurrence_uid(conference: dict[str, Any], series: dict[str, Any]) -> str:
        return f"{series['mail_uid']};RECURRENCE-ID={conference['occurrence_at'].astimezone(UTC).isoformat()}"

    async def queue(self, ledger: MailLedger, conference: dict[str, Any], calendar: dict[str, Any],
                    recipient: Recipient, kind: MessageKind, key: str, now: datetime,
                    minutes_left: int | None = None, facts: ConferenceFacts | None = None) -> int:
        """Build one message and queue it (from ``facts`` when given, else from the conference and
        its calendar row). A message that cannot be built is stored as failed with the reason, so
        the recipient's row exists and every other message goes on."""
        dedup_key = f"{conference['id']}:{key}:{recipient.role.value}:{recipient.email.lower()}"
        sequence = facts.sequence if facts is not None else calendar["sequence"]
        try:
            facts = facts or self.facts(conference, calendar)
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
        created = await ledger.enqueue(
            dedup_key=dedup_key, conference_id=conference["id"], participant_id=recipient.participant_id,
            kind=kind.value, recipient_role=recipient.role.value, recipient=recipient.email,
            sender=self.settings.mail_from, subject=subject, message_id=message_id,
            message=message, sequence=sequence, now=now, failed_reason=failed)
        if created and failed is None:
            log.info("queued %s of conference %s for %s (%s)", kind.value, conference["id"], recipient.email,
                     recipient.role.value)
        return int(created and failed is None)

    async def queue_pin_lockout(self, ledger: MailLedger, conference: dict[str, Any], *, failures: int,
                                started_at: datetime, until: datetime, now: datetime) -> int:
        """Queue the owner's e-mail about a PIN lock-out of the conference: once per lock-out
        (keyed by its start); nothing when the owner has no address."""
        email = (conference.get("owner_email") or "").strip()
        if not email:
            return 0
        facts = PinLockoutFacts(
            conference_id=conference["id"], subject=conference["subject"],
            conference_number=conference["conference_number"], failures=failures, until=until,
            language=conference["owner_language"] or "ru",
            timezone=conference["owner_timezone"] or conference["conference_timezone"] or "UTC")
        recipient = Recipient(email, RecipientRole.CHAIR, conference["owner_name"] or "")
        composed = compose_pin_lockout(self.composer, facts, recipient, now=now)
        created = await ledger.enqueue(
            dedup_key=f"{conference['id']}:pin_lockout:{started_at.timestamp():.6f}:chair:{email.lower()}",
            conference_id=conference["id"], participant_id=None, kind=MessageKind.PIN_LOCKOUT.value,
            recipient_role=RecipientRole.CHAIR.value, recipient=email, sender=self.settings.mail_from,
            subject=composed.subject, message_id=composed.message_id, message=composed.raw, sequence=0,
            now=now)
        if created:
            log.info("queued pin_lockout of conference %s for %s", conference["id"], email)
        return int(created)
