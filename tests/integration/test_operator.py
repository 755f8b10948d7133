"""The operator's work end to end: an operator creates a customer account with limits, the
customer logs in and is refused a conference over its limit; a blocked account cannot log in or
use its API token and its scheduled conference does not start; the audit log records all of it
and cannot be changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
from yarl import URL

from engine.domain.model import ConferencePlan, ConferenceState
from tests.support.api import ApiClient
from tests.support.factories import wait_until
from tests.support.portal import PASSWORD, PortalClient, random_account_phone

pytestmark = pytest.mark.stack


async def _operator(engine, api_server) -> tuple[object, ApiClient]:
    operator = await engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator")
    issued = await engine.services.tokens.issue(operator.id, "operator")
    return operator, ApiClient(api_server, issued.secret)


async def test_operator_creates_account_and_customer_is_refused_over_its_limit(engine, api_server) -> None:
    operator, api = await _operator(engine, api_server)
    phone = random_account_phone()
    weak = await api.post("/operator/accounts", {"phone": phone, "password": "password123"})
    assert weak.status == 400 and weak.error["field"] == "password" and "common" in weak.error["message"]
    created = await api.post("/operator/accounts", {
        "phone": phone, "password": PASSWORD, "name": "Limited Ltd", "max_participants": 3,
        "max_concurrent_conferences": 1, "max_dialouts_per_minute": 10})
    assert created.status == 201, created.body
    assert created.body["max_participants"] == 3 and created.body["plan_group"] == "default"

    portal = PortalClient(str(api_server.make_url("/")), engine)
    try:
        page = await portal.login(phone)
        assert page.status == 200 and "/planning" in page.url
        assert "/operator" not in page.text  # the operator's tab is for operators only
        form = await portal.get("/planning")
        refused = await portal.post("/planning", [
            ("subject", "Too big"), ("when", "now"), ("duration_minutes", "30"), ("max_participants", "10"),
            ("p_number", ""), ("p_name", ""), ("p_email", ""), ("auto_invite", "on"),
            ("auto_extend_minutes", "0"), ("guest_pin_required", "on")], token=form.csrf)
        assert refused.status == 409
        assert "3" in refused.text and ("participants" in refused.text or "участник" in refused.text)
        assert await engine.services.planning.list(created.body["id"], None) == []
        forbidden = await portal.get("/operator")
        assert forbidden.status == 403
    finally:
        await portal.close()

    log = await api.get(f"/operator/audit?account_id={created.body['id']}")
    actions = [e["action"] for e in log.body["entries"]]
    assert "account.created" in actions and "login" in actions
    created_entry = next(e for e in log.body["entries"] if e["action"] == "account.created")
    assert created_entry["actor"] == f"operator:{operator.id}" and created_entry["address"] == "127.0.0.1"


async def test_blocked_account_cannot_log_in_use_tokens_or_start_conferences(engine, api_server) -> None:
    _, api = await _operator(engine, api_server)
    phone = random_account_phone()
    created = (await api.post("/operator/accounts", {"phone": phone, "password": PASSWORD})).body
    customer_id = created["id"]
    token = (await engine.services.tokens.issue(customer_id, "integration")).secret
    customer_api = ApiClient(api_server, token)
    assert (await customer_api.get("/me")).status == 200
    assert (await customer_api.get("/operator/accounts")).status == 403  # customers are not operators

    soon = datetime.now(UTC) + timedelta(seconds=3)
    planning = engine.services.planning
    scheduled = await planning.plan(customer_id, ConferencePlan(subject="Later", start=soon, duration_minutes=5,
                                                                max_participants=2))
    blocked = await api.post(f"/operator/accounts/{customer_id}/block")
    assert blocked.status == 200 and blocked.body["blocked"] is True

    assert (await customer_api.get("/me")).status == 403
    portal = PortalClient(str(api_server.make_url("/")), engine)
    try:
        page = await portal.login(phone)
        assert page.status == 403 and "/planning" not in page.url
    finally:
        await portal.close()

    async def settled():  # the scheduler reaches the start time and refuses it
        current = await planning.get(None, scheduled.id)
        return current if current.state != ConferenceState.SCHEDULED else None

    current = await wait_until(engine, settled, timeout=20, what="the scheduler to handle the blocked conference")
    assert current.state == ConferenceState.FAILED and current.end_reason == "account_blocked"
    assert current.started_at is None

    assert (await api.post(f"/operator/accounts/{customer_id}/unblock")).body["blocked"] is False
    assert (await customer_api.get("/me")).status == 200
    log = await api.get(f"/operator/audit?account_id={customer_id}")
    actions = [e["action"] for e in log.body["entries"]]
    assert {"account.blocked", "account.unblocked", "login.failed", "conference.scheduled"} <= set(actions)

    deleted = await api.call("DELETE", f"/operator/accounts/{customer_id}")
    assert deleted.status == 204
    assert (await customer_api.get("/me")).status == 401


async def test_operator_sees_and_ends_running_conferences_and_manages_plan_groups(engine, api_server) -> None:
    _, api = await _operator(engine, api_server)
    customer = (await api.post("/operator/accounts", {"phone": random_account_phone(), "password": PASSWORD})).body
    running = await engine.services.planning.plan(
        customer["id"], ConferencePlan(subject="Live", start=None, duration_minutes=10, max_participants=3))
    view = await api.get("/operator/conferences")
    assert view.status == 200
    assert running.id in [c["id"] for c in view.body["conferences"]]
    node = view.body["nodes"][0]
    assert node["connected"] is True and isinstance(node["channels"], int) and node["conferences"] >= 1
    ended = await api.post(f"/operator/conferences/{running.id}/end")
    assert ended.status == 200 and ended.body["state"] == "ended"
    assert ended.body["end_reason"] == "ended_by_operator"

    group = await api.call("PUT", "/operator/plan-groups/internal-only", {
        "description": "short numbers only", "patterns": ["_1XXX"]})
    assert group.status == 200 and group.body["patterns"] == ["_1XXX"]
    moved = await api.call("PATCH", f"/operator/accounts/{customer['id']}", {"plan_group": "internal-only"})
    assert moved.status == 200 and moved.body["plan_group"] == "internal-only"
    plan = await engine.services.planning.checks.number_plan(customer["id"])
    assert plan.is_allowed("1234") and not plan.is_allowed("375291234567")
    in_use = await api.call("DELETE", "/operator/plan-groups/internal-only")
    assert in_use.status == 409


async def test_audit_log_is_append_only(engine) -> None:
    await engine.services.audit.record("test.entry", actor="test", detail={"x": 1})
    async with engine.pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE audit_log SET action = 'forged'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_log")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE audit_log")
    assert await engine.pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'test.entry'") >= 1


async def test_operator_pages_render(engine, api_server) -> None:
    operator, _ = await _operator(engine, api_server)
    portal = PortalClient(str(api_server.make_url("/")), engine)
    try:
        await portal.login(operator.phone)
        for path in ("/operator", "/operator/accounts", "/operator/groups", "/operator/audit",
                     "/operator/groups/check?group=default&number=375902123456"):
            page = await portal.get(path)
            assert page.status == 200, (path, page.text[-500:])
        assert 'href="/operator"' in page.text  # operators see their tab
        accounts = await portal.get("/operator/accounts")
        phone = random_account_phone()
        created = await portal.post("/operator/accounts", {
            "phone": phone, "password": PASSWORD, "name": "", "email": "", "language": "en",
            "max_participants": "4", "max_concurrent_conferences": "2", "max_dialouts_per_minute": "30",
            "plan_group": "default"}, token=accounts.csrf)
        assert created.status == 200 and phone in created.text, created.text[-1000:]
        blocked = await portal.post(URL(created.url).path + "/block", {})
        assert blocked.status == 200
        account = await engine.services.accounts.repository.by_phone(phone)
        assert account[0].blocked is True
    finally:
        await portal.close()


async def test_api_rate_limit_answers_429_with_json_and_retry_after(engine, api_server) -> None:
    from aiohttp.web_urldispatcher import PrefixedSubAppResource

    from web.api.ratelimit import API_LIMITER

    api_app = next(r._app for r in api_server.app.router.resources() if isinstance(r, PrefixedSubAppResource))
    limiter = api_app[API_LIMITER]
    customer = await engine.services.accounts.create(random_account_phone(), PASSWORD)
    token = (await engine.services.tokens.issue(customer.id, "burst")).secret
    saved = limiter.per_minute
    limiter.per_minute = 3  # this account's fresh bucket holds 3 requests
    try:
        statuses, last = [], None
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(5):
                async with http.get(api_server.make_url("/api/v1/me")) as response:
                    statuses.append(response.status)
                    last = (await response.json(), response.headers.get("Retry-After"))
    finally:
        limiter.per_minute = saved
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    body, retry_after = last
    assert body["error"]["code"] == "rate_limited" and "too many API requests" in body["error"]["message"]
    assert retry_after is not None and int(retry_after) >= 1
