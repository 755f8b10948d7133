"""Bad configuration gives one line naming what and where, never a traceback: unreachable AMI,
wrong AMI secret and PostgreSQL down, through the adapters and through ``python -m engine run``."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from engine.adapters.asterisk.ami import AmiLink
from engine.adapters.db import create_pool
from engine.adapters.db.migrations import migrate
from engine.config import Settings
from engine.domain.errors import ConfigError
from engine.stack import PROJECT_ROOT, free_port
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.stack


def ami_url(settings: Settings, *, port: int | None = None, secret: str | None = None) -> str:
    return (f"ami://{settings.ami.username}:{secret or settings.ami.secret}"
            f"@{settings.ami.host}:{port or settings.ami.port}")


# ----------------------------------------------------------------------------- adapters


async def test_unreachable_ami_names_where(settings: Settings) -> None:
    port = free_port()
    adapter = AmiLink(replace(settings.ami, port=port), settings.node_id)
    with pytest.raises(ConfigError) as failure:
        await adapter.connect(timeout=5)
    message = str(failure.value)
    assert f"127.0.0.1:{port}" in message and "AMI" in message and "\n" not in message


class CountingProxy(TcpProxy):
    """A TCP proxy that tells when a client connects (for "it never tries again" checks)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.connections = 0
        self.connected = asyncio.Event()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connected.set()
        await super()._accept(reader, writer)


async def test_wrong_ami_secret_names_user_and_where(settings: Settings, asterisk) -> None:
    proxy = await CountingProxy(settings.ami.host, settings.ami.port).start()
    adapter = AmiLink(replace(settings.ami, port=proxy.port, secret="not-the-secret"), settings.node_id)
    try:
        with pytest.raises(ConfigError) as failure:
            await adapter.connect(timeout=10)
        message = str(failure.value)
        assert f"{settings.ami.host}:{proxy.port}" in message
        assert repr(settings.ami.username) in message and "secret" in message and "\n" not in message
        assert not adapter.connected
        # The refused adapter is closed for good: panoramisk must not log in again and again.
        proxy.connected.clear()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(proxy.connected.wait(), 2.5)
    finally:
        await proxy.stop()


async def test_postgres_down_names_where() -> None:
    port = free_port()
    with pytest.raises(ConfigError) as failure:
        await create_pool(f"postgresql://postgres:hunter2@127.0.0.1:{port}/veche", timeout=5)
    message = str(failure.value)
    assert f"127.0.0.1:{port}/veche" in message and "PostgreSQL" in message
    assert "hunter2" not in message and "\n" not in message


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
async def migrated(database_url: str) -> str:
    """The session database, migrated, so the CLI has nothing to log before it fails."""
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return database_url


async def run_cli(tmp_path: Path, settings: Settings, **env: str) -> tuple[int, list[str], str]:
    """``python -m engine run`` with ``env``; (exit code, stderr lines, stdout)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("VECHE_") and k not in ("DATABASE_URL", "ASTERISK_AMI_URL")}
    base.update(
        VECHE_RUN_DIR=str(tmp_path / "run"),
        VECHE_CACHE_DIR=str(settings.cache_dir),
        VECHE_WEB_PORT=str(free_port()),
        VECHE_METRICS_PORT=str(free_port()),
        VECHE_AGI_PORT=str(free_port()),
        VECHE_TEST_MODE="1",
        PYTHONWARNINGS="default",
    )
    base.update(env)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "run", cwd=PROJECT_ROOT, env=base,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, stderr.decode().splitlines(), stdout.decode()


def assert_one_line_error(code: int, stderr: list[str], *fragments: str) -> None:
    assert code == 2, stderr
    assert len(stderr) == 1, "\n".join(stderr)
    assert stderr[0].startswith("veche: error: "), stderr
    for fragment in fragments:
        assert fragment in stderr[0], stderr


async def test_cli_unreachable_ami(tmp_path: Path, settings: Settings, migrated: str) -> None:
    port = free_port()
    code, stderr, _ = await run_cli(tmp_path, settings, DATABASE_URL=migrated,
                                    ASTERISK_AMI_URL=ami_url(settings, port=port))
    assert_one_line_error(code, stderr, "AMI", f"127.0.0.1:{port}")


async def test_cli_wrong_ami_secret(tmp_path: Path, settings: Settings, asterisk, migrated: str) -> None:
    code, stderr, _ = await run_cli(tmp_path, settings, DATABASE_URL=migrated,
                                    ASTERISK_AMI_URL=ami_url(settings, secret="wrong-secret"))
    assert_one_line_error(code, stderr, "AMI", f"{settings.ami.host}:{settings.ami.port}", "secret")
    assert "wrong-secret" not in stderr[0]


async def test_cli_postgres_down(tmp_path: Path, settings: Settings, asterisk) -> None:
    port = free_port()
    code, stderr, _ = await run_cli(tmp_path, settings, ASTERISK_AMI_URL=ami_url(settings),
                                    DATABASE_URL=f"postgresql://postgres:hunter2@127.0.0.1:{port}/veche")
    assert_one_line_error(code, stderr, "PostgreSQL", f"127.0.0.1:{port}/veche")
    assert "hunter2" not in stderr[0]


async def test_cli_malformed_ami_url(tmp_path: Path, settings: Settings) -> None:
    code, stderr, _ = await run_cli(tmp_path, settings, ASTERISK_AMI_URL="http://nowhere")
    assert_one_line_error(code, stderr, "ASTERISK_AMI_URL")


@pytest.mark.parametrize("length", ["4", "5"])
async def test_cli_refuses_a_pin_length_below_six(tmp_path: Path, settings: Settings, length: str) -> None:
    """PINs are at least 6 digits: a shorter VECHE_PIN_LENGTH stops the start with one line."""
    code, stderr, _ = await run_cli(tmp_path, settings, VECHE_PIN_LENGTH=length)
    assert_one_line_error(code, stderr, "VECHE_PIN_LENGTH", "at least 6", f"got {length}")
