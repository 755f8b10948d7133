"""The composition root: builds the adapters and services of one engine process from its
settings, starts them in order and stops them in reverse."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from engine.adapters.ami import AmiAdapter
from engine.adapters.db import create_pool
from engine.adapters.db.account_links import AccountLinkRepository
from engine.adapters.db.accounts import AccountRepository
from engine.adapters.db.addressbook import AddressBookRepository
from engine.adapters.db.call_slots import CallSlotRepository
from engine.adapters.db.captchas import CaptchaRepository
from engine.adapters.db.conferences import ConferenceRepository
from engine.adapters.db.dialin import DialinRepository
from engine.adapters.db.idempotency import IdempotencyRepository
from engine.adapters.db.metrics import MetricsRepository
from engine.adapters.db.migrations import migrate
from engine.adapters.db.nodes import NodeRepository
from engine.adapters.db.operator import AuditRepository, OperatorRepository
from engine.adapters.db.pictures import PicturesRepository
from engine.adapters.db.prompts import PromptRepository
from engine.adapters.db.recordings import RecordingRepository
from engine.adapters.db.sessions import SessionRepository
from engine.adapters.db.tokens import TokenRepository
from engine.adapters.mail_sink import MailSinkReader
from engine.agi import AgiLimits, AgiServer
from engine.agi_routes import install_routes
from engine.config import Settings
from engine.domain.errors import ConfigError
from engine.domain.numberplan import NumberPlan
from engine.services.accounts import AccountService
from engine.services.addressbook import AddressBookService
from engine.services.audit import AuditService, NoAudit
from engine.services.bus import EventBus
from engine.services.calls import CallService
from engine.services.captcha import CaptchaService
from engine.services.conferences import ConferenceService
from engine.services.container import AdminServices, Services
from engine.services.dialin import DialinService
from engine.services.dialplan import DialplanService
from engine.services.failover import NodeFailover
from engine.services.handover import NodeHandover
from engine.services.idempotency import IdempotencyService
from engine.services.keypad import KeypadService
from engine.services.metrics import MetricsService
from engine.services.nodes import NodeService
from engine.services.notifier import Notifier
from engine.services.operator import LimitGuard, NumberPlans, OperatorService
from engine.services.outbox import MailOutbox
from engine.services.pictures import PicturesService
from engine.services.prompts import PromptService
from engine.services.quality import QualityService
from engine.services.recording import RecordingService
from engine.services.recovery import RecoveryService
from engine.services.scheduler import Scheduler
from engine.services.series import SeriesService
from engine.services.tokens import TokenService
from engine.stack import local_dialplan_sink, render_dialout

log = logging.getLogger(__name__)


def build_services(settings: Settings, pool: asyncpg.Pool, nodes: dict[str, AmiAdapter], agi: AgiServer,
                   bus: EventBus) -> Services:
    """Every service of one engine, each given its collaborators, in dependency order."""
    metrics = MetricsService(MetricsRepository(pool), bus=bus, nodes=nodes, agi=agi)
    audit = AuditService(AuditRepository(pool), bus)
    operator_repo = OperatorRepository(pool)
    default_plan = NumberPlan.from_settings(settings)
    plans = NumberPlans(operator_repo, default_plan)
    dialplan = DialplanService(operator_repo, default_plan, render=render_dialout, sink=local_dialplan_sink(settings))
    guard = LimitGuard(metrics.metrics, audit)
    prompts = PromptService(settings, PromptRepository(pool), operator_repo, audit)
    account_repo = AccountRepository(pool)
    tokens = TokenService(TokenRepository(pool), account_repo)
    accounts = AccountService(settings, account_repo, SessionRepository(pool), AccountLinkRepository(pool), audit,
                              tokens)
    conference_repo = ConferenceRepository(pool)
    calls = CallService(settings, conference_repo, CallSlotRepository(pool), nodes=nodes, bus=bus, plans=plans,
                        guard=guard, prompts=prompts)
    failover = NodeFailover(conference_repo, NodeRepository(pool), calls, bus, guard,
                            [node.node_id for node in settings.media_nodes])
    nodes_service = NodeService(NodeRepository(pool), operator_repo, audit, specs=settings.media_nodes, links=nodes,
                                alerts=guard, failover=failover)
    conferences = ConferenceService(settings, conference_repo, calls=calls, bus=bus, plans=plans,
                                    guard=guard, prompts=prompts, schedule_changed=asyncio.Event(),
                                    placement=nodes_service if settings.several_nodes else None)
    handover = NodeHandover(conference_repo, nodes_service, settings.media_nodes)
    quality = QualityService(conferences, nodes)
    notifier = Notifier(settings, pool, bus)
    series = SeriesService(settings, pool, bus, conferences, wake_mail=notifier.wake)
    recording = RecordingService(settings, RecordingRepository(pool), conference_repo, nodes=nodes, bus=bus,
                                 calls=calls)
    return Services(
        settings=settings,
        bus=bus,
        metrics=metrics,
        audit=audit,
        plans=plans,
        guard=guard,
        dialplan=dialplan,
        prompts=prompts,
        accounts=accounts,
        calls=calls,
        conferences=conferences,
        recovery=RecoveryService(settings, conference_repo, NodeRepository(pool), adapters=nodes, bus=bus, calls=calls),
        scheduler=Scheduler(settings, conferences),
        notifier=notifier,
        addressbook=AddressBookService(AddressBookRepository(pool), plans.for_account),
        captcha=CaptchaService(CaptchaRepository(pool), max_rows=settings.captcha_max),
        tokens=tokens,
        dialin=DialinService(settings, DialinRepository(pool), bus, series,
                             handover=handover if settings.several_nodes else None),
        handover=handover,
        keypad=KeypadService(settings, conference_repo, conferences=conferences, recording=recording,
                             prompts=prompts, bus=bus),
        recording=recording,
        quality=quality,
        operator=OperatorService(operator_repo, nodes=nodes, accounts=accounts, conferences=conferences,
                                 audit=audit, guard=guard, plans=plans, dialplan=dialplan),
        outbox=MailOutbox(MailSinkReader(settings.run_dir / "mail"), settings.mail_sink),
        pictures=PicturesService(settings, PicturesRepository(pool), bus, conferences, quality),
        series=series,
        idempotency=IdempotencyService(IdempotencyRepository(pool), timedelta(hours=settings.idempotency_hours)),
        nodes=nodes_service,
    )


@dataclass
class Engine:
    """Everything one engine process runs: database pool, AMI link per node, FastAGI server,
    and the services built on them (``services``, once started)."""

    settings: Settings
    pool: asyncpg.Pool | None = None
    nodes: dict[str, AmiAdapter] = field(default_factory=dict)
    agi: AgiServer | None = None
    bus: EventBus = field(default_factory=EventBus)
    _services: Services | None = field(default=None, repr=False)

    @property
    def ami(self) -> AmiAdapter:
        """The AMI adapter of the default node."""
        return self.nodes[self.settings.node_id]

    @property
    def services(self) -> Services:
        """The services of this engine; there are none before ``start``."""
        if self._services is None:
            raise RuntimeError("the engine has not been started")
        return self._services

    async def start(self) -> None:
        settings = self.settings
        settings.refuse_default_secrets()  # no development defaults on a real PBX
        if not settings.database_url:
            raise ConfigError("no database: set DATABASE_URL (or run through `python -m engine run`)")
        self.pool = await create_pool(settings.database_url)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        for node in settings.media_nodes:  # one AMI adapter per media node, keyed by node id
            adapter = AmiAdapter(node.ami, node.node_id)
            await adapter.connect()
            self.nodes[node.node_id] = adapter
        self.agi = AgiServer(settings.agi_host, settings.agi_port, settings.agi_secret,
                             allow=settings.agi_allow, limits=AgiLimits.from_settings(settings))
        self._services = build_services(settings, self.pool, self.nodes, self.agi, self.bus)
        install_routes(self.agi, self._services)
        self.agi.sounds = self._services.prompts.sound  # the operator's replacement prompts, for the IVR
        await self._services.start()
        await self.agi.start()
        log.info("engine started: nodes %s, FastAGI %s:%s",
                 ", ".join(f"{n.node_id} ({n.ami.host}:{n.ami.port})" for n in settings.media_nodes),
                 settings.agi_host, settings.agi_port)

    async def stop(self) -> None:
        if self._services is not None:
            await self._services.stop()
        if self.agi is not None:
            await self.agi.stop()
        for adapter in self.nodes.values():
            await adapter.close()
        if self.pool is not None:
            await self.pool.close()


@asynccontextmanager
async def admin_services(settings: Settings) -> AsyncIterator[AdminServices]:
    """The command line's services on a small pool of their own, migrations applied."""
    if not settings.database_url:
        raise ConfigError("set DATABASE_URL to the engine's PostgreSQL database")
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        account_repo = AccountRepository(pool)
        tokens = TokenService(TokenRepository(pool), account_repo)
        accounts = AccountService(settings, account_repo, SessionRepository(pool), AccountLinkRepository(pool),
                                  NoAudit(), tokens)
        yield AdminServices(accounts=accounts, tokens=tokens)
    finally:
        await pool.close()
