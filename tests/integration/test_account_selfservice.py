"""Account self-service through the real web app, Postgres and an aiosmtpd server: password reset
by e-mail (same answer for unknown accounts, link arrives, works once, revokes every session and
API token, expired link refused, rate limits per address and per account), e-mail change
confirmed from the new address, and the link secrets stored only as hashes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from engine.domain.errors import RateLimited, Unauthenticated
from tests.integration.test_mail import SmtpServer, smtp_server
from tests.support.portal import PASSWORD, PortalClient, new_account

pytestmark = pytest.mark.stack

LINK = re.compile(r"https?://[^/\s]+(/(?:password/reset|settings/email)/[A-Za-z0-9_-]+)")
NEW_PASSWORD = "fresh-horse-battery-27"


@pytest.fixture(scope="module")
async def portal(engine) -> AsyncIterator[TestServer]:
    from web.app import init_app

    server = TestServer(init_app(engine.services), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def sink() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as server:
        yield server


@pytest.fixture
async def mail_engine(engine, sink: SmtpServer) -> AsyncIterator:
    """The session engine with its account mail pointed at this test's SMTP server."""
    selfservice = engine.services.selfservice
    original = selfservice.settings
    selfservice.settings = original.with_(smtp_host="127.0.0.1", smtp_port=sink.port, smtp_timeout=5.0,
                                          smtp_user=None, smtp_password=None, smtp_starttls=False, smtp_tls=False)
    yield engine
    selfservice.settings = original


@pytest.fixture
async def clients(portal: TestServer, engine) -> AsyncIterator:
    opened: list[PortalClient] = []

    def make() -> PortalClient:
        client = PortalClient(str(portal.make_url("/")), engine)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.close()


def link_of(received) -> str:
    text = received.texts()["text/plain"]
    match = LINK.search(text)
    assert match, text
    return match.group(1)


async def ask_reset(client: PortalClient, phone: str):
    await client.get("/password/forgot")
    return await client.post("/password/forgot", {"phone": phone})


