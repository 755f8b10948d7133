"""JSON logs on the real stack: lines written while an AMI event is handled carry its channel
and node, and `python -m engine` writes JSON lines when VECHE_LOG_JSON=1."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import secrets
import sys

import asyncpg
import pytest

from engine.adapters.asterisk.ami import AmiEvent
from engine.logging import ContextFilter, JsonFormatter
from engine.stack import PROJECT_ROOT

pytestmark = pytest.mark.stack


async def test_lines_logged_while_handling_an_ami_event_carry_its_ids(engine, pstn) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    call_id = f"jl-{secrets.token_hex(6)}"
    seen = asyncio.Event()

    def on_event(event: AmiEvent) -> None:
        if event.get("Uniqueid") == call_id:
            logger.info("originate finished")
            seen.set()

    engine.ami.subscribe(on_event, ("OriginateResponse",))
    try:
        await engine.ami.originate(
            channel_id=call_id, other_channel_id=f"{call_id}-2", channel="Local/375290031486@veche-dialout/n",
            context="veche-room", exten="join",
            variables={"VECHE_ROOM": "json-logs-never", "VECHE_PROFILE": "veche_guest", "VECHE_CALL": call_id},
            timeout_ms=10000)
        await asyncio.wait_for(seen.wait(), 15)
    finally:
        engine.ami.unsubscribe(on_event)
        logger.removeHandler(handler)
    (entry,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entry["message"] == "originate finished"
    assert entry["call_id"] == call_id and entry["node"] == engine.settings.node_id
    assert entry["channel"].startswith("Local/375290031486@veche-dialout")


async def test_cli_writes_json_lines_when_asked(database_url: str) -> None:
    name = f"veche_json_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VECHE_")}
        env.update(DATABASE_URL=database_url.rsplit("/", 1)[0] + "/" + name, VECHE_LOG_JSON="1")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engine", "migrate", cwd=PROJECT_ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, stderr.decode()
        entries = [json.loads(line) for line in stderr.decode().splitlines()]
        assert entries and all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
        assert any(e["message"].startswith("applied migration 001_") for e in entries)
    finally:
        await admin.execute(f'DROP DATABASE "{name}"')
        await admin.close()
