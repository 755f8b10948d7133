"""The composition root: builds the adapters and services of one engine process from its
settings, starts them in order and stops them in reverse."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from engine.adapters.ami import AmiAdapter
from engine.adapters.db import create_pool
from engine.adapters.db.migrations import migrate
from engine.agi import AgiLimits, AgiServer
from engine.config import Settings
from engine.domain.errors import ConfigError
from engine.services.bus import EventBus

log = logging.getLogger(__name__)

# Service modules, installed in this order; each has ``async def install(engine) -> service``
# and the service may have ``async def start()`` / ``async def stop()``. A module's install
# stores what it returns in ``engine.services[<last part of the module name>]``.
SERVICE_MODULES: tuple[str, ...] = (
    "engine.services.dialplan",
    "engine.services.prompts",
    "engine.services.calls",
    "engine.services.conferences",
    "engine.services.recovery",
    "engine.services.scheduler",
    "engine.services.notifier",
    "engine.services.accounts",
    "engine.services.addressbook",
    "engine.services.captcha",
    "engine.services.tokens",
    "engine.services.dialin",
    "engine.services.keypad",
    "engine.services.recording",
    "engine.services.quality",
    "engine.services.metrics",
    "engine.services.audit",
    "engine.services.operator",
    "engine.services.outbox",
    "engine.services.pictures",
    "engine.services.idempotency",
    "engine.services.series",
)


@dataclass
class Engine:
    """Everything one engine process runs: database pool, AMI link per node, FastAGI server,
    and the services built on them."""

    settings: Settings
    pool: asyncpg.Pool | None = None
    nodes: dict[str, AmiAdapter] = field(default_factory=dict)
    agi: AgiServer | None = None
    services: dict[str, Any] = field(default_factory=dict)
    bus: EventBus = field(default_factory=EventBus)

    @property
    def ami(self) -> AmiAdapter:
        """The AMI adapter of the default node."""
        return self.nodes[self.settings.node_id]

    async def start(self) -> None:
        settings = self.settings
        settings.refuse_default_secrets()  # operator edition: no development defaults on a real PBX
        if not settings.database_url:
            raise ConfigError("no database: set DATABASE_URL (or run through `python -m engine run`)")
        self.pool = await create_pool(settings.database_url)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        adapter = AmiAdapter(settings.ami, settings.node_id)
        await adapter.connect()
        self.nodes[settings.node_id] = adapter
        self.agi = AgiServer(settings.agi_host, settings.agi_port, settings.agi_secret,
                             allow=settings.agi_allow, limits=AgiLimits.from_settings(settings))
        for module_name in SERVICE_MODULES:
            module = importlib.import_module(module_name)
            service = await module.install(self)
            self.services[module_name.rsplit(".", 1)[1]] = service
        for service in self.services.values():
            start = getattr(service, "start", None)
            if start is not None:
                await start()
        await self.agi.start()
        log.info("engine started: node %s, AMI %s:%s, FastAGI %s:%s", settings.node_id,
                 settings.ami.host, settings.ami.port, settings.agi_host, settings.agi_port)

    async def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            stop = getattr(service, "stop", None)
            if stop is not None:
                await stop()
        if self.agi is not None:
            await self.agi.stop()
        for adapter in self.nodes.values():
            await adapter.close()
        if self.pool is not None:
            await self.pool.close()
