"""The composition root: builds the adapters and services of one engine process from its
settings, starts them in order and stops them in reverse."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from engine.adapters.asterisk import AmiLink, MediaNode, MediaNodes
from engine.adapters.db import create_pool
from engine.adapters.db.accounts import AccountLinkRepository, AccountRepository
from engine.adapters.db.addressbook import AddressBookRepository
from engine.adapters.db.audit import AuditRepository
from engine.adapters.db.captchas import CaptchaRepository
from engine.adapters.db.conferences import CallSlotRepository, ConferenceRepository
from engine.adapters.db.dialin import DialinRepository
from engine.adapters.db.idempotency import IdempotencyRepository
from engine.adapters.db.lease import Fence, LeaseRepository
from engine.adapters.db.metrics import MetricsRepository
from engine.adapters.db.migrations import migrate
from engine.adapters.db.nodes import NodeRepository
from engine.adapters.db.notifications import NotificationRepository
from engine.adapters.db.operator import OperatorRepository
from engine.adapters.db.pictures import PicturesRepository
from engine.adapters.db.prompts import PromptRepository
from engine.adapters.db.recordings import RecordingRepository
from engine.adapters.db.series import SeriesRepository
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
from engine.services.conference_lifecycle import ConferenceLifecycle
from engine.services.conference_limits import PlanChecks
from engine.services.conference_mail import ConferenceMail
from engine.services.conference_planning import ConferencePlanning
from engine.services.conference_records import ConferenceRecords
from engine.services.container import AdminServices, Services
from engine.services.dialin import DialinService
from engine.services.dialout import DialOutService
from engine.services.dialplan import DialplanService
from engine.services.failover import NodeFailover
from engine.services.handover import NodeHandover
from engine.services.idempotency import IdempotencyService
from engine.services.keypad import KeypadService
from engine.services.leadership import Leadership
from engine.services.limit_guard import LimitGuard
from engine.services.live_control import LiveControl
from engine.services.mail_delivery import MailDelivery
from engine.services.metrics import MetricsService
from engine.services.nodes import NodeService
from engine.services.notifier import Notifier
from engine.services.numberplans import NumberPlans, PlanGroupService
from engine.services.operator import OperatorService
from engine.services.operator_access import OperatorAccess
from engine.services.outbox import MailOutbox
from engine.services.participant_states import ParticipantStates
from engine.services.permanent_rooms import PermanentRooms
from engine.services.pictures import PicturesService
from engine.services.pin_guard import PinGuard, dialin_policy
from engine.services.prompts import PromptService
from engine.services.quality import QualityService
from engine.services.recording import RecordingService
from engine.services.recovery import RecoveryService
from engine.services.scheduler import Scheduler
from engine.services.selfservice import AccountSelfService
from engine.services.series import SeriesPlanning
from engine.services.series_mail import SeriesMail
from engine.services.series_occurrences import SeriesOccurrences
from engine.services.tokens import TokenService
from engine.stack import local_dialplan_sink, render_dialout

log = logging.getLogger(__name__)

CLAIM_CONNECTIONS = 4  # at most, for the dial-out claims (Engine.start)
CALL_STATE_CONNECTIONS = 4  # at most, for the call tracker's states (Engine.start)


def build_services(settings: Settings, pool: asyncpg.Pool, nodes: MediaNodes, agi: AgiServer,
                   bus: EventBus, fence: Fence | None = None, claims_pool: asyncpg.Pool | None = None,
                   calls_pool: asyncpg.Pool | None = None) -> Services:
    """Every service of one engine, each given its collaborators, in dependency order; ``fence``
    is the leader lease's token every dial-out claim checks (none: the engine runs alone), and
    ``claims_pool`` the connections the claims take their dial-out slots on, ``calls_pool`` those
    the dial-out and the call tracker store the calls' states on (each by default ``pool``)."""
    fence = fence or Fence(enabled=False)
    metrics = MetricsService(MetricsRepository(pool), bus=bus, nodes=nodes, agi=agi)
    audit = AuditService(AuditRepository(pool), bus)
    operator_repo = OperatorRepository(pool)
    default_plan = NumberPlan.from_settings(settings)
    plans = NumberPlans(default_plan)
    dialplan = DialplanService(operator_repo, default_plan, render=render_dialout, sink=local_dialplan_sink(settings))
    guard = LimitGuard(metrics.metrics, audit)
    operator_access = OperatorAccess(operator_repo, audit)
    prompts = PromptService(settings, PromptRepository(pool), operator_repo, audit)
    account_repo = AccountRepository(pool)
    tokens = TokenService(TokenRepository(pool), account_repo)
    accounts = AccountService(settings, account_repo, SessionRepository(pool), audit, tokens)
    conference_repo = ConferenceRepository(pool)
    call_states = ConferenceRepository(calls_pool or pool)
    states = ParticipantStates(call_states, bus)
    slots = CallSlotRepository(claims_pool or pool, fence)
    dialout = DialOutService(settings, call_states, slots, nodes=nodes, states=states, plans=plans, guard=guard)
    calls = CallService(settings, call_states, nodes=nodes, states=states, dialout=dialout, prompts=prompts)
    failover = NodeFailover(conference_repo, calls, bus, guard,
                            [node.node_id for node in settings.media_nodes])
    nodes_service = NodeService(NodeRepository(pool), conference_repo, operator_repo, audit,
                                specs=settings.media_nodes, links=nodes, alerts=guard, failover=failover)
    placement = nodes_service if settings.several_nodes else None
    records = ConferenceRecords(settings, conference_repo, bus, schedule_changed=asyncio.Event())
    checks = PlanChecks(conference_repo, plans, guard)
    lifecycle = ConferenceLifecycle(records, calls=calls, prompts=prompts, placement=placement)
    planning = ConferencePlanning(settings, records, checks, lifecycle=lifecycle, placement=placement)
    live = LiveControl(records, checks, calls=calls, lifecycle=lifecycle)
    handover = NodeHandover(conference_repo, nodes_service, settings.media_nodes)
    quality = QualityService(planning, nodes)
    notifications = NotificationRepository(pool)
    mail_delivery = MailDelivery(settings, notifications)
    notifier = Notifier(settings, notifications, bus, ConferenceMail(settings), mail_delivery)
    series_repo = SeriesRepository(pool)
    series_mail = SeriesMail(settings, pool, series_repo, records, wake_mail=mail_delivery.wake)
    occurrences = SeriesOccurrences(settings, series_repo, records, checks, mail=series_mail, bus=bus)
    series = SeriesPlanning(settings, series_repo, records, checks, planning=planning, occurrences=occurrences,
                            mail=series_mail)
    rooms = PermanentRooms(settings, series_repo, records, checks, series=series, lifecycle=lifecycle,
                           mail=series_mail, bus=bus)
    dialin_repo = DialinRepository(pool)
    pin_guard = PinGuard(dialin_repo, bus, dialin_policy(settings))
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
        selfservice=AccountSelfService(settings, account_repo, AccountLinkRepository(pool), accounts, audit),
        dialout=dialout,
        calls=calls,
        planning=planning,
        live=live,
        lifecycle=lifecycle,
        recovery=RecoveryService(settings, conference_repo, NodeRepository(pool), adapters=nodes, bus=bus, calls=calls),
        scheduler=Scheduler(settings, lifecycle, active=fence.holds),
        notifier=notifier,
        mail_delivery=mail_delivery,
        addressbook=AddressBookService(AddressBookRepository(pool), checks.number_plan),
        captcha=CaptchaService(CaptchaRepository(pool), max_rows=settings.captcha_max),
        tokens=tokens,
        dialin=DialinService(settings, dialin_repo, bus, rooms, pin_guard,
                             handover=handover if settings.several_nodes else None),
        pin_guard=pin_guard,
        handover=handover,
        keypad=KeypadService(settings, conference_repo, live=live, recording=recording,
                             prompts=prompts, bus=bus),
        recording=recording,
        quality=quality,
        operator=OperatorService(operator_repo, operator_access, nodes=nodes, accounts=accounts,
                                 conferences=live, audit=audit),
        plan_groups=PlanGroupService(operator_repo, operator_access, plans, dialplan),
        outbox=MailOutbox(MailSinkReader(settings.run_dir / "mail"), settings.mail_sink),
        pictures=PicturesService(settings, PicturesRepository(pool), bus, planning, quality),
        series=series,
        occurrences=occurrences,
        rooms=rooms,
        idempotency=IdempotencyService(IdempotencyRepository(pool), timedelta(hours=settings.idempotency_hours)),
        nodes=nodes_service,
    )