async def test_password_reset_end_to_end(mail_engine, sink: SmtpServer, clients) -> None:
    engine = mail_engine
    account = await new_account(engine, language="en")
    address = f"reset-{account.phone}@example.org"
    await engine.services.accounts.update_profile(account.id, email=address)
    signed_in = clients()
    assert (await signed_in.login(account.phone)).url.endswith("/planning")
    issued = await engine.services.tokens.issue(account.id, "before reset")
    assert (await engine.services.tokens.authenticate(issued.secret)).id == account.id

    anonymous = clients()
    unknown = await ask_reset(anonymous, "375299999999" if account.phone != "375299999999" else "375299999998")
    known = await ask_reset(anonymous, account.phone)
    assert unknown.status == known.status == 200
    assert 'data-test="reset-sent"' in unknown.text and 'data-test="reset-sent"' in known.text
    same = [re.sub(r'name="_csrf" value="[^"]+"', "", page.text) for page in (unknown, known)]
    assert same[0] == same[1], "the answer must not tell whether the account exists"
    received = await sink.handler.next()  # the unknown account's request sent nothing: this is ours
    assert received.recipients == [address]
    path = link_of(received)
    secret = path.rsplit("/", 1)[1]
    rows = await engine.pool.fetch("SELECT token_hash FROM account_links WHERE account_id = $1", account.id)
    assert [r["token_hash"] for r in rows] == [hashlib.sha256(secret.encode()).hexdigest()]
    assert not await engine.pool.fetchval(
        "SELECT count(*) FROM mail_outbox WHERE position($1::bytea IN message) > 0", secret.encode())

    visitor = clients()
    form = await visitor.get(path)
    assert form.status == 200 and 'name="new_password"' in form.text
    weak = await visitor.post(path, {"new_password": "short", "new_password_again": "short"})
    assert weak.status == 400  # refused without using up the link
    done = await visitor.post(path, {"new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD})
    assert done.status == 200 and done.url.endswith("/login")

    stale = await signed_in.get("/settings")
    assert "/login" in stale.url, "the old session must be revoked"
    with pytest.raises(Unauthenticated):
        await engine.services.tokens.authenticate(issued.secret)

    again = await visitor.post(path, {"new_password": "another-pass-2026", "new_password_again": "another-pass-2026"})
    assert again.status == 410 and 'data-test="reset-invalid"' in again.text
    assert (await visitor.get(path)).status == 410

    fresh = clients()
    assert (await fresh.login(account.phone, NEW_PASSWORD)).url.endswith("/planning")

    await ask_reset(anonymous, account.phone)
    expired_path = link_of(await sink.handler.next())
    expired_hash = hashlib.sha256(expired_path.rsplit("/", 1)[1].encode()).hexdigest()
    await engine.pool.execute("UPDATE account_links SET expires_at = now() - interval '1 second' "
                              "WHERE token_hash = $1", expired_hash)
    assert (await visitor.get(expired_path)).status == 410
    late = await visitor.post(expired_path, {"new_password": "late-pass-20261",
                                             "new_password_again": "late-pass-20261"})
    assert late.status == 410
    assert (await fresh.get("/settings")).status == 200  # a refused link changes nothing


async def test_reset_rate_limits(mail_engine, sink: SmtpServer) -> None:
    engine = mail_engine
    accounts = engine.services.accounts
    account = await new_account(engine)
    address = f"limit-{account.phone}@example.org"
    await accounts.update_profile(account.id, email=address)
    client_address = f"203.0.113.{account.id % 250 + 1}"
    for _ in range(3):
        await engine.services.selfservice.request_password_reset(account.phone, client_address)
    await sink.handler.collect_for({address}, 3)
    await engine.services.selfservice.request_password_reset(account.phone, client_address)  # 4th: same answer, no mail
    other = await new_account(engine)
    other_address = f"limit-{other.phone}@example.org"
    await accounts.update_profile(other.id, email=other_address)
    await engine.services.selfservice.request_password_reset(other.phone, client_address)
    assert (await sink.handler.next()).recipients == [other_address]  # the 4th never arrived
    for _ in range(5):
        await engine.services.selfservice.request_password_reset("375290000001", client_address)
    with pytest.raises(RateLimited):  # 10 requests from one address within the hour
        await engine.services.selfservice.request_password_reset(other.phone, client_address)


async def test_email_change_needs_the_new_address(mail_engine, sink: SmtpServer, clients) -> None:
    engine = mail_engine
    account = await new_account(engine)
    old, new = f"old-{account.phone}@example.org", f"new-{account.phone}@example.org"
    await engine.services.accounts.update_profile(account.id, email=old)
    client = clients()
    await client.login(account.phone)
    await client.get("/settings")
    saved = await client.post("/settings/profile", {"name": "Ivan", "email": new, "language": "ru",
                                                    "mail_own_copy": "on"})
    assert saved.status == 200 and new in saved.text
    assert (await engine.services.accounts.get(account.id)).email == old  # not yet
    received = await sink.handler.next()
    assert received.recipients == [new]
    path = link_of(received)
    page = await client.get(path)
    assert page.status == 200 and new in page.text
    confirmed = await client.post(path, {})
    assert confirmed.status == 200 and confirmed.url.endswith("/settings")
    assert (await engine.services.accounts.get(account.id)).email == new
    assert (await client.post(path, {})).status == 410  # once only
    # the own-copy switch is saved with the profile
    await client.get("/settings")
    await client.post("/settings/profile", {"name": "Ivan", "email": new, "language": "ru"})
    assert (await engine.services.accounts.get(account.id)).mail_own_copy is False
    for number in range(4):  # five changes within the hour, the sixth is refused
        await engine.services.selfservice.request_email_change(account.id, f"n{number}-{new}")
    with pytest.raises(RateLimited):
        await engine.services.selfservice.request_email_change(account.id, f"late-{new}")
    assert PASSWORD


async def test_password_reset_through_the_api(mail_engine, sink: SmtpServer, portal: TestServer) -> None:
    import aiohttp

    engine = mail_engine
    account = await new_account(engine)
    address = f"api-reset-{account.phone}@example.org"
    await engine.services.accounts.update_profile(account.id, email=address)
    base = str(portal.make_url("/api/v1"))
    async with aiohttp.ClientSession() as http:
        answers = []
        for phone in ("375290000002", account.phone):
            async with http.post(base + "/password-reset", json={"phone": phone}) as reply:
                answers.append((reply.status, await reply.json()))
        assert answers[0] == answers[1] == (202, {"status": "accepted"})
        secret = link_of(await sink.handler.next()).rsplit("/", 1)[1]
        confirm = {"token": secret, "password": NEW_PASSWORD}
        async with http.post(base + "/password-reset/confirm", json=confirm) as reply:
            assert reply.status == 204
        async with http.post(base + "/password-reset/confirm", json=confirm) as reply:
            body = await reply.json()
            assert reply.status == 400 and body["error"]["field"] == "link"
    await engine.services.accounts.authenticate(account.phone, NEW_PASSWORD)
