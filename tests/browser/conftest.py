"""Fixtures of the browser tests: the portal on a free port over the session engine, and one
headless Debian Chromium driven by Playwright for the whole session (each test opens a context
of its own, so no cookie or page is shared between tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, async_playwright

from tests.support.browser import CHROMIUM_ARGS


@pytest.fixture(scope="session")
async def portal_url(engine) -> AsyncIterator[str]:
    from web.app import init_app

    server = TestServer(init_app(engine.services), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                    args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


@pytest.fixture(scope="session")
def screens(artifacts: Path) -> Path:
    folder = artifacts / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
