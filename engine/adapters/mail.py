"""SMTP delivery through aiosmtplib: one connection reused for a batch of stored messages, each
outcome classified (accepted / temporary / permanent) with the server's own answer kept."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiosmtplib

from engine.config import Settings
from engine.domain.notifications import SmtpOutcome, classify_smtp_code

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    outcome: SmtpOutcome
    reply: str  # "250 OK", "451 4.3.0 try later", "connection refused: ..."
    code: int | None = None


class SmtpMailer:
    """Sends pre-rendered MIME messages. Use as ``async with mailer: await mailer.send(...)``;
    after any failure the connection is dropped and the next send opens a fresh one."""

    name = "email"
    available = True
    unavailable_reason = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> SmtpMailer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        settings = self.settings
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host, port=settings.smtp_port, timeout=settings.smtp_timeout,
            use_tls=settings.smtp_tls, start_tls=True if settings.smtp_starttls else False,
            cert_bundle=settings.smtp_ca_file, username=settings.smtp_user, password=settings.smtp_password)
        await client.connect()
        self._client = client
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        """Hand one message to the server. SENT only when the server accepted DATA."""
        try:
            client = self._client if self._client is not None and self._client.is_connected \
                else await self._connect()
            responses, data_reply = await client.sendmail(sender, [recipient], raw)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await self._drop()
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused is not None else None
            reply = f"{code} {refused.message}" if refused is not None else str(exc)
            return SendResult(classify_smtp_code(code), reply, code)
        except aiosmtplib.SMTPResponseException as exc:
            await self._drop()
            return SendResult(classify_smtp_code(exc.code), f"{exc.code} {exc.message}", exc.code)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # connection refused / dropped / timed out: no answer from a server, worth a retry
            await self._drop()
            detail = str(exc) or type(exc).__name__
            return SendResult(SmtpOutcome.TEMPORARY, f"{type(exc).__name__}: {detail}")
        refused = responses.get(recipient)
        if refused is not None and refused.code >= 400:
            return SendResult(classify_smtp_code(refused.code), f"{refused.code} {refused.message}", refused.code)
        return SendResult(SmtpOutcome.SENT, data_reply, 250)
