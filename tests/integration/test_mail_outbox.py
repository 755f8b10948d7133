"""The local mail sink of ``python -m engine run``: with no VECHE_SMTP_HOST the invitation a
customer's conference sends is kept as an .eml under run/mail/, and the operator's Outbox page
lists it with its headers, text, sandboxed HTML and calendar; with VECHE_PRODUCTION=1 the engine
refuses to start without a mail server (one-line error)."""

from __future__ import annotations

import asyncio
import email
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from email.policy import default
from pathlib import Path

import asyncpg
import icalendar
import pytest

from engine.config import Settings
from engine.stack import PROJECT_ROOT
from tests.integration.test_run_command import RunCommand, api, cli
from tests.support.factories import random_phone
from tests.support.portal import PortalClient

CAPTCHA_ID = re.compile(r'name="captcha_id" value="([^"]+)"')


async def test_production_refuses_the_mail_sink(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VECHE_") and k not in ("DATABASE_URL", "ASTERISK_AMI_URL")}
    env.update(VECHE_PRODUCTION="1", VECHE_RUN_DIR=str(tmp_path / "run"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "run", cwd=PROJECT_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2, (out, err)
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "VECHE_SMTP_HOST" in lines[0], lines
    assert not (tmp_path / "run" / "mail").exists()


def kept(mail_dir: Path) -> list[Path]:
    return sorted(mail_dir.glob("*.eml")) if mail_dir.is_dir() else []


async def kept_messages(mail_dir: Path, count: int, timeout: float = 60.0) -> list[Path]:
    """Wait (polling the directory, with a deadline) until ``count`` messages are kept."""
    async with asyncio.timeout(timeout):
        while True:
            found = await asyncio.to_thread(kept, mail_dir)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.2)  # files have no event to await; polled with a deadline


async def portal_login(client: PortalClient, database_url: str, phone: str, password: str) -> None:
    """Log in through the real login form; the CAPTCHA's answer is read from the run's database."""
    form = await client.get("/login")
    captcha_id = CAPTCHA_ID.search(form.text).group(1)
    conn = await asyncpg.connect(database_url)
    try:
        answer = await conn.fetchval("SELECT answer FROM captchas WHERE id = $1", captcha_id)
    finally:
        await conn.close()
    page = await client.post("/login", {"phone": phone, "password": password, "captcha_id": captcha_id,
                                        "captcha": answer, "next": "/operator/outbox"}, token=form.csrf)
    assert page.url.endswith("/operator/outbox"), page.text[-500:]


@pytest.mark.stack
async def test_run_sink(tmp_path: Path, settings: Settings) -> None:
    run = RunCommand(tmp_path / "run", settings.cache_dir)
    mail_dir = run.run_dir / "mail"
    client = PortalClient(run.url, None)
    try:
        await run.start()
        assert run.database_url
        customer, operator = random_phone(), random_phone()
        await cli(run.database_url, "account", "create", customer, "--password-stdin", "--email",
                  "owner@example.org", stdin="sink-customer-2026\n")
        await cli(run.database_url, "account", "create", operator, "--password-stdin", "--role", "operator",
                  stdin="sink-operator-2026\n")
        token = (await cli(run.database_url, "token", "create", customer)).strip()
        start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
        conference = await api(run, token, "POST", "/conferences", {
            "subject": "Sink <b>check</b>", "start": start.isoformat(), "duration_minutes": 30,
            "max_participants": 2, "notify_participants": True,
            "participants": [{"number": "375291234567", "name": "Petr", "email": "petr@example.org"}]})
        paths = await kept_messages(mail_dir, 2)
        messages = {}
        for path in paths:
            message = email.message_from_bytes(path.read_bytes(), policy=default)
            messages[str(message["X-Veche-Envelope-To"])] = message
        assert set(messages) == {"petr@example.org", "owner@example.org"}
        invitation = messages["petr@example.org"]
        [ics] = [part for part in invitation.walk() if part.get_content_type() == "text/calendar"]
        event = icalendar.Calendar.from_ical(ics.get_payload(decode=True)).walk("VEVENT")[0]
        assert event.decoded("DTSTART") == start
        assert conference["chair_pin"] not in invitation.as_string()

        await portal_login(client, run.database_url, operator, "sink-operator-2026")
        listing = await client.get("/operator/outbox")
        assert listing.status == 200
        name = next(path.name for path in paths
                    if "petr@example.org" in path.read_text(errors="replace").split("\n\n", 1)[0])
        assert name in listing.text and "petr@example.org" in listing.text
        assert "Sink &lt;b&gt;check&lt;/b&gt;" in listing.text  # the subject is escaped, never markup
        detail = await client.get(f"/operator/outbox/{name}")
        assert detail.status == 200
        assert "BEGIN:VCALENDAR" in detail.text and conference["conference_number"] in detail.text
        assert 'sandbox src="/operator/outbox/' in detail.text
        assert "<b>check</b>" not in detail.text
        html = await client.get(f"/operator/outbox/{name}/body.html")
        assert html.status == 200
        assert html.headers["Content-Security-Policy"].startswith("sandbox;")
        ics_file = await client.get(f"/operator/outbox/{name}/invite.ics")
        assert ics_file.status == 200 and ics_file.headers["Content-Type"].startswith("text/plain")

        customer_client = PortalClient(run.url, None)
        try:
            form = await customer_client.get("/login")
            captcha_id = CAPTCHA_ID.search(form.text).group(1)
            conn = await asyncpg.connect(run.database_url)
            try:
                answer = await conn.fetchval("SELECT answer FROM captchas WHERE id = $1", captcha_id)
            finally:
                await conn.close()
            await customer_client.post("/login", {"phone": customer, "password": "sink-customer-2026",
                                                  "captcha_id": captcha_id, "captcha": answer, "next": "/"},
                                       token=form.csrf)
            assert (await customer_client.get("/operator/outbox")).status == 403  # operators only
        finally:
            await customer_client.close()
        await run.interrupt()
    finally:
        await client.close()
        await run.cleanup()
