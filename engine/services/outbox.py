"""The operator's view of the local mail sink (run/mail/): which messages Veche sent while no
mail server was configured, each with its headers, text, HTML and calendar part."""

from __future__ import annotations

import asyncio

from engine.adapters.mail_sink import KeptMessage, MailSinkReader
from engine.domain.errors import NotFound


class MailOutbox:
    """Read-only; ``enabled`` is False when a real SMTP server is set."""

    def __init__(self, reader: MailSinkReader, enabled: bool) -> None:
        self.reader = reader
        self.enabled = enabled

    async def messages(self) -> list[KeptMessage]:
        """The kept messages, newest first."""
        names = await asyncio.to_thread(self.reader.names)
        found = [await asyncio.to_thread(self.reader.read, name) for name in names]
        return [message for message in found if message is not None]

    async def message(self, name: str) -> KeptMessage:
        found = await asyncio.to_thread(self.reader.read, name)
        if found is None:
            raise NotFound("no such message")
        return found