@dataclass
class Engine:
    """Everything one engine process runs: database pool, media nodes (an AMI link each),
    FastAGI server, and the services built on them (``services``, once started)."""

    settings: Settings
    pool: asyncpg.Pool | None = None
    links: dict[str, AmiLink] = field(default_factory=dict)  # node id -> its AMI link
    nodes: MediaNodes = field(default_factory=MediaNodes)
    agi: AgiServer | None = None
    bus: EventBus = field(default_factory=EventBus)
    leadership: Leadership | None = None  # the leader lease, when the engine is one of a pair
    deposed: asyncio.Event = field(default_factory=asyncio.Event)  # set when the lease was lost
    _services: Services | None = field(default=None, repr=False)
    _lease_pool: asyncpg.Pool | None = field(default=None, repr=False)
    _claims_pool: asyncpg.Pool | None = field(default=None, repr=False)
    _calls_pool: asyncpg.Pool | None = field(default=None, repr=False)
    _heap_frozen: bool = field(default=False, repr=False)

    @property
    def ami(self) -> AmiLink:
        """The AMI link of the default node."""
        return self.links[self.settings.node_id]

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
        self.pool = await create_pool(settings.database_url, name="veche-engine")
        async with self.pool.acquire() as conn:
            await migrate(conn)
        fence = Fence(enabled=bool(settings.engine_id))
        if settings.engine_id:  # one of a pair: the standby waits here until the lease is its own
            # a connection of the lease's own, so a busy pool never delays a renewal
            self._lease_pool = await create_pool(settings.database_url, min_size=1, max_size=1, name="veche-lease")
            self.leadership = Leadership(settings, LeaseRepository(self._lease_pool), fence)
            self.deposed = self.leadership.deposed
            await self.leadership.acquire()
        # Every dial-out claim takes the system-wide lock (sql/029_dialout_counts.sql), so claims
        # run one at a time whatever the pool. On connections of their own the claim that stands
        # between a start and its first Originate finds its statement prepared, its plan cached
        # and its server process warm: one after another they all take the connection released
        # last, which the pool keeps open however long it idles. The shared pool hands a claim
        # whichever connection the last write released, and closes those above its floor after
        # five idle minutes (bench/README.md, dial-out, thirteenth round). The other connections
        # serve claims that overlap, so that one waiting for its account's row (held by another
        # transaction, before the system-wide lock) does not hold up other accounts' claims.
        self._claims_pool = await create_pool(settings.database_url, min_size=1, max_size=CLAIM_CONNECTIONS,
                                              name="veche-claims")
        # The calls' states (joins, rings, leaves, hang-up causes, the tracker's look-ups) are
        # written on connections of their own too: the last join of a start stands between its
        # calls and their being stored connected. Every statement there finds its row by id,
        # call id or room, so a generic plan serves each from its first execution, and the
        # connections keep them prepared (bench/README.md, dial-out, fourteenth round). Two are
        # always open: a burst's last join is written beside the rest of its burst.
        self._calls_pool = await create_pool(settings.database_url, min_size=2, max_size=CALL_STATE_CONNECTIONS,
                                             name="veche-calls", settings={"plan_cache_mode": "force_generic_plan"})
        await self._connect_nodes()
        self.agi = AgiServer(settings.agi_host, settings.agi_port, settings.agi_secret,
                             allow=settings.agi_allow, limits=AgiLimits.from_settings(settings))
        self._services = build_services(settings, self.pool, self.nodes, self.agi, self.bus, fence,
                                        claims_pool=self._claims_pool, calls_pool=self._calls_pool)
        active = self._services.metrics.metrics.engine_active.labels(settings.engine_id)
        if self.leadership is None:
            active.set(1)
        else:
            self.leadership.on_change(lambda is_active: active.set(1 if is_active else 0))
        install_routes(self.agi, self._services)
        self.agi.sounds = self._services.prompts.sound  # the operator's replacement prompts, for the IVR
        await self._services.start()
        await self.agi.start()
        self._freeze_startup_heap()
        log.info("engine started: nodes %s, FastAGI %s:%s",
                 ", ".join(f"{n.node_id} ({n.ami.host}:{n.ami.port})" for n in settings.media_nodes),
                 settings.agi_host, settings.agi_port)

    async def _connect_nodes(self) -> None:
        """Log in to every Asterisk node and make it a media node, keyed by its node id (the
        node of ``settings.node_id`` is the default for a conference that names none)."""
        settings = self.settings
        self.nodes = MediaNodes(default=settings.node_id)
        targets = {node.node_id: node.ami for node in settings.media_nodes}  # node id -> its AMI target
        for node_id, target in targets.items():
            link = AmiLink(target, node_id)
            await link.connect()
            self.links[node_id] = link
            self.nodes.add(MediaNode(link))

    def _freeze_startup_heap(self) -> None:
        """Keep what start-up built (modules, number metadata, templates, pool, services) out of
        the garbage collector's full passes for the engine's life: such a pass walks every object
        the process holds, and with this heap it held the event loop for about 80 ms, once every
        few dial-outs of a few hundred callees, in the middle of their calls."""
        gc.collect()
        gc.freeze()
        self._heap_frozen = True

    async def stop(self) -> None:
        if self._heap_frozen:  # what the engine built can be collected again once it stops
            gc.unfreeze()
            self._heap_frozen = False
        if self._services is not None:
            await self._services.stop()
        if self.agi is not None:
            await self.agi.stop()
        for link in self.links.values():
            await link.close()
        if self.leadership is not None:
            await self.leadership.release()  # after everything stopped: the standby takes over now
        if self._lease_pool is not None:
            await self._lease_pool.close()
        for own in (self._claims_pool, self._calls_pool):
            if own is not None:
                await own.close()
        if self.pool is not None:
            await self.pool.close()


@asynccontextmanager
async def admin_services(settings: Settings) -> AsyncIterator[AdminServices]:
    """The command line's services on a small pool of their own, migrations applied."""
    if not settings.database_url:
        raise ConfigError("set DATABASE_URL to the engine's PostgreSQL database")
    pool = await create_pool(settings.database_url, min_size=1, max_size=2, name="veche-cli")
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        account_repo = AccountRepository(pool)
        tokens = TokenService(TokenRepository(pool), account_repo)
        accounts = AccountService(settings, account_repo, SessionRepository(pool), NoAudit(), tokens)
        yield AdminServices(accounts=accounts, tokens=tokens)
    finally:
        await pool.close()
