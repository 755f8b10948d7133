"""The notifier against a real SMTP server (aiosmtpd on a free port) and the real Postgres:
invitation, reminder, update and cancellation arrive with a correct .ics; refusals and an
unreachable server are retried and end as failed with the reason; a restart neither loses nor
repeats mail; no guest message ever carries the chair PIN."""

from __future__ import annotations

import asyncio
import contextlib
import email
import ipaddress
import logging
import secrets
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import asyncpg
import icalendar
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.adapters.db import create_pool
from engine.adapters.db.notifications import NotificationRepository
from engine.app import Engine
from engine.config import Settings
from engine.domain.errors import NotFound
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.services.bus import DomainEvent, EventBus
from engine.services.conference_mail import ConferenceMail
from engine.services.mail_delivery import MailDelivery
from engine.services.notifier import Notifier
from engine.stack import free_port
from tests.support.database import new_database

RECEIVE_TIMEOUT = 20.0


# ----------------------------------------------------------------------------- SMTP server


@dataclass
class Received:
    recipients: list[str]
    message: EmailMessage
    raw: bytes
    at: datetime
    login: str | None = None  # the AUTH user of the session, if it logged in
    tls: bool = False  # the session ran over TLS (STARTTLS)

    @property
    def kind(self) -> str:
        return self.message["Message-ID"].strip("<>").split(".", 1)[0]

    def texts(self) -> dict[str, str]:
        """Decoded subject, plain text, HTML and .ics of the message."""
        found = {"subject": str(self.message["Subject"])}
        for part in self.message.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                found[part.get_content_type()] = part.get_content()
            elif part.get_content_type() == "text/calendar":
                found["ics"] = part.get_payload(decode=True).decode()
                found["method"] = part.get_param("method")
        return found

    def calendar_event(self) -> tuple[str, icalendar.Event]:
        calendar = icalendar.Calendar.from_ical(self.texts()["ics"])
        return str(calendar["METHOD"]), calendar.walk("VEVENT")[0]


@dataclass
class SmtpHandler:
    """aiosmtpd handler: accepts, or answers RCPT with a scripted refusal per recipient."""

    loop: asyncio.AbstractEventLoop
    received: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> "451 ..." / "550 ..."
    refuse_all: str | None = None
    rcpt_attempts: Counter[str] = field(default_factory=Counter)

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options) -> str:  # noqa: N802
        self.rcpt_attempts[address] += 1
        answer = self.refuse_all or self.refuse.get(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=default)
        login = session.auth_data.login.decode() if session.authenticated and session.auth_data else None
        item = Received(list(envelope.rcpt_tos), message, raw, datetime.now(UTC), login, session.ssl is not None)
        self.loop.call_soon_threadsafe(self.received.put_nowait, item)
        return "250 2.0.0 Message accepted"

    async def next(self, timeout: float = RECEIVE_TIMEOUT) -> Received:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def collect(self, count: int, timeout: float = RECEIVE_TIMEOUT) -> list[Received]:
        return [await self.next(timeout) for _ in range(count)]

    async def collect_for(self, recipients: set[str], count: int, timeout: float = RECEIVE_TIMEOUT) -> list[Received]:
        """Messages to these recipients only (a shared database may hold other tests' mail)."""
        found: list[Received] = []
        while len(found) < count:
            item = await self.next(timeout)
            if set(item.recipients) <= recipients:
                found.append(item)
        return found


@dataclass
class SmtpServer:
    handler: SmtpHandler
    port: int


@contextlib.asynccontextmanager
async def smtp_server(**server_options: object) -> AsyncIterator[SmtpServer]:
    handler = SmtpHandler(asyncio.get_running_loop())
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **server_options)
    await asyncio.to_thread(controller.start)
    try:
        yield SmtpServer(handler, port)
    finally:
        await asyncio.to_thread(controller.stop)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as server:
        yield server


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that the test's client trusts through smtp_ca_file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# ----------------------------------------------------------------------------- database and notifier


@pytest.fixture(scope="module")
async def mail_database(database_url: str) -> str:
    """A database of its own, so the session engine's notifier never touches these rows."""
    return await new_database(database_url, "veche_mail")


