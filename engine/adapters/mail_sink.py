"""The local mail sink: an SMTP server (aiosmtpd) on loopback that accepts every message and keeps
it as one .eml file under run/mail/, and the reader the operator's Outbox page lists them with.
It stands in for a mail server when none is configured, so a newcomer sees the mail Veche sends."""

from __future__ import annotations

import email
import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)

MESSAGE_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-f]{8}\.eml$")
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
MAX_LISTED = 500  # newest messages the Outbox page lists


class _KeepHandler:
    """aiosmtpd handler: every message is written to ``directory`` (temporary file, then renamed,
    so a reader never sees half a message)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook)
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{secrets.token_hex(4)}.eml"
        envelope_lines = (f"X-Veche-Envelope-From: {envelope.mail_from}\r\n"
                          f"X-Veche-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n").encode()
        temporary = self.directory / f".{name}.part"
        temporary.write_bytes(envelope_lines + raw)
        os.replace(temporary, self.directory / name)
        log.info("mail sink kept %s for %s", name, ", ".join(envelope.rcpt_tos))
        return "250 2.0.0 Kept in the local mail sink"


class MailSink:
    """``start()`` listens on a free loopback port (returned); ``stop()`` closes it."""

    host = "127.0.0.1"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._controller: Controller | None = None

    def start(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO
        with socket.socket() as probe:
            probe.bind((self.host, 0))
            port = probe.getsockname()[1]
        self._controller = Controller(_KeepHandler(self.directory), hostname=self.host, port=port,
                                      data_size_limit=MAX_MESSAGE_BYTES)
        self._controller.start()
        log.debug("no VECHE_SMTP_HOST: mail is kept in %s (local SMTP sink on %s:%s)", self.directory,
                 self.host, port)
        return port

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()


@dataclass
class KeptMessage:
    """One message of the sink, decoded for the Outbox page (never rendered as HTML there)."""

    name: str
    received_at: datetime
    headers: list[tuple[str, str]]
    subject: str = ""
    sender: str = ""
    recipients: str = ""
    text: str = ""
    html: str = ""
    calendar: str = ""
    attachments: list[str] = field(default_factory=list)


def _decoded(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError, KeyError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)


def _received_at(name: str) -> datetime:
    return datetime.strptime(name[:23], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)


def parse_message(name: str, raw: bytes) -> KeptMessage:
    message = email.message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    kept = KeptMessage(name=name, received_at=_received_at(name),
                       headers=[(key, str(value)) for key, value in message.items()],
                       subject=str(message.get("Subject", "")), sender=str(message.get("From", "")),
                       recipients=str(message.get("X-Veche-Envelope-To", "") or message.get("To", "")))
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        if content_type == "text/calendar":
            kept.calendar = _decoded(part)
        elif part.get_filename():
            kept.attachments.append(part.get_filename())
        elif content_type == "text/plain" and not kept.text:
            kept.text = _decoded(part)
        elif content_type == "text/html" and not kept.html:
            kept.html = _decoded(part)
    return kept


class MailSinkReader:
    """Reads the sink's directory; a name is used only if it has the sink's own shape."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        found = [path.name for path in self.directory.iterdir() if MESSAGE_NAME.match(path.name)]
        return sorted(found, reverse=True)[:MAX_LISTED]

    def read(self, name: str) -> KeptMessage | None:
        if not MESSAGE_NAME.match(name):
            return None
        path = self.directory / name
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
        return parse_message(name, raw)
