"""All SQL of the notifications: what the notifier reads about conferences, participants and
owners, its per-conference calendar state, and the mail outbox the delivery worker claims rows
from. Work on one conference runs in one transaction under the conference's advisory lock
(``NotificationRepository.conference``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg

_MAIL_LOCK_CLASS = 0x6D61  # pg_advisory_xact_lock(class, conference_id): one notifier at a time per conference

ROW = dict[str, Any]


async def enqueue(conn: asyncpg.Connection, *, dedup_key: str, conference_id: int, participant_id: int | None,
                  kind: str, recipient_role: str, recipient: str, sender: str, subject: str, message_id: str,
                  message: bytes, sequence: int, now: datetime, failed_reason: str | None = None) -> bool:
    """Queue one message; False when a message with this key was queued before. With
    ``failed_reason`` the row is stored as failed at once (the message could not be built), so the
    deliveries show it and the worker never claims it."""
    row = await conn.fetchrow("""
        INSERT INTO mail_outbox (dedup_key, conference_id, participant_id, kind, recipient_role, recipient,
                                 sender, subject, message_id, message, sequence, next_attempt_at,
                                 status, last_error)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                CASE WHEN $13::text IS NULL THEN 'queued' ELSE 'failed' END, $13::text)
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING id""", dedup_key, conference_id, participant_id, kind, recipient_role, recipient, sender,
        subject, message_id, message, sequence, now, failed_reason)
    return row is not None


class MailLedger:
    """The notifier's reads and writes on one connection: inside the transaction of
    ``NotificationRepository.conference``, or plain reads from ``NotificationRepository.reading``."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def conference_with_owner(self, conference_id: int) -> ROW | None:
        row = await self.conn.fetchrow("""
            SELECT c.id, c.owner_id, c.subject, c.room, c.conference_number, c.chair_pin, c.guest_pin,
                   c.guest_pin_required, c.starts_at, c.ends_at, c.duration_minutes, c.reminder_minutes,
                   c.state, c.timezone AS conference_timezone, c.notify_participants, c.series_id, c.occurrence_at,
                   a.name AS owner_name, a.email AS owner_email, a.language AS owner_language,
                   a.timezone AS owner_timezone, a.mail_own_copy
              FROM conferences c JOIN accounts a ON a.id = c.owner_id
             WHERE c.id = $1""", conference_id)
        return dict(row) if row else None

    async def participants(self, conference_id: int) -> list[ROW]:
        rows = await self.conn.fetch("""
            SELECT id, name, email, role FROM participants WHERE conference_id = $1 ORDER BY id""", conference_id)
        return [dict(r) for r in rows]

    async def calendar(self, conference_id: int) -> ROW | None:
        row = await self.conn.fetchrow("SELECT * FROM mail_calendar WHERE conference_id = $1", conference_id)
        return dict(row) if row else None

    async def create_calendar(self, conference_id: int, uid: str, snapshot: ROW) -> ROW:
        row = await self.conn.fetchrow("""
            INSERT INTO mail_calendar (conference_id, uid, sequence, starts_at, ends_at, subject, guest_pin, chair_pin)
            VALUES ($1, $2, 0, $3, $4, $5, $6, $7)
            RETURNING *""", conference_id, uid, snapshot["starts_at"], snapshot["ends_at"], snapshot["subject"],
            snapshot["guest_pin"], snapshot["chair_pin"])
        return dict(row)

    async def occurrence_calendar(self, conference_id: int, uid: str, snapshot: ROW,
                                  sequence: int) -> ROW:
        """The row that records the reminder of one series occurrence (reminder_for, reminder_outcome).
        The occurrence's calendar event is the series' (conference_series.mail_uid with RECURRENCE-ID),
        so ``uid`` names that instance and the row never leads to an invitation of its own."""
        await self.conn.execute("""
            INSERT INTO mail_calendar (conference_id, uid, sequence, starts_at, ends_at, subject, guest_pin, chair_pin)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (conference_id) DO NOTHING""", conference_id, uid, sequence, snapshot["starts_at"],
            snapshot["ends_at"], snapshot["subject"], snapshot["guest_pin"], snapshot["chair_pin"])
        row = await self.conn.fetchrow("SELECT * FROM mail_calendar WHERE conference_id = $1", conference_id)
        return dict(row)

    async def series_calendar(self, series_id: int) -> ROW | None:
        """The calendar event of a series that its occurrences' reminders refer to."""
        row = await self.conn.fetchrow("""
            SELECT id, mail_uid, mail_sequence, timezone, first_start FROM conference_series WHERE id = $1""",
            series_id)
        return dict(row) if row else None

    async def advance_calendar(self, conference_id: int, snapshot: ROW,
                               cancelled: bool = False) -> ROW:
        """Record what the recipients are told now, with the next SEQUENCE."""
        row = await self.conn.fetchrow("""
            UPDATE mail_calendar
               SET sequence = sequence + 1, starts_at = $2, ends_at = $3, subject = $4, guest_pin = $5,
                   chair_pin = $6, cancelled = $7, updated_at = now()
             WHERE conference_id = $1
            RETURNING *""", conference_id, snapshot["starts_at"], snapshot["ends_at"], snapshot["subject"],
            snapshot["guest_pin"], snapshot["chair_pin"], cancelled)
        return dict(row)

    async def mark_reminder(self, conference_id: int, starts_at: datetime, outcome: str) -> None:
        await self.conn.execute("""
            UPDATE mail_calendar SET reminder_for = $2, reminder_outcome = $3, updated_at = now()
             WHERE conference_id = $1""", conference_id, starts_at, outcome)

    async def calendar_recipients(self, conference_id: int) -> list[ROW]:
        """The latest calendar message (invitation, update, cancellation) queued for each recipient:
        whoever holds the event needs an update or a cancellation, whoever does not an invitation."""
        rows = await self.conn.fetch("""
            SELECT DISTINCT ON (lower(recipient), recipient_role)
                   id, lower(recipient) AS email, recipient_role, participant_id, kind
              FROM mail_outbox
             WHERE conference_id = $1 AND kind IN ('invitation', 'update', 'cancellation')
             ORDER BY lower(recipient), recipient_role, id DESC""", conference_id)
        return [dict(r) for r in rows]

    async def conference_owner(self, conference_id: int) -> int | None:
        return await self.conn.fetchval("SELECT owner_id FROM conferences WHERE id = $1", conference_id)

    async def delivery_rows(self, conference_id: int) -> list[ROW]:
        rows = await self.conn.fetch("""
            SELECT id, participant_id, recipient, recipient_role, kind, status, attempts, last_error, sent_at,
                   sequence, created_at
              FROM mail_outbox WHERE conference_id = $1 ORDER BY id""", conference_id)
        return [dict(r) for r in rows]

    async def enqueue(self, *, dedup_key: str, conference_id: int, participant_id: int | None, kind: str,
                      recipient_role: str, recipient: str, sender: str, subject: str, message_id: str,
                      message: bytes, sequence: int, now: datetime, failed_reason: str | None = None) -> bool:
        """Queue one message in this transaction (see ``enqueue``)."""
        return await enqueue(self.conn, dedup_key=dedup_key, conference_id=conference_id,
                             participant_id=participant_id, kind=kind, recipient_role=recipient_role,
                             recipient=recipient, sender=sender, subject=subject, message_id=message_id,
                             message=message, sequence=sequence, now=now, failed_reason=failed_reason)