def mail_settings(settings: Settings, database: str, smtp_port: int, **overrides: object) -> Settings:
    fast: dict[str, object] = dict(
        database_url=database, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_timeout=5.0,
        mail_from="veche@example.org", mail_poll_interval=0.2, mail_retry_base_seconds=0.05,
        mail_retry_max_seconds=0.5, mail_max_attempts=3, mail_lease_seconds=300.0,
        reminder_late_window_seconds=600, access_number="7000")
    return settings.with_(**(fast | overrides))


@dataclass
class Mail:
    """One engine's mail: the notifier that queues and the worker that delivers, over one
    repository (as engine/app.py:build_services wires them)."""

    notifier: Notifier
    delivery: MailDelivery

    @classmethod
    def build(cls, settings: Settings, pool: asyncpg.Pool, bus: EventBus) -> Mail:
        notifications = NotificationRepository(pool)
        delivery = MailDelivery(settings, notifications)
        return cls(Notifier(settings, notifications, bus, ConferenceMail(settings), delivery), delivery)

    async def start(self) -> None:
        await self.delivery.start()
        await self.notifier.start()

    async def stop(self) -> None:
        await self.notifier.stop()
        await self.delivery.stop()


class NotifierInstance:
    """One engine's mail (own pool and bus) over the shared database: a second instance is what
    an engine restart looks like."""

    def __init__(self, settings: Settings) -> None:
        self.engine = Engine(settings)
        self.mail: Mail | None = None

    async def open(self, start: bool = False) -> Mail:
        self.engine.pool = await create_pool(self.engine.settings.database_url, min_size=1, max_size=4)
        self.mail = Mail.build(self.engine.settings, self.engine.pool, self.engine.bus)
        if start:
            await self.mail.start()
        else:  # driven by the test: bus events, but no background loops
            self.engine.bus.subscribe(self.mail.notifier.on_event)
        return self.mail

    async def publish(self, kind: str, conference_id: int, **data: object) -> None:
        await self.engine.bus.publish(DomainEvent(kind=kind, conference_id=conference_id, data=dict(data)))

    async def close(self, graceful: bool = True) -> None:
        if self.mail is not None and graceful:
            await self.mail.stop()
        if self.engine.pool is not None:
            await self.engine.pool.close()


@pytest.fixture
async def instances() -> AsyncIterator[list[NotifierInstance]]:
    opened: list[NotifierInstance] = []
    yield opened
    for instance in opened:
        await instance.close()


async def open_instance(instances: list[NotifierInstance], settings: Settings, start: bool = False) -> Mail:
    instance = NotifierInstance(settings)
    instances.append(instance)
    return await instance.open(start=start)


def digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


@dataclass
class ConferenceRow:
    id: int
    owner_id: int
    chair_pin: str
    guest_pin: str
    conference_number: str
    starts_at: datetime
    ends_at: datetime
    participant_ids: dict[str, int]


async def make_account(pool: asyncpg.Pool, email_address: str | None = "chair@example.org",
                       language: str = "ru", timezone: str = "Europe/Minsk") -> int:
    return await pool.fetchval("""
        INSERT INTO accounts (phone, password_hash, name, email, language, timezone)
        VALUES ($1, 'x', 'Иван Председатель', $2, $3, $4) RETURNING id""",
        "375" + digits(9), email_address, language, timezone)


async def make_conference(pool: asyncpg.Pool, owner_id: int, starts_at: datetime, *, minutes: int = 30,
                          reminder: int | None = None, guest_pin_required: bool = True, notify: bool = True,
                          guests: tuple[tuple[str, str | None], ...] = (("Пётр", "petr@example.org"),
                                                                        ("Anna", "anna@example.org"),
                                                                        ("Без почты", None))) -> ConferenceRow:
    """A scheduled conference as the conference service stores it (SQL, for the notifier alone)."""
    chair_pin = "9" + digits(5)
    guest_pin = "1" + digits(5)
    number = "5" + digits(5)
    ends_at = starts_at + timedelta(minutes=minutes)
    conference_id = await pool.fetchval("""
        INSERT INTO conferences (owner_id, subject, node_id, room, conference_number, chair_pin, guest_pin,
                                 guest_pin_required, starts_at, duration_minutes, ends_at, max_participants,
                                 reminder_minutes, notify_participants)
        VALUES ($1, 'Планёрка', 'ast1', $2, $3, $4, $5, $6, $7, $8, $9, 10, $10, $11) RETURNING id""",
        owner_id, f"mail-{secrets.token_hex(6)}", number, chair_pin, guest_pin, guest_pin_required,
        starts_at, minutes, ends_at, reminder, notify)
    participant_ids = {}
    for name, address in guests:
        participant_ids[address or name] = await pool.fetchval("""
            INSERT INTO participants (conference_id, number, name, email) VALUES ($1, $2, $3, $4) RETURNING id""",
            conference_id, "37529" + digits(7), name, address)
    return ConferenceRow(conference_id, owner_id, chair_pin, guest_pin, number, starts_at, ends_at, participant_ids)


