"""The typed container of one engine's services: built once by the composition root
(engine/app.py) and handed to the entry points (portal, API, FastAGI routes), which reach every
service through its attribute, never by name."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import Settings
from engine.services.accounts import AccountService
from engine.services.addressbook import AddressBookService
from engine.services.audit import AuditService
from engine.services.bus import EventBus
from engine.services.calls import CallService
from engine.services.captcha import CaptchaService
from engine.services.conference_lifecycle import ConferenceLifecycle
from engine.services.conference_planning import ConferencePlanning
from engine.services.dialin import DialinService
from engine.services.dialout import DialOutService
from engine.services.dialplan import DialplanService
from engine.services.handover import NodeHandover
from engine.services.idempotency import IdempotencyService
from engine.services.keypad import KeypadService
from engine.services.limit_guard import LimitGuard
from engine.services.live_control import LiveControl
from engine.services.mail_delivery import MailDelivery
from engine.services.metrics import MetricsService
from engine.services.nodes import NodeService
from engine.services.notifier import Notifier
from engine.services.numberplans import NumberPlans, PlanGroupService
from engine.services.operator import OperatorService
from engine.services.outbox import MailOutbox
from engine.services.permanent_rooms import PermanentRooms
from engine.services.pictures import PicturesService
from engine.services.pin_guard import PinGuard
from engine.services.prompts import PromptService
from engine.services.quality import QualityService
from engine.services.recording import RecordingService
from engine.services.recovery import RecoveryService
from engine.services.scheduler import Scheduler
from engine.services.selfservice import AccountSelfService
from engine.services.series import SeriesPlanning
from engine.services.series_occurrences import SeriesOccurrences
from engine.services.tokens import TokenService


@dataclass(frozen=True)
class Services:
    """Every service of a running engine, with the settings and the event bus they share."""

    settings: Settings
    bus: EventBus
    metrics: MetricsService
    audit: AuditService
    plans: NumberPlans
    guard: LimitGuard
    dialplan: DialplanService
    prompts: PromptService
    accounts: AccountService
    selfservice: AccountSelfService
    dialout: DialOutService
    calls: CallService
    planning: ConferencePlanning
    live: LiveControl
    lifecycle: ConferenceLifecycle
    recovery: RecoveryService
    scheduler: Scheduler
    notifier: Notifier
    mail_delivery: MailDelivery
    addressbook: AddressBookService
    captcha: CaptchaService
    tokens: TokenService
    dialin: DialinService
    pin_guard: PinGuard
    keypad: KeypadService
    recording: RecordingService
    quality: QualityService
    operator: OperatorService
    plan_groups: PlanGroupService
    outbox: MailOutbox
    pictures: PicturesService
    idempotency: IdempotencyService
    series: SeriesPlanning
    occurrences: SeriesOccurrences
    rooms: PermanentRooms
    nodes: NodeService
    handover: NodeHandover

    async def start(self) -> None:
        """Start the services that run on their own, in this order: the number plan's dialplan
        installed in Asterisk first (so no dial-out runs under a stale one), the purge of old
        dial-out counts, the call tracker before recovery (which reads the calls in flight), then
        the mail delivery and the notifier, the purges of stale sessions, links and CAPTCHAs, the
        recorder, metrics, audit and the rest, and the scheduler last: a conference due while no
        engine ran starts only once recovery has its view and every service that listens to a
        start (recording, metrics, audit) listens."""
        await self.dialplan.start()
        await self.prompts.start()
        await self.nodes.start()  # the node rows, before recovery reads a node's boot
        await self.dialout.start()
        await self.calls.start()
        await self.recovery.start()
        await self.mail_delivery.start()
        await self.notifier.start()
        await self.accounts.start()
        await self.selfservice.start()
        await self.captcha.start()
        await self.recording.start()
        await self.metrics.start()
        await self.audit.start()
        await self.pictures.start()
        await self.occurrences.start()
        await self.rooms.start()
        await self.scheduler.start()

    async def stop(self) -> None:
        """Stop them in the reverse order of their start, the scheduler first (each stop is safe
        on a service that never started): the starts it cancels hand their listeners not yet run
        (recording, metrics, audit) to the bus, which runs them out while those services still
        stand, and no conference starts under a half-stopped engine. The starts' bookkeeping
        (ConferenceLifecycle) runs out likewise."""
        await self.scheduler.stop()
        await self.lifecycle.stop()
        await self.bus.settled()
        await self.rooms.stop()
        await self.occurrences.stop()
        await self.pictures.stop()
        await self.audit.stop()
        await self.metrics.stop()
        await self.recording.stop()
        await self.dialin.stop()
        await self.captcha.stop()
        await self.selfservice.stop()
        await self.accounts.stop()
        await self.notifier.stop()
        await self.mail_delivery.stop()
        await self.recovery.stop()
        await self.calls.stop()
        await self.dialout.stop()
        await self.nodes.stop()


@dataclass(frozen=True)
class AdminServices:
    """The services the command line's account and token commands use (no Asterisk, no audit)."""

    accounts: AccountService
    tokens: TokenService
