"""The one-line text rule at every entry and the notifier's isolation of failures, through the
real parts: arbitrary Unicode (drawn by hypothesis) in every one-line field through the real API
with the real notifier delivering to aiosmtpd; hostile text stored before the rule (legacy rows)
next to another customer's due reminder; the portal's form refusing a bare CR in both languages
and the conference card showing a message that could not be built."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from engine.config import Settings
from engine.domain import text
from engine.domain.text import TextRefused
from tests.integration import test_mail as harness
from tests.integration.test_mail import (
    Mail,
    NotifierInstance,
    SmtpServer,
    mail_settings,
    make_account,
    make_conference,
    open_instance,
)
from tests.support.api import ApiClient, new_user
from tests.support.portal import PortalClient, new_account

pytestmark = pytest.mark.stack

# the mail harness's fixtures: aiosmtpd on a free port, a database of its own, notifier instances
smtp, mail_database, instances = harness.smtp, harness.mail_database, harness.instances

FORBIDDEN = ["\r", "\n", "\t", "\x00", "\x0b", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029",
             "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]

ONE_LINE_TEXT = st.one_of(
    st.text(max_size=240),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=90, max_size=210),
    st.builds(lambda base, at, char: base[:at] + char + base[at:], st.text(max_size=60), st.integers(0, 60),
              st.sampled_from(FORBIDDEN)),
    st.sampled_from(["", "   ", "Board\rmeeting", "Board\u2028Bcc: victim@example.org", "\u202egnp.exe",
                     "Cafe\u0301", " trimmed ", "x" * 101, "x" * 201]),
)
FIELDS = ("subject", "participant_name", "contact_name", "room_name", "location", "template_name",
          "template_subject")


def draw_records(count: int) -> list[dict[str, str]]:
    """``count`` records of one drawn text per field (no example database, no shrinking: every
    drawn value is sent, the assertions run against the real stack afterwards)."""
    found: list[dict[str, str]] = []

    @seed(9)
    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({name: ONE_LINE_TEXT for name in FIELDS}))
    def collect(record: dict[str, str]) -> None:
        found.append(record)

    collect()
    return found[:count]


def verdict(value: str, limit: int, required: bool) -> str | None:
    """The normalised value, or None when the rule refuses it (checked against the stored value)."""
    try:
        return text.one_line(value, "f", limit=limit, required=required)
    except TextRefused:
        return None


def check_reply(reply: Any, fields: dict[str, tuple[str, int, bool]]) -> dict[str, str] | None:
    """A 201 when every field passes the rule (returns the normalised values), else a 422
    invalid_text naming a field whose value the rule refuses."""
    expected = {name: verdict(value, limit, required) for name, (value, limit, required) in fields.items()}
    if all(value is not None for value in expected.values()):
        assert reply.status == 201, (fields, reply.body)
        return expected  # type: ignore[return-value]
    assert reply.status == 422, (fields, reply.body)
    assert reply.error["code"] == "invalid_text" and reply.error["message"], reply.body
    assert reply.error["field"] in fields and expected[reply.error["field"]] is None, (fields, reply.body)
    return None


async def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await predicate()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_arbitrary_unicode_in_every_one_line_field(engine, api_server, smtp: SmtpServer,
                                                         settings: Settings) -> None:
    """Every field through the real API: accepted text is stored normalised, refused text gets
    422 naming the field; every accepted conference gets its delivery rows from the real notifier
    and its mail at aiosmtpd; the sweep and the reminder scan finish."""
    original = Mail(engine.services.notifier, engine.services.mail_delivery)
    await original.stop()
    mail = Mail.build(mail_settings(settings, settings.database_url, smtp.port), engine.pool, engine.bus)
    await mail.start()
    try:
        owner_mail = f"text-owner-{secrets.token_hex(4)}@example.org"
        user = await new_user(engine, api_server, email=owner_mail, max_concurrent_conferences=1000)
        api: ApiClient = user.api
        start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
        accepted: dict[int, str] = {}
        refused = 0
        for index, record in enumerate(draw_records(120)):
            guest = f"text-guest-{index}-{secrets.token_hex(3)}@example.org"
            reply = await api.post("/conferences", {
                "subject": record["subject"], "start": start, "duration_minutes": 30, "max_participants": 5,
                "notify_participants": True,
                "participants": [{"number": "375291234567", "name": record["participant_name"], "email": guest}]})
            values = check_reply(reply, {"subject": (record["subject"], 200, True),
                                         "participants[0].name": (record["participant_name"], 100, False)})
            if values is None:
                refused += 1
            else:
                assert reply.body["subject"] == values["subject"]
                assert reply.body["participants"][0]["name"] == values["participants[0].name"]
                accepted[reply.body["id"]] = guest
            reply = await api.post("/contacts", {"name": record["contact_name"], "number": "375291234567"})
            values = check_reply(reply, {"name": (record["contact_name"], 100, True)})
            if values is not None:
                assert reply.body["name"] == values["name"]
            reply = await api.post("/rooms", {"name": record["room_name"], "number": "375171234567",
                                              "location": record["location"]})
            values = check_reply(reply, {"name": (record["room_name"], 100, True),
                                         "location": (record["location"], 100, False)})
            if values is not None:
                assert (reply.body["name"], reply.body["location"]) == (values["name"], values["location"])
            reply = await api.post("/templates", {
                "name": record["template_name"], "subject": record["template_subject"],
                "participants": [{"number": "375291234567", "name": record["participant_name"]}]})
            values = check_reply(reply, {"name": (record["template_name"], 100, True),
                                         "subject": (record["template_subject"], 200, False),
                                         "participants[0].name": (record["participant_name"], 100, False)})
            if values is not None:
                assert (reply.body["name"], reply.body["subject"]) == (values["name"], values["subject"])
                # template names are unique per account: free the name for the next draw
                assert (await api.call("DELETE", f"/templates/{reply.body['id']}")).status == 204
        assert accepted and refused, (len(accepted), refused)

        async def all_sent() -> bool:
            rows = await engine.pool.fetch(
                "SELECT conference_id, recipient, status, last_error FROM mail_outbox "
                "WHERE conference_id = ANY($1::bigint[]) AND kind = 'invitation'", list(accepted))
            failed = [row for row in rows if row["status"] == "failed"]
            assert not failed, failed
            sent = {(row["conference_id"], row["recipient"]) for row in rows if row["status"] == "sent"}
            return all((cid, guest) in sent and (cid, owner_mail) in sent for cid, guest in accepted.items())

        await wait_for(all_sent, 120, "the invitations of every accepted conference")
        assert await asyncio.wait_for(mail.notifier.sweep(), 120) >= 0  # the sweep finishes
        assert await asyncio.wait_for(mail.notifier.process_reminders(), 120) >= 0
        for conference_id in accepted:
            statuses = await mail.delivery.delivery_status(user.account.id, conference_id)
            assert {s["status"] for s in statuses} == {"sent"}, statuses
    finally:
        await mail.stop()
        await original.start()


async def test_legacy_hostile_subject_fails_alone_and_the_other_reminder_is_on_time(
        smtp: SmtpServer, settings: Settings, mail_database: str, instances: list[NotifierInstance],
        caplog: pytest.LogCaptureFixture) -> None:
    """Rows written before the rule (straight into the database): a subject with U+2028, a
    participant name with a bare CR and an address with CRLF. Another customer's reminder falls
    due 4 s later and still goes out on time; the hostile messages are failed with a reason; the
    flattened name goes out; the scan never fails."""
    await open_instance(instances, mail_settings(settings, mail_database, smtp.port), start=False)
    pool = instances[0].engine.pool
    now = datetime.now(UTC)
    hostile_owner = await make_account(pool, email_address="legacy-chair@example.org", language="en")
    hostile = await make_conference(pool, hostile_owner, now + timedelta(seconds=61), reminder=1,
                                    guests=(("Eve", "legacy-eve@example.org"),))
    await pool.execute("UPDATE conferences SET subject = $2 WHERE id = $1", hostile.id,
                       "Board\u2028Bcc: victim@example.org")
    mixed = await make_conference(pool, hostile_owner, now + timedelta(seconds=62), reminder=1,
                                  guests=(("Ann\ra\u2028", "legacy-ann@example.org"),
                                          ("Mallory", "legacy-m@example.org\r\nRCPT TO:<victim@example.org>")))
    other_owner = await make_account(pool, email_address="other-chair@example.org", language="en")
    other = await make_conference(pool, other_owner, now + timedelta(seconds=65), reminder=1,
                                  guests=(("Olga", "other-olga@example.org"),))
    due = other.starts_at - timedelta(minutes=1)
    with caplog.at_level(logging.INFO, logger="engine.services"):
        await instances[0].mail.start()
        received: list = []
        while not any(item.kind == "reminder" and item.recipients == ["other-olga@example.org"]
                      for item in received):
            received.append(await smtp.handler.next(60))
        reminder_at = received[-1].at
        print(f"the other customer's reminder arrived {(reminder_at - due).total_seconds():.1f} s after it was due")
        assert reminder_at - due < timedelta(seconds=20), (reminder_at, due)

        async def hostile_rows_done() -> list[dict]:
            rows = await pool.fetch("SELECT kind, recipient, status, last_error FROM mail_outbox "
                                    "WHERE conference_id = $1", hostile.id)
            kinds = {(row["kind"], row["recipient"]) for row in rows}
            wanted = {(kind, address) for kind in ("invitation", "reminder")
                      for address in ("legacy-eve@example.org", "legacy-chair@example.org")}
            return [dict(row) for row in rows] if kinds >= wanted else []

        rows = await wait_for(hostile_rows_done, 60, "the hostile conference's delivery rows")
        for row in rows:
            assert row["status"] == "failed" and "U+2028" in row["last_error"], row

        async def mixed_done() -> dict[str, dict]:
            rows = await pool.fetch("SELECT kind, recipient, status, last_error FROM mail_outbox "
                                    "WHERE conference_id = $1 AND kind = 'invitation'", mixed.id)
            found = {row["recipient"].split("@")[0]: dict(row) for row in rows}
            return found if len(found) == 3 and all(r["status"] in ("sent", "failed") for r in found.values()) \
                else {}

        mixed_rows = await wait_for(mixed_done, 60, "the mixed conference's invitations")
        assert mixed_rows["legacy-m"]["status"] == "failed" and "address" in mixed_rows["legacy-m"]["last_error"]
        assert mixed_rows["legacy-ann"]["status"] == "sent" and mixed_rows["legacy-chair"]["status"] == "sent"
    assert not [r for r in caplog.records if "scan failed" in r.getMessage() or "failed; the" in r.getMessage()]
    for item in received + [item async for item in _drain(smtp)]:
        assert "victim@example.org" not in item.recipients
        raw = item.raw.decode("ascii", errors="replace")
        assert "\nBcc:" not in raw and "RCPT TO" not in raw
        if item.recipients == ["legacy-ann@example.org"]:
            assert item.message["To"].addresses[0].display_name == "Ann a"


async def _drain(smtp: SmtpServer):
    while not smtp.handler.received.empty():
        yield smtp.handler.received.get_nowait()


@pytest.fixture(scope="module")
async def portal(engine):
    from aiohttp.test_utils import TestServer

    from web.app import init_app

    server = TestServer(init_app(engine.services), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.parametrize(("language", "message"), [
    ("ru", "Поле должно быть одной строкой текста без управляющих символов"),
    ("en", "This field must be one line of text without control characters"),
])
async def test_portal_refuses_a_bare_cr_subject_in_both_languages(portal, engine, language: str,
                                                                 message: str) -> None:
    account = await new_account(engine, language=language)
    client = PortalClient(str(portal.make_url("/")), engine)
    try:
        await client.login(account.phone)
        start = datetime.now(UTC) + timedelta(days=2)
        before = await engine.pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1", account.id)
        form = await client.get("/planning")
        page = await client.post("/planning", [
            ("subject", "Board\rmeeting"), ("when", "later"), ("date", start.strftime("%Y-%m-%d")),
            ("time", "10:30"), ("duration_minutes", "60"), ("max_participants", "5"),
            ("auto_extend_minutes", "0"), ("p_number", ""), ("p_name", ""), ("p_email", "")], token=form.csrf)
        assert page.status == 400, page.text[:2000]
        assert 'class="field-error"' in page.text and message in page.text, page.text[:4000]
        assert await engine.pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1",
                                          account.id) == before
        contacts = await client.get("/settings/contacts")
        page = await client.post("/settings/contacts", {"name": "Olga\u202e", "number": "375291234567"},
                                 token=contacts.csrf)
        assert message in page.text, page.text[:4000]
    finally:
        await client.close()


async def test_card_shows_a_message_that_could_not_be_built(portal, engine) -> None:
    """A legacy subject (stored before the rule): the real notifier stores its invitations as
    failed with the reason, which the API's deliveries and the card show."""
    account = await new_account(engine, language="en")
    await engine.pool.execute("UPDATE accounts SET email = 'card-owner@example.org' WHERE id = $1", account.id)
    starts_at = datetime.now(UTC) + timedelta(days=2)
    conference_id = await engine.pool.fetchval("""
        INSERT INTO conferences (owner_id, subject, node_id, room, conference_number, chair_pin, guest_pin,
                                 starts_at, duration_minutes, ends_at, max_participants, notify_participants)
        VALUES ($1, $2, 'ast1', $3, $4, '912345', '112345', $5, 30, $6, 5, true) RETURNING id""",
        account.id, "Legacy\u2028subject", f"card-{secrets.token_hex(6)}", "6" + str(secrets.randbelow(10**5)).zfill(5),
        starts_at, starts_at + timedelta(minutes=30))
    await engine.pool.execute("INSERT INTO participants (conference_id, number, name, email) "
                              "VALUES ($1, '375291234567', 'Olga', 'card-olga@example.org')", conference_id)
    await engine.services.notifier.reconcile(conference_id)
    token = (await engine.services.tokens.issue(account.id, "card")).secret
    reply = await ApiClient(portal, token).get(f"/conferences/{conference_id}/deliveries")
    statuses = reply.body["deliveries"]
    assert reply.status == 200 and {s["status"] for s in statuses} == {"failed"} and len(statuses) == 2, statuses
    assert all("U+2028" in s["last_error"] for s in statuses), statuses
    client = PortalClient(str(portal.make_url("/")), engine)
    try:
        await client.login(account.phone)
        page = await client.get(f"/conferences/{conference_id}")
        assert page.status == 200
        assert page.text.count('class="delivery-error"') == 2 and "U+2028" in page.text, page.text[-4000:]
        assert "Your copy" in page.text
    finally:
        await client.close()