def by_recipient(messages: list[Received]) -> dict[str, Received]:
    found = {}
    for item in messages:
        assert len(item.recipients) == 1
        assert item.recipients[0] not in found, f"{item.recipients[0]} got two messages"
        found[item.recipients[0]] = item
    return found


def assert_no_chair_pin_for_guests(messages: list[Received], chair_pin: str, chair: str = "chair@example.org") -> None:
    for item in messages:
        if item.recipients == [chair]:
            continue
        assert chair_pin.encode() not in item.raw
        for part, text in item.texts().items():
            assert chair_pin not in text, (item.kind, item.recipients, part)


async def outbox(pool: asyncpg.Pool, conference_id: int) -> list[dict]:
    async with NotificationRepository(pool).reading() as ledger:
        return await ledger.delivery_rows(conference_id)


async def mail_calendar(pool: asyncpg.Pool, conference_id: int) -> dict | None:
    async with NotificationRepository(pool).reading() as ledger:
        return await ledger.calendar(conference_id)


# ----------------------------------------------------------------------------- tests


async def test_invitation_reminder_update_and_cancellation_arrive(smtp: SmtpServer, settings: Settings,
                                                                  mail_database: str,
                                                                  instances: list[NotifierInstance]) -> None:
    mail = await open_instance(instances, mail_settings(settings, mail_database, smtp.port), start=True)
    instance = instances[0]
    pool = instance.engine.pool
    owner = await make_account(pool)
    # the reminder (1 minute lead) falls due 3 seconds from now
    starts_at = (datetime.now(UTC) + timedelta(seconds=63)).replace(microsecond=0)
    conference = await make_conference(pool, owner, starts_at, reminder=1)
    all_messages: list[Received] = []

    await instance.publish("conference.scheduled", conference.id)
    invitations = by_recipient(await smtp.handler.collect(3))
    all_messages += invitations.values()
    assert set(invitations) == {"petr@example.org", "anna@example.org", "chair@example.org"}
    for address, item in invitations.items():
        assert item.kind == "invitation"
        method, event = item.calendar_event()
        assert method == "REQUEST" and item.texts()["method"] == "REQUEST"
        assert int(event["SEQUENCE"]) == 0
        assert event.decoded("DTSTART") == starts_at and event.decoded("DTSTART").utcoffset() == timedelta(0)
        assert event.decoded("DTEND") == conference.ends_at
        assert "DTSTART:" + starts_at.strftime("%Y%m%dT%H%M%SZ") in item.texts()["ics"]
        assert conference.conference_number in str(event["LOCATION"]) and "7000" in str(event["LOCATION"])
        assert conference.guest_pin in str(event["DESCRIPTION"])
        assert conference.guest_pin in item.texts()["text/plain"]
        assert item.texts()["subject"] == "Приглашение на конференцию: Планёрка"
        if address == "chair@example.org":
            assert conference.chair_pin in item.texts()["text/plain"]
            assert conference.chair_pin in str(event["DESCRIPTION"])
    uid = str(invitations["petr@example.org"].calendar_event()[1]["UID"])
    assert {str(item.calendar_event()[1]["UID"]) for item in invitations.values()} == {uid}

    reminders = by_recipient(await smtp.handler.collect(3))
    all_messages += reminders.values()
    due = starts_at - timedelta(minutes=1)
    for item in reminders.values():
        assert item.kind == "reminder"
        assert abs((item.at - due).total_seconds()) <= 30
        assert "Напоминание" in item.texts()["subject"]

    new_start = starts_at + timedelta(hours=2)
    await pool.execute("UPDATE conferences SET starts_at = $2, ends_at = $3 WHERE id = $1",
                       conference.id, new_start, new_start + timedelta(minutes=30))
    await instance.publish("conference.updated", conference.id, changed=["start"])
    updates = by_recipient(await smtp.handler.collect(3))
    all_messages += updates.values()
    for item in updates.values():
        method, event = item.calendar_event()
        assert item.kind == "update" and method == "REQUEST"
        assert str(event["UID"]) == uid and int(event["SEQUENCE"]) == 1
        assert event.decoded("DTSTART") == new_start

    await pool.execute("UPDATE conferences SET state = 'cancelled', cancelled_at = now() WHERE id = $1",
                       conference.id)
    await instance.publish("conference.cancelled", conference.id)
    cancellations = by_recipient(await smtp.handler.collect(3))
    all_messages += cancellations.values()
    for item in cancellations.values():
        method, event = item.calendar_event()
        assert item.kind == "cancellation" and method == "CANCEL" and item.texts()["method"] == "CANCEL"
        assert str(event["UID"]) == uid and int(event["SEQUENCE"]) == 2
        assert str(event["STATUS"]) == "CANCELLED"

    assert_no_chair_pin_for_guests(all_messages, conference.chair_pin)
    await mail.stop()  # lets the worker record the last acceptance
    assert smtp.handler.received.empty()

    statuses = await mail.delivery.delivery_status(owner, conference.id)
    sent = [s for s in statuses if s["email"]]
    assert len(sent) == 12 and {s["status"] for s in sent} == {"sent"}
    assert {s["kind"] for s in sent} == {"invitation", "reminder", "update", "cancellation"}
    petr = conference.participant_ids["petr@example.org"]
    assert {s["kind"] for s in sent if s["participant_id"] == petr} == {"invitation", "reminder", "update",
                                                                         "cancellation"}
    no_mail = [s for s in statuses if not s["email"]]
    assert [(s["participant_id"], s["status"]) for s in no_mail] == [
        (conference.participant_ids["Без почты"], "not_available")]
    with pytest.raises(NotFound):
        await mail.delivery.delivery_status(owner + 1000, conference.id)
    assert [c["name"] for c in mail.delivery.channels() if not c["available"]] == ["sms"]


