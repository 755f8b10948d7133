"""Recovery: after an engine start, an AMI link loss or an Asterisk restart, bring the stored
participant states back in line with what Asterisk really has (rooms, members, channels), keep
the calls in progress up, never dial anyone twice, and re-invite those an Asterisk restart cut off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.adapters.asterisk import LinkChanged, MediaNode, MediaNodes, NodeBooted, NodeEvent, NodeShutdown, RoomMember
from engine.adapters.db.conferences import ConferenceRepository, Left
from engine.adapters.db.nodes import NodeRepository
from engine.config import Settings
from engine.domain.errors import AmiError, VecheError
from engine.domain.model import (
    Conference,
    ConferenceState,
    FailureReason,
    Origin,
    Participant,
    ParticipantState,
)
from engine.services.bus import Bus, DomainEvent
from engine.services.calls import CallService

log = logging.getLogger(__name__)

IN_CALL = (ParticipantState.CALLING, ParticipantState.RINGING)
LIVE_CONFERENCE_STATES = (ConferenceState.RUNNING, ConferenceState.SCHEDULED)
BOOT_WAIT_SECONDS = 15.0  # after a reconnect, wait this long for Asterisk's FullyBooted
LEFT_DURING_OUTAGE_MARGIN = timedelta(seconds=2)
SETUP_GRACE_SECONDS = 10.0  # added to the ring timeout before a channel-less call counts as lost


@dataclass
class ResyncReport:
    """What one resync found and changed (logged, and returned for tests)."""

    node_id: str
    reason: str
    asterisk_restarted: bool = False
    kept: list[int] = field(default_factory=list)  # connected and still in the room
    reconnected: list[int] = field(default_factory=list)  # in the room, stored state corrected
    left: list[int] = field(default_factory=list)  # stored as connected but gone
    failed: list[int] = field(default_factory=list)  # dial-out whose call vanished unanswered
    reinvited: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)  # calls too fresh to judge; checked again later
    closed_rooms: list[str] = field(default_factory=list)


class RecoveryService:
    def __init__(self, settings: Settings, repo: ConferenceRepository, nodes: NodeRepository, *,
                 adapters: MediaNodes, bus: Bus, calls: CallService) -> None:
        self.settings = settings
        self.repo = repo
        self.nodes = nodes
        self.adapters = adapters
        self.bus = bus
        self.calls = calls
        self.reports: list[ResyncReport] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._booted: dict[str, asyncio.Event] = {}
        self._outage_since: dict[str, datetime] = {}
        self._tasks: set[asyncio.Task] = set()
        self.resynced = asyncio.Event()  # set after each resync (tests wait on it; cleared by them)

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        for node_id in self.adapters:
            self._booted[node_id] = asyncio.Event()
            self._booted[node_id].set()  # it answered our login just now
        self.adapters.subscribe(self._on_node_event)
        for node_id in self.adapters:
            try:
                await self.resync(node_id, "engine start")
            except AmiError as exc:  # the link may drop meanwhile; the link-up resync follows
                log.warning("recovery at start of node %s incomplete: %s", node_id, exc)
            except Exception:  # noqa: BLE001 - the engine still serves; the next link change retries
                log.exception("recovery at start of node %s failed", node_id)

    async def stop(self) -> None:
        self.adapters.unsubscribe(self._on_node_event)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _on_node_event(self, event: NodeEvent) -> None:
        booted = self._booted.setdefault(event.node_id, asyncio.Event())
        if isinstance(event, NodeBooted):
            booted.set()
        elif isinstance(event, NodeShutdown):
            booted.clear()
            self._outage_since.setdefault(event.node_id, datetime.now(UTC))
        elif isinstance(event, LinkChanged):
            self._on_link_change(event.node_id, event.up)

    def _on_link_change(self, node_id: str, up: bool) -> None:
        booted = self._booted.setdefault(node_id, asyncio.Event())
        if not up:
            booted.clear()
            self._outage_since.setdefault(node_id, datetime.now(UTC))
            return
        task = asyncio.create_task(self._after_reconnect(node_id), name=f"recovery-{node_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _recheck_later(self, node_id: str, delay: float) -> None:
        async def recheck() -> None:
            await asyncio.sleep(delay)  # a deadline, not an event: the call either showed up or not
            try:
                await self.resync(node_id, "recheck of fresh calls")
            except Exception:  # noqa: BLE001 - logged; the next link change retries
                log.exception("recovery recheck of node %s failed", node_id)

        task = asyncio.create_task(recheck(), name=f"recovery-recheck-{node_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_reconnect(self, node_id: str) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._booted[node_id].wait(), BOOT_WAIT_SECONDS)
        try:
            await self.resync(node_id, "AMI link up")
        except AmiError as exc:
            log.warning("recovery of node %s after reconnect incomplete: %s", node_id, exc)
        except Exception:  # noqa: BLE001 - logged; the next link change retries
            log.exception("recovery of node %s failed", node_id)

    # ----------------------------------------------------------------- resync

    async def resync(self, node_id: str, reason: str) -> ResyncReport:
        """Compare the node's running conferences in the database with Asterisk and correct the
        database; re-invite whom an Asterisk restart cut off. Safe to run at any time."""
        lock = self._locks.setdefault(node_id, asyncio.Lock())
        async with lock:
            report = await self._resync(node_id, reason)
        self.reports.append(report)
        del self.reports[:-100]
        self.resynced.set()
        log.info("recovery of node %s (%s): restarted=%s kept=%d reconnected=%d left=%d failed=%d "
                 "reinvited=%d deferred=%d closed=%d", node_id, reason, report.asterisk_restarted, len(report.kept),
                 len(report.reconnected), len(report.left), len(report.failed), len(report.reinvited),
                 len(report.deferred), len(report.closed_rooms))
        return report

    async def _resync(self, node_id: str, reason: str) -> ResyncReport:
        adapter = self.adapters[node_id]
        report = ResyncReport(node_id, reason)
        boot = await adapter.boot_time()
        previous_boot = await self.nodes.swap_boot(node_id, boot)
        report.asterisk_restarted = previous_boot is not None and previous_boot != boot
        outage_since = self._outage_since.pop(node_id, None)
        rooms = await adapter.rooms()
        channels = await adapter.channel_ids()
        now = datetime.now(UTC)
        in_flight = set(self.calls.dialout.attempts)
        live = await self.repo.list(None, [str(s) for s in LIVE_CONFERENCE_STATES], node_id=node_id)
        vanished: list[tuple[Conference, Participant]] = []
        for conference in live:
            members = await self._members(adapter, conference.room) if conference.room in rooms else {}
            cut_off: list[Participant] = []
            for participant in conference.participants:
                if participant.call_id and participant.call_id in in_flight:
                    continue  # this engine is dialling it right now; its tracker follows the outcome
                member = members.get(participant.call_id or "")
                if member is not None:
                    await self._in_room(conference, participant, member, report)
                elif participant.state == ParticipantState.CONNECTED:
                    await self._gone(conference, participant, now, report, report.asterisk_restarted)
                    if report.asterisk_restarted:
                        cut_off.append(participant)
                elif participant.state in IN_CALL:
                    if participant.call_id and ({participant.call_id, participant.call_id + "-2"} & channels):
                        continue  # still ringing or joining; events will tell
                    vanished.append((conference, participant))
                elif (report.asterisk_restarted and participant.state == ParticipantState.LEFT
                      and outage_since is not None and participant.left_at is not None
                      and participant.left_at >= outage_since - LEFT_DURING_OUTAGE_MARGIN):
                    cut_off.append(participant)  # hung up by Asterisk's own shutdown
            if report.asterisk_restarted and conference.state == ConferenceState.RUNNING:
                await self._resume(conference, cut_off, now, report)
        # a call set up moments ago may not have a channel yet (another engine's dial still
        # queued): judge those again once any such call would have rung out
        grace = self.settings.ring_timeout + SETUP_GRACE_SECONDS
        fresh_ids = [p.id for _, p in vanished] if not report.asterisk_restarted else []
        recent = await self.repo.changed_recently(fresh_ids, grace) if fresh_ids else set()
        for conference, participant in vanished:
            if participant.id in recent:
                report.deferred.append(participant.id)
            else:
                await self._vanished(conference, participant, report)
        if report.deferred:
            self._recheck_later(node_id, grace)
        # rooms of conferences that are over but still have members (the engine died ending them)
        for conference_id, room in await self.repo.finished_rooms(node_id, sorted(rooms)) if rooms else []:
            for member in (await self._members(adapter, room)).values():
                with contextlib.suppress(AmiError):
                    await adapter.hangup_channel(member.channel)
            report.closed_rooms.append(room)
            await self.repo.log_event(conference_id, "conference.room_closed", detail={"by": "recovery"})
        return report

    @staticmethod
    async def _members(adapter: MediaNode, room: str) -> dict[str, RoomMember]:
        """The room's members by call id, and a dial-in caller's also by the token the IVR put
        on its channel (for a join whose event the engine missed)."""
        members: dict[str, RoomMember] = {}
        for member in await adapter.members(room):
            members[member.call_id] = member
            if member.token is not None:
                members.setdefault(member.token, member)
        return members

    async def _in_room(self, conference: Conference, participant: Participant, member: RoomMember,
                       report: ResyncReport) -> None:
        channel = member.channel or participant.channel
        call_id = member.call_id if member.identified else participant.call_id  # learned from the node
        self.calls.states.track_call(call_id)
        muted = member.muted
        if participant.state == ParticipantState.CONNECTED:
            if participant.channel != channel or participant.muted != muted or participant.call_id != call_id:
                await self.repo.update_participant(participant.id, channel=channel, muted=muted, call_id=call_id)
            report.kept.append(participant.id)
            return
        await self.repo.update_participant(
            participant.id, state=ParticipantState.CONNECTED, channel=channel, muted=muted, call_id=call_id,
            joined_at=participant.joined_at or datetime.now(UTC), left_at=None, failure_reason=None)
        report.reconnected.append(participant.id)
        await self.repo.log_event(conference.id, "participant.joined", participant_id=participant.id,
                                  detail={"number": participant.number, "recovered": True,
                                          "stored_state": str(participant.state)})
        await self._publish(conference, participant, "connected", None)

    async def _gone(self, conference: Conference, participant: Participant, now: datetime,
                    report: ResyncReport, interrupted: bool) -> None:
        leave = Left(now, participant.call_id, detail={"recovered": True, "interrupted": interrupted})
        stored = await self.repo.mark_left({participant.id: leave})
        if participant.id not in stored:
            return
        report.left.append(participant.id)
        await self._publish(conference, participant, "left", None)

    async def _vanished(self, conference: Conference, participant: Participant, report: ResyncReport) -> None:
        """A call being set up when the engine lost sight of it, and gone now without reaching
        the room: a dial-out failed (outcome unknown), a dial-in caller left."""
        if participant.origin == Origin.DIALIN:
            updated = await self.repo.update_participant(
                participant.id, only_states=[str(s) for s in IN_CALL], state=ParticipantState.LEFT,
                left_at=datetime.now(UTC))
            state, reason = "left", None
        else:
            updated = await self.repo.update_participant(
                participant.id, only_states=[str(s) for s in IN_CALL], state=ParticipantState.FAILED,
                failure_reason=FailureReason.ERROR)
            state, reason = "failed", str(FailureReason.ERROR)
        if updated is None:
            return
        report.failed.append(participant.id)
        await self.repo.log_event(conference.id, f"participant.{state}", participant_id=participant.id,
                                  detail={"reason": reason, "recovered": True, "why": "call lost while the "
                                          "engine was not watching"})
        await self._publish(conference, participant, state, reason)

    async def _resume(self, conference: Conference, cut_off: list[Participant], now: datetime,
                      report: ResyncReport) -> None:
        """Asterisk restarted under a running conference: record the interruption and, if the
        conference still has time, dial back the dial-out participants it cut off (once: they
        are 'calling' afterwards, so a later resync does not pick them again)."""
        await self.repo.log_event(conference.id, "conference.interrupted", detail={
            "node": conference.node_id, "why": "asterisk restarted",
            "participants": [p.id for p in cut_off]})
        await self._publish_conference(conference, "conference.interrupted", {"participants": [p.id for p in cut_off]})
        if conference.ends_at <= now or not cut_off:
            return
        fresh = [await self.repo.get_participant(p.id) for p in cut_off if p.origin == Origin.DIALOUT]
        dialable = [p for p in fresh if p is not None and p.state in (ParticipantState.LEFT, ParticipantState.FAILED)]
        try:
            queued = await self.calls.dial(conference, dialable, actor="engine:recovery", strict_rate=False)
        except VecheError as exc:  # e.g. the account was blocked meanwhile
            log.warning("recovery could not re-invite into conference %s: %s", conference.id, exc)
            await self.repo.log_event(conference.id, "conference.resume_failed", detail={"error": str(exc)})
            return
        report.reinvited.extend(queued)
        await self.repo.log_event(conference.id, "conference.resumed", detail={"reinvited": queued})
        await self._publish_conference(conference, "conference.resumed", {"reinvited": queued})

    async def _publish(self, conference: Conference, participant: Participant, state: str,
                       reason: str | None) -> None:
        await self.bus.publish(DomainEvent(
            kind="participant.state", conference_id=conference.id, owner_id=conference.owner_id,
            participant_id=participant.id, data={"state": state, "reason": reason, "cause": None,
                                                 "recovered": True}))

    async def _publish_conference(self, conference: Conference, kind: str, data: dict[str, Any]) -> None:
        await self.bus.publish(DomainEvent(kind=kind, conference_id=conference.id,
                                                  owner_id=conference.owner_id, data=data))