@pytest.mark.parametrize("name", ["Iri\rna", "Iri\u2028na", "\u202eanirI", "I" * 101])
async def test_cli_account_name_follows_the_text_rule(database_url, engine, name: str) -> None:
    """``python -m engine account create --name`` refuses what the portal and the API refuse,
    with one line naming the field, and creates nothing."""
    from tests.integration.test_cli import assert_one_line_error, veche
    from tests.support.factories import random_phone

    phone = random_phone()
    run = await veche(database_url, "account", "create", phone, "--password-stdin", "--name", name,
                      stdin="a-long-password-2026\n")
    assert_one_line_error(run, "name")
    assert await engine.pool.fetchval("SELECT count(*) FROM accounts WHERE phone = $1", phone) == 0


@pytest.mark.parametrize("hostile", ["tok\u2028en", "tok\ren", "\u202etoken"])
async def test_token_names_and_group_descriptions_follow_the_rule(engine, api_server, hostile: str) -> None:
    from tests.integration.test_operator import _operator
    from tests.support.api import session_client

    user = await new_user(engine, api_server)
    portal_api = await session_client(engine, api_server, user.account.id)
    refused = await portal_api.post("/tokens", {"name": hostile})
    assert refused.status == 422 and refused.body["error"]["field"] == "name", refused.body
    assert refused.body["error"]["code"] == "invalid_text"
    _, operator_api = await _operator(engine, api_server)
    group = await operator_api.call("PUT", f"/operator/plan-groups/g-{secrets.token_hex(3)}", {
        "description": hostile, "patterns": [], "allow_international": False, "allow_premium": False})
    assert group.status == 422 and group.body["error"]["field"] == "description", group.body
