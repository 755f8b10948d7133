"""/healthz against parts that really go away: an Asterisk of its own is stopped and started
again, the engine's FastAGI server closes and reopens, and a PostgreSQL of its own stops and
comes back; each check turns unhealthy on its own and recovers."""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from engine.app import Engine
from engine.stack import AsteriskProcess, PostgresCluster
from tests.conftest import make_settings
from web.metrics import metrics_address

pytestmark = pytest.mark.stack

LINK_TIMEOUT = 20


@dataclass
class Stack:
    engine: Engine
    asterisk: AsteriskProcess
    postgres: PostgresCluster
    http: TestClient
    links: asyncio.Queue[bool]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """PostgreSQL, Asterisk and an engine of this test only (never the session's)."""
    from web.app import init_app

    postgres = PostgresCluster(tmp_path / "postgres")
    database_url = await asyncio.to_thread(postgres.start)
    settings = make_settings(tmp_path, database_url=database_url, node_id="health")
    asterisk = AsteriskProcess(settings, name=f"health-{os.getpid()}-{secrets.token_hex(3)}")
    engine = Engine(settings)
    try:
        await asyncio.to_thread(asterisk.start)
        await engine.start()
        links: asyncio.Queue[bool] = asyncio.Queue()
        engine.ami.on_link_change(lambda node, up: links.put_nowait(up))
        async with TestClient(TestServer(init_app(engine.services))) as http:
            yield Stack(engine, asterisk, postgres, http, links)
    finally:
        await engine.stop()
        await asyncio.to_thread(asterisk.stop)
        await asyncio.to_thread(postgres.stop)
        asterisk.remove()


async def health(stack: Stack) -> tuple[int, dict]:
    response = await stack.http.get("/healthz")
    return response.status, await response.json()


async def ami_connected_metric(stack: Stack) -> float:
    host, port = metrics_address(stack.http.server.app)  # /metrics has a listener of its own
    async with aiohttp.ClientSession() as session, session.get(f"http://{host}:{port}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "veche_ami_connected" and sample.labels == {"node": "health"}:
                return sample.value
    raise AssertionError("veche_ami_connected{node=health} is missing")


async def test_healthz_follows_asterisk_stopping_and_returning(stack: Stack) -> None:
    assert gc.get_freeze_count() > 1000  # the started engine's heap is out of full collections
    status, body = await health(stack)
    assert status == 200, body
    assert body["checks"] == {"postgres": True, "ami": True, "fastagi": True}
    assert body["nodes"] == {"health": True}

    await asyncio.to_thread(stack.asterisk.stop)
    assert await asyncio.wait_for(stack.links.get(), LINK_TIMEOUT) is False
    status, body = await health(stack)
    assert status == 503
    assert body["healthy"] is False
    assert body["checks"] == {"postgres": True, "ami": False, "fastagi": True}
    assert "health" in body["details"]["ami"]
    assert await ami_connected_metric(stack) == 0.0

    await asyncio.to_thread(stack.asterisk.start)
    assert await asyncio.wait_for(stack.links.get(), LINK_TIMEOUT) is True
    status, body = await health(stack)
    assert status == 200, body
    assert body["checks"] == {"postgres": True, "ami": True, "fastagi": True}
    assert await ami_connected_metric(stack) == 1.0


async def test_healthz_reports_fastagi_and_postgres_on_their_own(stack: Stack) -> None:
    agi = stack.engine.agi
    await agi.stop()
    status, body = await health(stack)
    assert status == 503 and body["checks"] == {"postgres": True, "ami": True, "fastagi": False}
    await agi.start()
    assert (await health(stack))[0] == 200

    await asyncio.to_thread(stack.postgres.stop)
    status, body = await health(stack)
    assert status == 503 and body["checks"] == {"postgres": False, "ami": True, "fastagi": True}
    assert body["details"]["postgres"]

    await asyncio.to_thread(stack.postgres.start)
    # the pool drops the connections the stopped server closed as it meets them: a few checks at most
    for _ in range(10):
        status, body = await health(stack)
        if status == 200:
            break
    assert status == 200, body