async def test_late_reminder_is_sent_and_a_very_late_one_skipped(smtp: SmtpServer, settings: Settings,
                                                                 mail_database: str,
                                                                 instances: list[NotifierInstance],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The engine was down while two reminders fell due: one 30 s ago (within the window) is sent,
    one 20 minutes ago (beyond the 10 minute window) is skipped and logged."""
    mail = await open_instance(instances, mail_settings(settings, mail_database, smtp.port))
    pool = instances[0].engine.pool
    owner = await make_account(pool, email_address=None, language="en")
    now = datetime.now(UTC)
    slightly_late = await make_conference(pool, owner, now + timedelta(seconds=30), reminder=1,
                                          guests=(("Petr", "late-petr@example.org"),))
    very_late = await make_conference(pool, owner, now + timedelta(minutes=40), reminder=60,
                                      guests=(("Anna", "late-anna@example.org"),))
    with caplog.at_level(logging.WARNING, logger="engine.services.notifier"):
        assert await mail.notifier.sweep(now) >= 2  # what a starting engine does first
        assert await mail.notifier.process_reminders(now) == 1
        assert await mail.notifier.process_reminders(now + timedelta(seconds=1)) == 0  # handled once
    assert any("skipped" in r.message and str(very_late.id) in r.getMessage() for r in caplog.records)
    while await mail.delivery.deliver_due(now):
        pass
    received = await smtp.handler.collect(3)
    kinds = sorted((item.recipients[0], item.kind) for item in received)
    assert kinds == [("late-anna@example.org", "invitation"), ("late-petr@example.org", "invitation"),
                     ("late-petr@example.org", "reminder")]
    reminder = next(item for item in received if item.kind == "reminder")
    assert reminder.texts()["subject"].startswith("Reminder: ")  # the owner's language
    assert "the conference starts in 1 min" in reminder.texts()["text/plain"]  # the real time left
    calendar = await mail_calendar(pool, very_late.id)
    assert calendar["reminder_outcome"] == "skipped"
    assert (await mail_calendar(pool, slightly_late.id))["reminder_outcome"] == "queued"


async def test_refusals_are_retried_then_failed_with_the_servers_answer(smtp: SmtpServer, settings: Settings,
                                                                        mail_database: str,
                                                                        instances: list[NotifierInstance]) -> None:
    mail = await open_instance(instances, mail_settings(settings, mail_database, smtp.port))
    instance = instances[0]
    pool = instance.engine.pool
    owner = await make_account(pool, email_address=None)
    conference = await make_conference(pool, owner, datetime.now(UTC) + timedelta(days=1), guests=(
        ("Busy", "busy@example.org"), ("Then gone", "gone@example.org")))
    smtp.handler.refuse = {"busy@example.org": "451 4.3.0 Mailbox busy, try later",
                           "gone@example.org": "451 4.3.0 Greylisted, try later"}
    await instance.publish("conference.scheduled", conference.id)
    now = datetime.now(UTC)

    assert await mail.delivery.deliver_due(now) == 2
    rows = {r["recipient"]: r for r in await outbox(pool, conference.id)}
    assert {r["status"] for r in rows.values()} == {"retrying"}
    assert rows["busy@example.org"]["last_error"] == "451 4.3.0 Mailbox busy, try later"
    status = {s["email"]: s for s in await mail.delivery.delivery_status(owner, conference.id)}
    assert status["busy@example.org"]["status"] == "retrying"
    assert await mail.delivery.deliver_due(now) == 0  # not due before the back-off

    smtp.handler.refuse["gone@example.org"] = "550 5.1.1 No such user here"
    later = now + timedelta(hours=1)
    assert await mail.delivery.deliver_due(later) == 2
    rows = {r["recipient"]: r for r in await outbox(pool, conference.id)}
    assert rows["gone@example.org"]["status"] == "failed"  # 5xx: no further tries
    assert rows["gone@example.org"]["last_error"] == "550 5.1.1 No such user here"
    assert rows["gone@example.org"]["attempts"] == 2
    assert rows["busy@example.org"]["status"] == "retrying"

    assert await mail.delivery.deliver_due(later + timedelta(hours=1)) == 1
    rows = {r["recipient"]: r for r in await outbox(pool, conference.id)}
    assert rows["busy@example.org"]["status"] == "failed"  # 3 tries of 4xx: given up
    assert rows["busy@example.org"]["attempts"] == 3
    assert rows["busy@example.org"]["last_error"] == "451 4.3.0 Mailbox busy, try later"
    assert await mail.delivery.deliver_due(later + timedelta(days=1)) == 0
    assert smtp.handler.rcpt_attempts == Counter({"busy@example.org": 3, "gone@example.org": 2})
    assert smtp.handler.received.empty()
    status = {s["email"]: s for s in await mail.delivery.delivery_status(owner, conference.id)}
    assert status["gone@example.org"] | {"status": "failed", "last_error": "550 5.1.1 No such user here"} \
        == status["gone@example.org"]


async def test_unreachable_server_is_retried_then_failed(settings: Settings, mail_database: str,
                                                         instances: list[NotifierInstance]) -> None:
    down_port = free_port()  # nothing listens here
    mail = await open_instance(instances, mail_settings(settings, mail_database, down_port))
    instance = instances[0]
    pool = instance.engine.pool
    owner = await make_account(pool, email_address=None)
    conference = await make_conference(pool, owner, datetime.now(UTC) + timedelta(days=1),
                                       guests=(("Petr", "down-petr@example.org"), ("Anna", "down-anna@example.org")))
    await instance.publish("conference.scheduled", conference.id)
    moment = datetime.now(UTC)
    for attempt in (1, 2, 3):
        assert await mail.delivery.deliver_due(moment) == 2
        rows = await outbox(pool, conference.id)
        assert {r["attempts"] for r in rows} == {attempt}
        assert all("Connect" in r["last_error"] and str(down_port) in r["last_error"] for r in rows), rows
        moment += timedelta(hours=1)
    assert {r["status"] for r in await outbox(pool, conference.id)} == {"failed"}


async def test_restart_between_attempts_neither_loses_nor_duplicates(smtp: SmtpServer, settings: Settings,
                                                                     mail_database: str,
                                                                     instances: list[NotifierInstance]) -> None:
    config = mail_settings(settings, mail_database, smtp.port, mail_retry_base_seconds=600.0,
                           mail_retry_max_seconds=600.0)
    first = await open_instance(instances, config)
    pool = instances[0].engine.pool
    owner = await make_account(pool)
    conference = await make_conference(pool, owner, datetime.now(UTC) + timedelta(days=1), guests=(
        ("Petr", "r-petr@example.org"), ("Anna", "r-anna@example.org")))
    smtp.handler.refuse = {"r-anna@example.org": "421 4.7.0 Try again later"}
    await instances[0].publish("conference.scheduled", conference.id)
    now = datetime.now(UTC)
    assert await first.delivery.deliver_due(now) == 3
    delivered = await smtp.handler.collect(2)
    assert sorted(item.recipients[0] for item in delivered) == ["chair@example.org", "r-petr@example.org"]
    # A participant is added; the first engine claims the new invitation and dies before sending it.
    await pool.execute("INSERT INTO participants (conference_id, number, name, email) "
                       "VALUES ($1, '375291112233', 'Oleg', 'r-oleg@example.org')", conference.id)
    await instances[0].publish("participant.added", conference.id)
    now = datetime.now(UTC)
    claimed = await NotificationRepository(pool).claim_due(first.delivery.worker_id, now, timedelta(seconds=300), 10)
    assert [row["recipient"] for row in claimed] == ["r-oleg@example.org"]
    await instances[0].close(graceful=False)

    smtp.handler.refuse = {}
    second = await open_instance(instances, config)
    assert await second.notifier.sweep(now) == 0  # nothing is queued twice
    assert await second.notifier.process_reminders(now) == 0
    assert await second.delivery.deliver_due(now) == 0  # Anna's back-off and Oleg's lease still run
    later = now + timedelta(hours=1)
    assert await second.delivery.deliver_due(later) == 2
    delivered += await smtp.handler.collect(2)
    assert await second.delivery.deliver_due(later + timedelta(hours=1)) == 0
    await second.start()  # the running loops find nothing left either
    await second.stop()
    assert smtp.handler.received.empty()
    by_address = Counter(item.recipients[0] for item in delivered)
    assert by_address == Counter({"chair@example.org": 1, "r-petr@example.org": 1, "r-anna@example.org": 1,
                                  "r-oleg@example.org": 1})
    assert len({item.message["Message-ID"] for item in delivered}) == 4
    assert {r["status"] for r in await outbox(instances[1].engine.pool, conference.id)} == {"sent"}
    assert_no_chair_pin_for_guests(delivered, conference.chair_pin)


async def test_removed_participant_gets_a_cancellation_and_a_new_one_an_invitation(
        smtp: SmtpServer, settings: Settings, mail_database: str, instances: list[NotifierInstance]) -> None:
    mail = await open_instance(instances, mail_settings(settings, mail_database, smtp.port))
    instance = instances[0]
    pool = instance.engine.pool
    owner = await make_account(pool, email_address=None)
    conference = await make_conference(pool, owner, datetime.now(UTC) + timedelta(days=1), guest_pin_required=False,
                                       guests=(("Petr", "m-petr@example.org"),))
    await instance.publish("conference.scheduled", conference.id)
    # the participant list is replaced (as the conference service's update does)
    await pool.execute("DELETE FROM participants WHERE conference_id = $1", conference.id)
    await pool.execute("INSERT INTO participants (conference_id, number, name, email) "
                       "VALUES ($1, '375291112244', 'Anna', 'm-anna@example.org')", conference.id)
    await instance.publish("conference.updated", conference.id, changed=["participants"])
    while await mail.delivery.deliver_due():
        pass
    received = {(item.recipients[0], item.kind): item for item in await smtp.handler.collect(3)}
    assert set(received) == {("m-petr@example.org", "invitation"), ("m-petr@example.org", "cancellation"),
                             ("m-anna@example.org", "invitation")}
    assert received[("m-petr@example.org", "cancellation")].calendar_event()[0] == "CANCEL"
    text = received[("m-anna@example.org", "invitation")].texts()["text/plain"]
    assert "PIN участника не нужен" in text and conference.guest_pin not in text
    assert_no_chair_pin_for_guests(list(received.values()), conference.chair_pin)
    anna = await pool.fetchval("SELECT id FROM participants WHERE email = 'm-anna@example.org'")
    statuses = {(s["email"], s["kind"]): s for s in await mail.delivery.delivery_status(owner, conference.id)}
    assert statuses[("m-anna@example.org", "invitation")]["participant_id"] == anna
    assert statuses[("m-petr@example.org", "cancellation")]["participant_id"] is None  # no longer listed


async def test_starttls_and_login(settings: Settings, mail_database: str, instances: list[NotifierInstance],
                                  tmp_path: Path) -> None:
    """STARTTLS with a verified certificate and AUTH LOGIN/PLAIN from the smtp_* settings; wrong
    credentials are the server's 535, kept as the reason."""
    cert_path, key_path = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)

    def authenticate(server, session, envelope, mechanism: str, auth_data: object) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"veche", b"s3cret")
        return AuthResult(success=ok, handled=False, auth_data=auth_data)  # not handled: the server answers 535

    async with smtp_server(tls_context=server_tls, require_starttls=True, auth_required=True,
                           authenticator=authenticate) as server:
        secure = mail_settings(settings, mail_database, server.port, smtp_starttls=True, smtp_ca_file=str(cert_path),
                               smtp_user="veche", smtp_password="s3cret")
        mail = await open_instance(instances, secure)
        pool = instances[0].engine.pool
        owner = await make_account(pool, email_address=None)
        conference = await make_conference(pool, owner, datetime.now(UTC) + timedelta(days=1),
                                           guests=(("Petr", "tls-petr@example.org"),))
        await instances[0].publish("conference.scheduled", conference.id)
        assert await mail.delivery.deliver_due() == 1
        received = await server.handler.next()
        assert received.recipients == ["tls-petr@example.org"] and received.tls and received.login == "veche"

        wrong = await open_instance(instances, secure.with_(smtp_password="wrong"))
        other = await make_conference(pool, owner, datetime.now(UTC) + timedelta(days=1),
                                      guests=(("Anna", "tls-anna@example.org"),))
        await wrong.notifier.reconcile(other.id)
        assert await wrong.delivery.deliver_due() == 1
        [row] = await outbox(pool, other.id)
        assert row["status"] == "failed" and row["last_error"].startswith("535 ")
        assert server.handler.received.empty()


