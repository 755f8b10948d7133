"""The outbox worker (engine/services/mail_delivery.py) over fakes of our own interfaces (the
outbox repository and the Mailer): what an accepted, refused or unreachable send does to each
claimed row, the back-off of a retry and the last attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.adapters.mail import SendResult
from engine.config import Settings
from engine.domain.notifications import SmtpOutcome
from engine.services.mail_delivery import MailDelivery

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class FakeOutbox:
    """The outbox rows the worker claims, and what it records about each."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    recorded: dict[int, tuple[str, Any]] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)

    def add(self, recipient: str, attempts: int = 1) -> None:
        self.rows.append({"id": len(self.rows) + 1, "recipient": recipient, "sender": "veche@example.org",
                          "message": b"Subject: hi\r\n\r\nhi\r\n", "attempts": attempts, "kind": "invitation",
                          "conference_id": 7})

    async def claim_due(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[dict[str, Any]]:
        claimed, self.rows = self.rows[:limit], self.rows[limit:]
        return claimed

    async def mark_sent(self, outbox_id: int, worker: str, now: datetime) -> bool:
        self.recorded[outbox_id] = ("sent", None)
        return True

    async def mark_retry(self, outbox_id: int, worker: str, error: str, next_attempt_at: datetime) -> None:
        self.recorded[outbox_id] = ("retrying", next_attempt_at)

    async def mark_failed(self, outbox_id: int, worker: str, error: str) -> None:
        self.recorded[outbox_id] = ("failed", error)

    async def release(self, outbox_ids: list[int], worker: str) -> None:
        self.released += outbox_ids


class FakeMailer:
    """An SMTP session whose server answers each recipient as ``answers`` says (accepts the rest)."""

    def __init__(self, answers: dict[str, SendResult]) -> None:
        self.answers = answers
        self.sent: list[str] = []

    def __call__(self, settings: Settings) -> FakeMailer:
        return self

    async def __aenter__(self) -> FakeMailer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        self.sent.append(recipient)
        return self.answers.get(recipient, SendResult(SmtpOutcome.SENT, "250 OK", 250))

    async def close(self) -> None:
        return None


def worker(outbox: FakeOutbox, mailer: FakeMailer, **settings: Any) -> MailDelivery:
    configured = Settings(test_mode=True).with_(mail_retry_base_seconds=60.0, mail_retry_max_seconds=600.0,
                                                mail_max_attempts=3, **settings)
    return MailDelivery(configured, outbox, mailer=mailer)  # type: ignore[arg-type]


async def test_accepted_refused_and_busy_recipients_are_recorded_each_on_its_own() -> None:
    outbox = FakeOutbox()
    for address in ("ok@example.org", "gone@example.org", "busy@example.org", "tired@example.org"):
        outbox.add(address, attempts=3 if address.startswith("tired") else 2)
    mailer = FakeMailer({
        "gone@example.org": SendResult(SmtpOutcome.PERMANENT, "550 no such user", 550),
        "busy@example.org": SendResult(SmtpOutcome.TEMPORARY, "451 try later", 451),
        "tired@example.org": SendResult(SmtpOutcome.TEMPORARY, "451 try later", 451)})
    assert await worker(outbox, mailer).deliver_due(NOW) == 4
    assert outbox.recorded == {
        1: ("sent", None),
        2: ("failed", "550 no such user"),
        3: ("retrying", NOW + timedelta(seconds=120)),  # the second attempt waits twice the base
        4: ("failed", "451 try later"),  # the last allowed attempt
    }
    assert outbox.released == []


async def test_an_unreachable_server_is_tried_once_per_pass() -> None:
    outbox = FakeOutbox()
    for address in ("a@example.org", "b@example.org", "c@example.org"):
        outbox.add(address)
    unreachable = SendResult(SmtpOutcome.TEMPORARY, "connection refused")
    mailer = FakeMailer({address: unreachable for address in ("a@example.org", "b@example.org", "c@example.org")})
    assert await worker(outbox, mailer).deliver_due(NOW) == 3
    assert mailer.sent == ["a@example.org"]
    assert {state for state, _ in outbox.recorded.values()} == {"retrying"}


async def test_nothing_due_opens_no_session() -> None:
    mailer = FakeMailer({})
    assert await worker(FakeOutbox(), mailer).deliver_due(NOW) == 0
    assert mailer.sent == []
