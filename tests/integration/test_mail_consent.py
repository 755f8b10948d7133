"""E-mail consent through the real notifier, Postgres and an aiosmtpd server: participants are
mailed (invitation, update, cancellation, reminder) only when the owner switched e-mail
notification on; the owner's own copy follows the account's switch; the deliveries say per
recipient what went out and what was not sent because the switch was off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from engine.config import Settings
from tests.integration.test_mail import (
    NotifierInstance,
    SmtpServer,
    by_recipient,
    mail_settings,
    make_account,
    make_conference,
    open_instance,
    smtp_server,
)
from tests.support.database import new_database


@pytest.fixture
async def sink() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
async def consent_database(database_url: str) -> str:
    """A database of its own, so the session engine's notifier never touches these rows."""
    return await new_database(database_url, "veche_consent")


@pytest.fixture
async def opened() -> AsyncIterator[list[NotifierInstance]]:
    found: list[NotifierInstance] = []
    yield found
    for instance in found:
        await instance.close()


async def drain(mail) -> None:
    while await mail.delivery.deliver_due():
        pass


async def test_consent_off_mails_only_the_owner(sink: SmtpServer, settings: Settings, consent_database: str,
                                                opened: list[NotifierInstance]) -> None:
    mail = await open_instance(opened, mail_settings(settings, consent_database, sink.port))
    instance = opened[0]
    pool = instance.engine.pool
    owner = await make_account(pool, email_address="c-owner@example.org")
    starts_at = datetime.now(UTC) + timedelta(seconds=62)
    conference = await make_conference(pool, owner, starts_at, reminder=1, notify=False,
                                       guests=(("Petr", "c-petr@example.org"), ("Anna", "c-anna@example.org")))
    await instance.publish("conference.scheduled", conference.id)
    await drain(mail)
    # the reminder (1 minute lead) is due half a minute before the start: the owner's only
    assert await mail.notifier.process_reminders(now=starts_at - timedelta(seconds=30)) == 1
    while await mail.delivery.deliver_due(now=starts_at):  # queued for that moment
        pass
    await pool.execute("UPDATE conferences SET subject = 'Moved' WHERE id = $1", conference.id)
    await instance.publish("conference.updated", conference.id, changed=["subject"])
    await pool.execute("UPDATE conferences SET state = 'cancelled' WHERE id = $1", conference.id)
    await instance.publish("conference.cancelled", conference.id)
    await drain(mail)
    rows = await pool.fetch("SELECT recipient, kind FROM mail_outbox WHERE conference_id = $1", conference.id)
    assert {row["recipient"] for row in rows} == {"c-owner@example.org"}
    assert sorted(row["kind"] for row in rows) == ["cancellation", "invitation", "reminder", "update"]
    received = await sink.handler.collect(len(rows))
    assert {item.recipients[0] for item in received} == {"c-owner@example.org"}
    statuses = await mail.delivery.delivery_status(owner, conference.id)
    wanted = {s["email"]: s for s in statuses if s["role"] == "guest"}
    assert {wanted[a]["status"] for a in ("c-petr@example.org", "c-anna@example.org")} == {"not_wanted"}
    assert {s["status"] for s in statuses if s["role"] == "chair"} == {"sent"}


async def test_consent_on_and_owner_copy_off(sink: SmtpServer, settings: Settings, consent_database: str,
                                             opened: list[NotifierInstance]) -> None:
    mail = await open_instance(opened, mail_settings(settings, consent_database, sink.port))
    instance = opened[0]
    pool = instance.engine.pool
    owner = await make_account(pool, email_address="o-owner@example.org")
    await pool.execute("UPDATE accounts SET mail_own_copy = false WHERE id = $1", owner)
    conference = await make_conference(pool, owner, datetime.now(UTC) + timedelta(days=1), notify=True,
                                       guests=(("Petr", "o-petr@example.org"), ("Anna", "o-anna@example.org")))
    await instance.publish("conference.scheduled", conference.id)
    await drain(mail)
    invitations = by_recipient(await sink.handler.collect(2))
    assert set(invitations) == {"o-petr@example.org", "o-anna@example.org"}
    assert all(item.kind == "invitation" for item in invitations.values())
    # the switch back on: the owner gets the invitation now, the participants nothing twice
    await pool.execute("UPDATE accounts SET mail_own_copy = true WHERE id = $1", owner)
    await instance.publish("conference.updated", conference.id, changed=[])
    await drain(mail)
    late = await sink.handler.next()
    assert late.recipients == ["o-owner@example.org"] and late.kind == "invitation"
    assert conference.chair_pin in late.texts()["text/plain"]
    statuses = await mail.delivery.delivery_status(owner, conference.id)
    assert {(s["email"], s["kind"], s["status"]) for s in statuses} == {
        ("o-petr@example.org", "invitation", "sent"), ("o-anna@example.org", "invitation", "sent"),
        ("o-owner@example.org", "invitation", "sent")}