@pytest.mark.stack
async def test_with_the_conference_service(smtp: SmtpServer, settings: Settings, engine) -> None:
    """Invitation, update and cancellation driven by engine.services.planning."""
    planning = engine.services.planning
    original = Mail(engine.services.notifier, engine.services.mail_delivery)
    await original.stop()
    mail = Mail.build(mail_settings(settings, settings.database_url, smtp.port), engine.pool, engine.bus)
    await mail.start()
    try:
        ours = {"svc-petr@example.org", "svc-chair@example.org"}
        owner = await make_account(engine.pool, email_address="svc-chair@example.org", language="en",
                                   timezone="Europe/London")
        start = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
        planned = await planning.plan(owner, ConferencePlan(
            subject="Quarterly review", start=start, duration_minutes=30, max_participants=5,
            participants=(ParticipantPlan("375291234567", "Petr", "svc-petr@example.org"),
                          ParticipantPlan("375291234568", "No mail")),
            reminder_minutes=15, timezone="Europe/London", notify_participants=True))
        invitations = by_recipient(await smtp.handler.collect_for(ours, 2))
        assert set(invitations) == {"svc-petr@example.org", "svc-chair@example.org"}
        method, event = invitations["svc-petr@example.org"].calendar_event()
        assert method == "REQUEST" and int(event["SEQUENCE"]) == 0 and event.decoded("DTSTART") == start
        assert planned.conference_number in invitations["svc-petr@example.org"].texts()["text/plain"]
        assert planned.chair_pin in invitations["svc-chair@example.org"].texts()["text/plain"]

        await planning.update(owner, planned.id, {"start": start + timedelta(hours=1)})
        updates = by_recipient(await smtp.handler.collect_for(ours, 2))
        method, event = updates["svc-petr@example.org"].calendar_event()
        assert method == "REQUEST" and int(event["SEQUENCE"]) == 1
        assert event.decoded("DTSTART") == start + timedelta(hours=1)

        await planning.cancel(owner, planned.id)
        cancellations = by_recipient(await smtp.handler.collect_for(ours, 2))
        method, event = cancellations["svc-petr@example.org"].calendar_event()
        assert method == "CANCEL" and int(event["SEQUENCE"]) == 2
        assert_no_chair_pin_for_guests([*invitations.values(), *updates.values(), *cancellations.values()],
                                       planned.chair_pin, chair="svc-chair@example.org")
        await mail.stop()  # lets the worker record the last acceptance
        statuses = await mail.delivery.delivery_status(owner, planned.id)
        assert {s["status"] for s in statuses if s["email"]} == {"sent"}
        assert [s["status"] for s in statuses if not s["email"]] == ["not_available"]
    finally:
        await mail.stop()
        await original.start()
