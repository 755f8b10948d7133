"""The portal's edge against hostile requests, through a real aiohttp server on the session's
engine and PostgreSQL: off-site ``next`` values end on a local page; X-Forwarded-For counts only
from a trusted proxy; anonymous visitors write no session rows and a bounded number of CAPTCHA
rows, and a CAPTCHA picture is drawn once; SSE streams are capped per account and end when their
token or session does; tokens expire, die with a password change and cannot mint tokens; only an
admin operator manages other operators."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from tests.integration.test_api_sse import SseStream
from tests.integration.test_cli import veche
from tests.support.api import PASSWORD, ApiClient, new_user
from tests.support.factories import random_phone
from tests.support.portal import PASSWORD as PORTAL_PASSWORD
from tests.support.portal import PortalClient, new_account
from web.security import TRUSTED_PROXIES

pytestmark = pytest.mark.stack

OFF_SITE = [
    "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "//evil.example", "/\\evil.example",
    "/\\/evil.example", "\\\\evil.example", "https://evil.example/", "http:/evil.example", "javascript:alert(1)",
    " //evil.example", "/\x00/evil.example", "/\u2028/evil.example", "/\u00a0/evil.example", "///evil.example",
    "//evil.example@localhost", "/%2F/evil.example/..//evil.example" + "\t",
]


@pytest.fixture(scope="module")
async def proxied(engine) -> AsyncIterator[TestServer]:
    """A portal that trusts 127.0.0.0/8 as its reverse proxy (VECHE_TRUSTED_PROXIES)."""
    from web.app import init_app

    app = init_app(engine.services)
    app[TRUSTED_PROXIES] = ("127.0.0.0/8",)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def _location_is_local(location: str, server: TestServer) -> None:
    target = URL(location)
    assert target.host is None or target.host == server.host, location
    assert target.path.startswith("/") and not target.path.startswith("//"), location
    assert "evil" not in location, location


@pytest.mark.parametrize("target", OFF_SITE)
async def test_off_site_next_ends_on_a_local_page(engine, api_server, target: str) -> None:
    account = await new_account(engine)
    client = PortalClient(str(api_server.make_url("/")), engine)
    try:
        form = await client.get("/login", params={"next": target})
        assert form.status == 200 and "evil" not in form.text
        answer = await client.captcha_answer(form)
        async with client.session.post(client.base_url + "/login", allow_redirects=False, data={
                "phone": account.phone, "password": PORTAL_PASSWORD, "captcha_id": form.captcha_id, "captcha": answer,
                "next": target, "_csrf": form.csrf}) as response:
            assert response.status == 303, await response.text()
            _location_is_local(response.headers["Location"], api_server)
        # already logged in: GET /login?next=... sends the visitor on at once
        async with client.session.get(client.base_url + "/login", params={"next": target},
                                      allow_redirects=False) as response:
            assert response.status == 303
            _location_is_local(response.headers["Location"], api_server)
    finally:
        await client.close()


async def test_local_next_is_kept(engine, api_server) -> None:
    account = await new_account(engine)
    client = PortalClient(str(api_server.make_url("/")), engine)
    try:
        form = await client.get("/login")
        answer = await client.captcha_answer(form)
        async with client.session.post(client.base_url + "/login", allow_redirects=False, data={
                "phone": account.phone, "password": PORTAL_PASSWORD, "captcha_id": form.captcha_id, "captcha": answer,
                "next": "/history?state=ended", "_csrf": form.csrf}) as response:
            assert response.status == 303 and response.headers["Location"] == "/history?state=ended"
    finally:
        await client.close()


async def _login_from(client: PortalClient, phone: str, password: str, forwarded: str) -> int:
    form = await client.get("/login", headers={"X-Forwarded-For": forwarded})
    answer = await client.captcha_answer(form)
    async with client.session.post(client.base_url + "/login", allow_redirects=False, headers={
            "X-Forwarded-For": forwarded}, data={"phone": phone, "password": password, "captcha_id": form.captcha_id,
                                                 "captcha": answer, "next": "/planning", "_csrf": form.csrf}) as reply:
        return reply.status


async def test_behind_a_trusted_proxy_one_clients_failures_do_not_lock_out_another(engine, proxied) -> None:
    net = secrets.randbelow(200) + 1
    attacker, victim = f"198.51.100.{net}", f"203.0.113.{net}"
    client = PortalClient(str(proxied.make_url("/")), engine)
    try:
        for attempt in range(20):  # unknown accounts, so only the per-address limit counts
            spoofed = f"10.{attempt}.0.1, {attacker}"  # hops left of the proxy's own are the client's word
            assert await _login_from(client, random_phone(), "wrong-password-1", spoofed) == 400
        assert await _login_from(client, random_phone(), "wrong-password-1", f"192.0.2.9, {attacker}") == 429
        account = await new_account(engine)
        assert await _login_from(client, account.phone, PORTAL_PASSWORD, victim) == 303
    finally:
        await client.close()
    recorded = await engine.pool.fetchval(
        "SELECT count(*) FROM login_attempts WHERE address = $1 AND NOT succeeded", attacker)
    assert recorded == 20


async def test_an_untrusted_peers_forwarded_for_is_ignored(engine, api_server) -> None:
    forged = f"192.0.2.{secrets.randbelow(200) + 1}"
    phone = random_phone()
    client = PortalClient(str(api_server.make_url("/")), engine)
    try:
        assert await _login_from(client, phone, "wrong-password-1", forged) == 400
    finally:
        await client.close()
    addresses = await engine.pool.fetch("SELECT address FROM login_attempts WHERE phone = $1", phone)
    assert [row["address"] for row in addresses] == ["127.0.0.1"]


async def _visit_login(session: aiohttp.ClientSession, server: TestServer, forwarded: str) -> None:
    async with session.get(server.make_url("/login"), headers={"X-Forwarded-For": forwarded}) as response:
        assert response.status == 200
        await response.read()


async def test_anonymous_visitors_leave_no_session_rows_and_bounded_captchas(engine, proxied) -> None:
    captcha = engine.services.captcha
    sessions_before = await engine.pool.fetchval("SELECT count(*) FROM web_sessions")
    kept, captcha.max_rows = captcha.max_rows, 50
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            for batch in range(40):  # 1,000 visits from 100 client addresses
                await asyncio.gather(*(_visit_login(session, proxied, f"198.18.{batch % 4}.{visit + 1}")
                                       for visit in range(25)))
        assert await engine.pool.fetchval("SELECT count(*) FROM captchas") <= 50
        assert await engine.pool.fetchval("SELECT count(*) FROM web_sessions") == sessions_before
    finally:
        captcha.max_rows = kept


async def test_one_clients_flood_of_login_pages_keeps_another_clients_captcha(engine, proxied) -> None:
    from engine.services.captcha import PER_ADDRESS

    net = secrets.randbelow(200) + 1
    flood, victim = f"198.19.{net}.1", f"198.19.{net}.2"
    account = await new_account(engine)
    client = PortalClient(str(proxied.make_url("/")), engine)
    try:
        form = await client.get("/login", headers={"X-Forwarded-For": victim})
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            for _batch in range(40):
                await asyncio.gather(*(_visit_login(session, proxied, flood) for _visit in range(25)))
        assert await engine.pool.fetchval("SELECT count(*) FROM captchas WHERE address = $1", flood) <= PER_ADDRESS
        answer = await client.captcha_answer(form)
        async with client.session.post(client.base_url + "/login", allow_redirects=False, headers={
                "X-Forwarded-For": victim}, data={"phone": account.phone, "password": PORTAL_PASSWORD,
                                                  "captcha_id": form.captcha_id, "captcha": answer,
                                                  "next": "/planning", "_csrf": form.csrf}) as response:
            assert response.status == 303
    finally:
        await client.close()


async def test_a_captcha_picture_is_drawn_once_and_expired_ones_are_purged(engine, api_server) -> None:
    captcha = engine.services.captcha
    client = PortalClient(str(api_server.make_url("/")), engine)
    try:
        form = await client.get("/login")
        drawn_before = captcha.rendered
        pictures = []
        for _ in range(2):
            async with client.session.get(client.base_url + f"/captcha/{form.captcha_id}.png") as response:
                assert response.status == 200 and response.content_type == "image/png"
                pictures.append(await response.read())
        assert pictures[0] == pictures[1]
        assert captcha.rendered == drawn_before + 1
    finally:
        await client.close()
    await engine.pool.execute("UPDATE captchas SET expires_at = now() - interval '1 minute' WHERE id = $1",
                              form.captcha_id)
    assert await captcha.purge() >= 1
    assert await engine.pool.fetchval("SELECT count(*) FROM captchas WHERE id = $1", form.captcha_id) == 0


async def _open(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
    return await session.get(url, headers={"Accept": "text/event-stream", **headers})


async def test_the_eleventh_stream_is_refused_and_a_closed_one_frees_its_place(engine, api_server) -> None:
    owner = await new_user(engine, api_server)
    created = await owner.api.post("/conferences", {"subject": "Many consoles", "start": "now",
                                                    "duration_minutes": 10, "max_participants": 2})
    url = owner.api.url(f"/conferences/{created.body['id']}/events")
    auth = {"Authorization": f"Bearer {owner.token}"}
    limit = engine.settings.sse_streams_per_account
    assert limit == 10
    async with aiohttp.ClientSession() as session:
        streams = []
        for _ in range(limit):
            response = await _open(session, url, auth)
            assert response.status == 200
            streams.append(response)
            assert (await SseStream(response).next()).name == "snapshot"
        refused = await _open(session, url, auth)
        assert refused.status == 429
        assert "at most 10 live event streams" in (await refused.json())["error"]["message"]
        streams.pop().close()
        deadline = asyncio.get_running_loop().time() + 15
        while True:  # the server notices the closed connection within its poll interval
            again = await _open(session, url, auth)
            if again.status == 200:
                streams.append(again)
                break
            again.release()
            assert asyncio.get_running_loop().time() < deadline, "the closed stream's place never came free"
            await asyncio.sleep(0.2)
        for response in streams:
            response.close()
    await owner.api.post(f"/conferences/{created.body['id']}/end")


async def test_revoking_the_token_ends_its_open_stream(engine, api_server) -> None:
    owner = await new_user(engine, api_server)
    created = await owner.api.post("/conferences", {"subject": "Revoked", "start": "now",
                                                    "duration_minutes": 10, "max_participants": 2})
    token_id = (await owner.api.get("/tokens")).body["tokens"][0]["id"]
    async with aiohttp.ClientSession() as session:
        response = await _open(session, owner.api.url(f"/conferences/{created.body['id']}/events"),
                               {"Authorization": f"Bearer {owner.token}"})
        stream = SseStream(response)
        assert (await stream.next()).name == "snapshot"
        await engine.services.tokens.revoke(owner.account.id, token_id)
        with pytest.raises(EOFError):
            while True:  # heartbeats until the stream notices; then the server ends it
                await stream.next(timeout=30)
    await engine.services.live.end(owner.account.id, created.body["id"])


async def test_logout_ends_the_sessions_stream(engine, api_server) -> None:
    account = await new_account(engine)
    client = PortalClient(str(api_server.make_url("/")), engine)
    try:
        assert (await client.login(account.phone)).status == 200
        conference = await client.session.post(
            client.base_url + "/api/v1/conferences", headers={"X-CSRF-Token": client.last.csrf},
            json={"subject": "Session stream", "start": "now", "duration_minutes": 10, "max_participants": 2})
        assert conference.status == 201, await conference.text()
        cid = (await conference.json())["id"]
        response = await client.session.get(client.base_url + f"/api/v1/conferences/{cid}/events")
        assert response.status == 200
        stream = SseStream(response)
        assert (await stream.next()).name == "snapshot"
        page = await client.get("/planning")
        async with client.session.post(client.base_url + "/logout", data={"_csrf": page.csrf}) as logged_out:
            assert logged_out.status == 200
        with pytest.raises(EOFError):
            while True:
                await stream.next(timeout=30)
        await engine.services.live.end(account.id, cid)
    finally:
        await client.close()


async def test_token_expiry_is_honoured(engine, api_server) -> None:
    account = await new_account(engine)
    issued = await engine.services.tokens.issue(account.id, "short", expires_in_days=1)
    api = ApiClient(api_server, issued.secret)
    listed = await api.get("/tokens")
    assert listed.status == 200 and listed.body["tokens"][0]["expires_at"] is not None
    await engine.pool.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
                              issued.token.id)
    expired = await api.get("/me")
    assert expired.status == 401 and "expired" in expired.error["message"]


async def test_cli_token_with_expiry(database_url, engine, api_server) -> None:
    account = await new_account(engine)
    issued = await veche(database_url, "token", "create", account.phone, "--expires", "7")
    assert issued.returncode == 0, issued.stderr
    assert "expires" in issued.stderr
    token = issued.stdout.strip()
    listed = await ApiClient(api_server, token).get("/tokens")
    assert listed.status == 200 and listed.body["tokens"][0]["expires_at"] is not None
    wrong = await veche(database_url, "token", "create", account.phone, "--expires", "0")
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr and "days" in wrong.stderr


async def test_a_token_cannot_create_tokens_but_a_portal_session_can(engine, api_server) -> None:
    user = await new_user(engine, api_server)
    refused = await user.api.post("/tokens", {"name": "minted"})
    assert refused.status == 403 and "cannot create tokens" in refused.error["message"]
    assert len((await user.api.get("/tokens")).body["tokens"]) == 1

    account = await new_account(engine)
    client = PortalClient(str(api_server.make_url("/")), engine)
    try:
        assert (await client.login(account.phone)).status == 200
        async with client.session.post(client.base_url + "/api/v1/tokens", json={"name": "from the portal"},
                                       headers={"X-CSRF-Token": client.last.csrf}) as response:
            assert response.status == 201, await response.text()
    finally:
        await client.close()


async def test_a_password_change_revokes_the_accounts_tokens(engine, api_server) -> None:
    user = await new_user(engine, api_server)
    assert (await user.api.get("/me")).status == 200
    await engine.services.accounts.change_password(user.account.id, PASSWORD, "another-good-pass-7")
    assert (await user.api.get("/me")).status == 401


async def _operator_api(engine, api_server, *, admin: bool = False) -> tuple[object, ApiClient]:
    operator = await engine.services.accounts.create(random_phone(), PASSWORD, role="operator", admin=admin)
    issued = await engine.services.tokens.issue(operator.id, "operator")
    return operator, ApiClient(api_server, issued.secret)


async def test_only_an_admin_operator_manages_other_operators(engine, api_server) -> None:
    plain, plain_api = await _operator_api(engine, api_server)
    other, other_api = await _operator_api(engine, api_server)
    admin, admin_api = await _operator_api(engine, api_server, admin=True)

    blocked = await plain_api.post(f"/operator/accounts/{other.id}/block")
    assert blocked.status == 403 and "admin" in blocked.error["message"]
    reset = await plain_api.post(f"/operator/accounts/{other.id}/password", {"password": "brand-new-pass-42"})
    assert reset.status == 403
    deleted = await plain_api.call("DELETE", f"/operator/accounts/{other.id}")
    assert deleted.status == 403
    assert (await other_api.get("/operator/accounts")).status == 200  # untouched

    customer = await new_account(engine)
    assert (await plain_api.post(f"/operator/accounts/{customer.id}/block")).status == 200  # customers: any operator

    assert (await admin_api.post(f"/operator/accounts/{other.id}/block")).status == 200
    assert (await other_api.get("/operator/accounts")).status == 403  # blocked operators are refused
    assert (await admin_api.call("DELETE", f"/operator/accounts/{other.id}")).status == 204
    assert plain and admin


async def test_cli_makes_an_admin_operator(database_url, engine) -> None:
    phone = random_phone()
    created = await veche(database_url, "account", "create", phone, "--password-stdin", "--role", "operator",
                          "--admin", stdin=PASSWORD + "\n")
    assert created.returncode == 0 and "admin" in created.stdout, created.stderr
    account = await engine.services.accounts.authenticate(phone, PASSWORD)
    assert account.admin
    taken = await veche(database_url, "account", "admin", phone, "--off")
    assert taken.returncode == 0, taken.stderr
    assert not (await engine.services.accounts.get(account.id)).admin
    customer = await new_account(engine)
    refused = await veche(database_url, "account", "admin", customer.phone)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
