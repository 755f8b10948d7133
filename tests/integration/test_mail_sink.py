"""The local mail sink on its own: a message sent over SMTP (aiosmtplib to the aiosmtpd sink) is
kept as one .eml, read back with headers, text, HTML and calendar; names that are not the sink's
own (path tricks) are never opened."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from engine.adapters.mail_sink import MailSink, MailSinkReader


async def test_sink_keeps_one_file_per_message(tmp_path: Path) -> None:
    directory = tmp_path / "mail"
    sink = MailSink(directory)
    port = await asyncio.to_thread(sink.start)
    try:
        for number in range(2):
            message = EmailMessage()
            message["From"] = "veche@example.org"
            message["To"] = f"user{number}@example.org"
            message["Subject"] = f"Приглашение {number}"
            message.set_content("Текст письма")
            message.add_alternative("<p>HTML <b>body</b></p>", subtype="html")
            message.add_attachment(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", maintype="text", subtype="calendar",
                                   filename="invite.ics")
            await aiosmtplib.send(message, hostname="127.0.0.1", port=port)
    finally:
        await asyncio.to_thread(sink.stop)
    reader = MailSinkReader(directory)
    names = await asyncio.to_thread(reader.names)
    assert len(names) == 2 and names == sorted(names, reverse=True)
    kept = await asyncio.to_thread(reader.read, names[-1])
    assert kept is not None
    assert kept.subject == "Приглашение 0" and kept.recipients == "user0@example.org"
    assert kept.text.strip() == "Текст письма" and "<b>body</b>" in kept.html
    assert kept.calendar.startswith("BEGIN:VCALENDAR")
    assert ("X-Veche-Envelope-From", "veche@example.org") in kept.headers
    (tmp_path / "secret.eml").write_text("Subject: not the sink's\r\n\r\nsecret")
    for name in ("../secret.eml", "secret.eml", names[0] + "/..", "", "." + names[0]):
        assert await asyncio.to_thread(reader.read, name) is None
    assert not list(directory.glob(".*.part"))
