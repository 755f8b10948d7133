"""GET /metrics on the real stack: served on its own listener (never on the web port, a bearer
token when VECHE_METRICS_TOKEN is set), every metric the engine defines is exposed, and the
counters move while a real conference runs (dial-out answered and busy, a dial-in with one wrong
PIN, HTTP requests)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from engine.domain.model import ConferencePlan, ParticipantPlan, Role
from tests.support.dialin_factories import random_caller
from tests.support.factories import create_account, wait_until
from web.metrics import metrics_address, metrics_app

pytestmark = pytest.mark.stack

ANSWERS = "375290021200"  # SIPp far end answers and waits for BYE
BUSY = "375290022486"
CALL_SETUP_TIMEOUT = 20

EXPOSED = (
    "veche_ami_connected", "veche_ami_reconnects_total", "veche_ami_link_changes_total",
    "veche_conferences_running", "veche_participants_connected", "veche_originates_total",
    "veche_dialin_attempts_total", "veche_dialin_failures_total", "veche_dialin_admitted_total",
    "veche_scheduler_lag_seconds", "veche_mail_queue_depth", "veche_http_request_duration_seconds_bucket",
    "veche_conference_start_delay_seconds_count", "veche_domain_events_total", "veche_fastagi_listening",
)


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: dict) -> set[str]:
    return {name for name, _ in samples}


@pytest.fixture
async def http(engine) -> AsyncIterator[TestClient]:
    from web.app import init_app

    async with TestClient(TestServer(init_app(engine.services))) as client:
        yield client


async def scrape(http: TestClient) -> dict:
    """A scrape of the portal's own /metrics listener (not its web port)."""
    host, port = metrics_address(http.server.app)
    async with aiohttp.ClientSession() as session, session.get(f"http://{host}:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(await response.text())


async def test_metrics_are_not_on_the_web_port(engine, http: TestClient) -> None:
    assert (await http.get("/metrics")).status == 404
    host, port = metrics_address(http.server.app)
    assert host == "127.0.0.1" and port != http.server.port


async def test_metrics_token_is_required_when_set(engine) -> None:
    server = TestServer(metrics_app(engine.services.metrics, "scrape-secret-123"), host="127.0.0.1")
    async with TestClient(server) as client:
        assert (await client.get("/metrics")).status == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-124"})
        assert wrong.status == 401
        right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
        assert right.status == 200
        assert "veche_ami_connected" in await right.text()


async def test_metrics_are_exposed(engine, http: TestClient) -> None:
    assert (await http.get("/healthz")).status == 200  # HTTP latency has a series once a request ended
    samples = await scrape(http)
    missing = [name for name in EXPOSED if name not in names(samples)]
    assert missing == [], sorted(names(samples))
    node = engine.settings.node_id
    assert value(samples, "veche_ami_connected", node=node) == 1.0
    assert value(samples, "veche_fastagi_listening") == 1.0
    assert ("veche_dialin_failures_total", frozenset({("kind", "pin")})) in samples
    assert ("veche_mail_queue_depth", frozenset({("status", "queued")})) in samples
    assert ("veche_conferences_running", frozenset({("node", node)})) in samples


async def test_counters_move_with_a_real_conference(engine, http: TestClient, sipp) -> None:
    node = engine.settings.node_id
    planning, live = engine.services.planning, engine.services.live
    before = await scrape(http)

    owner = await create_account(engine.pool)
    conference = await planning.plan(owner, ConferencePlan(
        subject="metrics", start=None, duration_minutes=30, max_participants=5,
        participants=(ParticipantPlan(ANSWERS, "Chair", role=Role.CHAIR), ParticipantPlan(BUSY))))

    async def settled():
        current = await planning.get(owner, conference.id)
        return current if all(p.state in ("connected", "failed") for p in current.participants) else None

    await wait_until(engine, settled, timeout=30, what="dial-outs connected or failed")

    # a caller keys the conference number, a wrong PIN, then the guest PIN
    wrong_pin = next(p for p in ("111111", "222222", "333333") if p not in (conference.chair_pin,
                                                                              conference.guest_pin))
    joined = asyncio.ensure_future(engine.ami.wait_for_event(
        lambda e: e.name == "ConfbridgeJoin" and e.get("Conference") == conference.room
        and e.get("Channel").startswith("PJSIP/"), timeout=CALL_SETUP_TIMEOUT))
    await asyncio.sleep(0)  # let the waiter subscribe before the call starts
    caller = await sipp.caller(f"{conference.conference_number}#,{wrong_pin}#,,,,,,,{conference.guest_pin}#",
                               caller=random_caller())
    try:
        await joined
    except TimeoutError:
        await caller.stop()
        raise AssertionError(f"dial-in caller never joined:\n{caller.log_text()[-2000:]}") from None
    await engine.services.calls.settled()  # the tracker has stored the join too

    await http.get("/healthz")
    during = await scrape(http)

    def delta(name: str, **labels: str) -> float:
        return value(during, name, **labels) - value(before, name, **labels)

    assert delta("veche_originates_total", node=node, outcome="answered") >= 1
    assert delta("veche_originates_total", node=node, outcome="busy") >= 1
    assert delta("veche_participant_failures_total", reason="busy") >= 1
    assert delta("veche_dialin_attempts_total") >= 1
    assert delta("veche_dialin_failures_total", kind="pin") >= 1
    assert delta("veche_dialin_admitted_total") >= 1
    assert delta("veche_domain_events_total", kind="conference.started") >= 1
    assert delta("veche_conference_start_delay_seconds_count") >= 1
    assert value(during, "veche_conferences_running", node=node) >= 1
    assert value(during, "veche_participants_connected", node=node) >= 2  # the chair and the caller
    assert delta("veche_http_request_duration_seconds_count", method="GET", route="/healthz", status="200") >= 1

    await live.end(owner, conference.id)
    assert await caller.wait(CALL_SETUP_TIMEOUT) == 0, caller.log_text()[-2000:]
    after = await scrape(http)
    assert value(after, "veche_conferences_running", node=node) <= value(during, "veche_conferences_running",
                                                                          node=node) - 1
    assert value(after, "veche_participants_connected", node=node) <= value(
        during, "veche_participants_connected", node=node) - 2
    assert value(after, "veche_domain_events_total", kind="conference.ended") > value(
        during, "veche_domain_events_total", kind="conference.ended")


async def test_originate_outcomes_through_ami_directly(engine, http: TestClient, pstn) -> None:
    """Outcomes of dial-outs that bypass the services are counted too (rejected, no answer)."""
    node = engine.settings.node_id
    before = await scrape(http)
    for number, outcome in (("375290023603", "rejected"), ("375290024408", "no_answer")):
        call_id = f"m-{outcome}-{secrets.token_hex(4)}"
        # both the OriginateResponse and the dialplan's VecheDialResult (they come in either order)
        predicates = (
            lambda e, cid=call_id: e.name == "OriginateResponse" and e.get("Uniqueid") == cid,
            lambda e, cid=call_id: e.name == "UserEvent" and e.get("UserEvent") == "VecheDialResult"
            and e.get("Call") == cid)
        done = asyncio.gather(*(asyncio.ensure_future(engine.ami.wait_for_event(p, timeout=15)) for p in predicates))
        await asyncio.sleep(0)
        await engine.ami.originate(
            channel_id=call_id, other_channel_id=f"{call_id}-2", channel=f"Local/{number}@veche-dialout/n",
            context="veche-room", exten="join",
            variables={"VECHE_ROOM": "metrics-never", "VECHE_PROFILE": "veche_guest", "VECHE_CALL": call_id},
            timeout_ms=10000)
        await done
    after = await scrape(http)
    for outcome in ("rejected", "no_answer"):
        assert value(after, "veche_originates_total", node=node, outcome=outcome) - value(
            before, "veche_originates_total", node=node, outcome=outcome) == 1, outcome