class NotificationRepository:
    """The outbox and calendar state of every conference, on the engine's pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def conference(self, conference_id: int) -> AsyncIterator[MailLedger]:
        """One transaction on the conference's mail, serialised across engine processes by an
        advisory lock: whatever is queued inside is committed together or not at all."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2::int)", _MAIL_LOCK_CLASS, conference_id)
            yield MailLedger(conn)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[MailLedger]:
        """Reads (and single-statement writes) outside a conference's lock."""
        async with self.pool.acquire() as conn:
            yield MailLedger(conn)

    async def conferences_to_reconcile(self) -> list[int]:
        """Scheduled conferences (their invitations or updates may have been missed while the engine
        was down) and cancelled ones whose cancellation was not sent yet. A series' occurrences are
        not among them: their calendar mail is the series'."""
        rows = await self.pool.fetch("""
            SELECT c.id FROM conferences c LEFT JOIN mail_calendar m ON m.conference_id = c.id
             WHERE c.series_id IS NULL
               AND (c.state = 'scheduled'
                    OR (c.state = 'cancelled' AND m.conference_id IS NOT NULL AND NOT m.cancelled))
             ORDER BY c.id""")
        return [r["id"] for r in rows]

    async def reminders_due(self, now: datetime) -> list[int]:
        rows = await self.pool.fetch("""
            SELECT c.id FROM conferences c LEFT JOIN mail_calendar m ON m.conference_id = c.id
             WHERE c.state = 'scheduled' AND c.reminder_minutes IS NOT NULL
               AND c.starts_at - make_interval(mins => c.reminder_minutes) <= $1
               AND m.reminder_for IS DISTINCT FROM c.starts_at
             ORDER BY c.starts_at""", now)
        return [r["id"] for r in rows]

    async def claim_due(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[ROW]:
        """Take due messages for this worker: queued/retrying ones whose time has come and 'sending'
        ones whose worker's lease ran out (it died mid-send). Other workers skip the locked rows."""
        rows = await self.pool.fetch("""
            UPDATE mail_outbox o
               SET status = 'sending', leased_by = $1, lease_until = $2 + $3::interval,
                   attempts = o.attempts + 1, updated_at = now()
             WHERE o.id IN (
                   SELECT id FROM mail_outbox
                    WHERE channel = 'email'
                      AND ((status IN ('queued', 'retrying') AND next_attempt_at <= $2)
                           OR (status = 'sending' AND lease_until < $2))
                    ORDER BY next_attempt_at, id
                    LIMIT $4
                    FOR UPDATE SKIP LOCKED)
            RETURNING o.id, o.recipient, o.sender, o.message, o.attempts, o.kind, o.conference_id""",
            worker, now, lease, limit)
        return [dict(r) for r in rows]

    async def mark_sent(self, outbox_id: int, worker: str, now: datetime) -> bool:
        result = await self.pool.execute("""
            UPDATE mail_outbox SET status = 'sent', sent_at = $3, last_error = NULL, lease_until = NULL,
                   updated_at = now(), leased_by = $2
             WHERE id = $1 AND status = 'sending' AND leased_by = $2""", outbox_id, worker, now)
        return result.endswith(" 1")

    async def mark_retry(self, outbox_id: int, worker: str, error: str, next_attempt_at: datetime) -> None:
        await self.pool.execute("""
            UPDATE mail_outbox SET status = 'retrying', last_error = $3, next_attempt_at = $4, lease_until = NULL,
                   updated_at = now()
             WHERE id = $1 AND status = 'sending' AND leased_by = $2""", outbox_id, worker, error, next_attempt_at)

    async def mark_failed(self, outbox_id: int, worker: str, error: str) -> None:
        await self.pool.execute("""
            UPDATE mail_outbox SET status = 'failed', last_error = $3, lease_until = NULL, updated_at = now()
             WHERE id = $1 AND status = 'sending' AND leased_by = $2""", outbox_id, worker, error)

    async def release(self, outbox_ids: list[int], worker: str) -> None:
        """Give back claimed messages that were never handed to the server (the worker is stopping)."""
        if not outbox_ids:
            return
        await self.pool.execute("""
            UPDATE mail_outbox
               SET status = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'queued' END,
                   attempts = attempts - 1, lease_until = NULL, updated_at = now()
             WHERE id = ANY($1::bigint[]) AND status = 'sending' AND leased_by = $2""", outbox_ids, worker)
