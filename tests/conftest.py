"""Session fixtures: a real PostgreSQL, a real Asterisk 22 from the project's asterisk-config/,
SIPp playing the trunk's far end, and the engine wired to them."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from engine import eventloop
from engine.config import AmiTarget, Settings
from engine.stack import AsteriskProcess, PostgresCluster, free_port, free_udp_port_pair, with_instance_prompts
from tests.support.agi_trace import AgiTrace
from tests.support.sipp import SippFactory, SippProcess

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def pytest_configure(config: pytest.Config) -> None:
    """Each test session gets a temporary folder of its own, not one under pytest's shared
    ``/tmp/pytest-of-<user>``: pytest makes that one private (0700) at every session start, which
    would cut the ``postgres`` user off from the cluster of another session running at the same
    time (a unit run beside the full suite)."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="veche-test-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """Tests run on the event loop the engine runs on in service (engine/eventloop.py)."""
    return {"uvloop": eventloop.new_event_loop}


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own is not None and config.stash.get(_SESSION_PASSED, False):
        shutil.rmtree(own, ignore_errors=True)  # a failed session keeps its folder to look into


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_SESSION_PASSED] = exitstatus == 0


_OWN_BASETEMP = pytest.StashKey[str]()
_SESSION_PASSED = pytest.StashKey[bool]()


def make_settings(run_dir: Path, **overrides: object) -> Settings:
    """Settings with every port free, so parallel test sessions never collide."""
    rtp_start = 10000 + 2 * secrets.randbelow(20000)
    base = Settings(
        ami=AmiTarget(port=free_port(), secret=secrets.token_hex(8)),
        sip_port=free_udp_port_pair(),
        agi_port=free_port(),
        web_port=free_port(),
        metrics_port=0,  # the /metrics listener of each test server picks a free port
        trunk_target=f"127.0.0.1:{free_udp_port_pair()}",
        rtp_start=rtp_start,
        rtp_end=rtp_start + 1999,
        ring_timeout=3,
        run_dir=run_dir,
        test_mode=True,
        secret_key=secrets.token_hex(32),
        agi_secret=secrets.token_hex(32),
        agi_header_timeout=3.0,  # short, so fuzzed sessions that trickle end soon
        cache_dir=Path(os.environ.get("VECHE_CACHE_DIR", Path.home() / ".cache" / "veche")),
    )
    return base.with_(**overrides)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("veche-run")


@pytest.fixture(scope="session")
def database_url(run_dir: Path) -> Iterator[str]:
    """A fresh database: in DATABASE_URL's server if given, else in a private cluster."""
    given = os.environ.get("DATABASE_URL")
    if given:
        name = f"veche_test_{secrets.token_hex(4)}"

        async def create() -> None:
            conn = await asyncpg.connect(given)
            await conn.execute(f'CREATE DATABASE "{name}"')
            await conn.close()

        eventloop.run(create())
        yield given.rsplit("/", 1)[0] + "/" + name
        return
    cluster = PostgresCluster(run_dir / "postgres", durable=False)  # fast and throw-away
    url = cluster.start()
    yield url
    cluster.stop()


@pytest.fixture(scope="session")
def settings(run_dir: Path, database_url: str) -> Settings:
    return with_instance_prompts(make_settings(run_dir, database_url=database_url), f"test-{os.getpid()}")


@pytest.fixture(scope="session")
def asterisk(settings: Settings) -> Iterator[AsteriskProcess]:
    process = AsteriskProcess(settings, name=f"test-{os.getpid()}")
    process.start()
    yield process
    process.stop()
    process.remove()


@pytest.fixture
def agi_trace(asterisk: AsteriskProcess) -> Iterator[AgiTrace]:
    """The AGI commands the session's Asterisk receives during one test."""
    with AgiTrace(asterisk, f"veche-agi-{secrets.token_hex(4)}.log") as trace:
        yield trace


@pytest.fixture(scope="session")
def sipp(run_dir: Path, settings: Settings) -> SippFactory:
    return SippFactory(run_dir / "sipp", settings.sip_port)


@pytest.fixture(scope="session")
async def pstn(sipp: SippFactory, settings: Settings, asterisk: AsteriskProcess) -> AsyncIterator[SippProcess]:
    """The trunk's far end: every dialled number is a SIPp callee (see tests/sipp/pstn.xml)."""
    process = await sipp.pstn(int(settings.trunk_target.rsplit(":", 1)[1]))
    yield process
    await process.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
async def engine(settings: Settings, asterisk, pstn) -> AsyncIterator:
    """The engine with all its services, on the session's Postgres and Asterisk."""
    from engine.app import Engine

    instance = Engine(settings)
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture(scope="session")
async def api_server(engine) -> AsyncIterator:
    """The portal + JSON API application (init_app) on a free port, over the session's engine;
    SSE heartbeats every 0.5 s so tests see them quickly."""
    from aiohttp.test_utils import TestServer

    from web.api.events import HEARTBEAT_SECONDS
    from web.app import init_app

    app = init_app(engine.services)
    app[HEARTBEAT_SECONDS] = 0.5
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()
