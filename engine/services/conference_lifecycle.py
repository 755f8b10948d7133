"""The life cycle of a conference, driven by the scheduler: the start at its time, the deadline
warning, the deadline itself (auto-extend or end) and the end with its teardown of the room."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

from engine.adapters.asterisk import MediaNode, NodeEvent, RoomEnded
from engine.adapters.db.conferences import LogEntry, SlotGrant
from engine.domain import speech
from engine.domain.errors import AmiError
from engine.domain.model import Conference, ConferenceState, FailureReason, ParticipantState
from engine.domain.planning import AccountRules
from engine.services.calls import IN_CALL_STATES, CallService, now_utc
from engine.services.conference_records import ConferenceRecords
from engine.services.nodes import NO_NODE, Placement
from engine.services.prompts import PromptService

log = logging.getLogger(__name__)

ROOM_EMPTY_TIMEOUT = 10.0
# A start's bookkeeping (mail, audit, metrics) waits while its calls are being set up, so that it
# does not take the cores from them: until every call joined or failed, or none did for
# BOOKKEEPING_QUIET_SECONDS (the rest are ringing; phones ring for seconds), and never longer
# than BOOKKEEPING_LONGEST_SECONDS. A person sees no difference in a mail a second later.
BOOKKEEPING_QUIET_SECONDS = 0.25
BOOKKEEPING_LONGEST_SECONDS = 5.0


class ConferenceLifecycle:
    """Starts, warns, extends at the deadline and ends conferences; announces into the room."""

    def __init__(self, records: ConferenceRecords, *, calls: CallService, prompts: PromptService,
                 placement: Placement | None = None) -> None:
        self.records = records
        self.placement = placement  # several media nodes: which one a starting conference goes to
        self.repo = records.repo
        self.calls = calls
        self.prompts = prompts
        self._bookkeeping: set[asyncio.Task[None]] = set()  # starts' listeners waiting for their calls
        self._stopping = asyncio.Event()  # the engine stops: the listeners wait no longer

    async def settled(self) -> None:
        """Until the bookkeeping of the starts so far has run (its listeners heard of them)."""
        while self._bookkeeping:
            await asyncio.gather(*self._bookkeeping, return_exceptions=True)

    async def stop(self) -> None:
        """Run out the bookkeeping of the starts so far: their waits for the calls end at once,
        and their listeners run while the services they call still stand."""
        self._stopping.set()
        await self.settled()

    async def start_conference(self, conference_id: int, actor: str = "engine") -> Conference | None:
        """Start a scheduled conference (once, even with several engines) and dial its planned
        participants when auto-invite is on. None when it was not scheduled any more."""
        missed = await self.repo.transition_if_over(conference_id, ConferenceState.FAILED, end_reason="missed",
                                                    ended_at=now_utc())
        if missed is not None:  # the engine was down for the whole planned time
            log.warning("conference %s was missed: its end passed before it could start", conference_id)
            await self.repo.log_event(conference_id, "conference.failed", actor=actor, detail={"reason": "missed"})
            await self.records.publish("conference.failed", missed, reason="missed")
            return None
        if await self._owner_blocked(conference_id):  # a blocked account's conferences never start
            log.warning("conference %s not started: its account is blocked", conference_id)
            failed = await self.repo.transition(conference_id, [ConferenceState.SCHEDULED], ConferenceState.FAILED,
                                                end_reason="account_blocked", ended_at=now_utc())
            if failed is not None:
                await self.repo.log_event(conference_id, "conference.failed", actor=actor,
                                          detail={"reason": "account_blocked"})
                await self.records.publish("conference.failed", failed, reason="account_blocked")
            return None
        if self.placement is not None and not await self._placed(conference_id, actor):
            return None
        started = await self.repo.transition(conference_id, [ConferenceState.SCHEDULED], ConferenceState.RUNNING,
                                             started_at=now_utc())
        if started is None:
            return None
        await self.after_start(started, actor)
        return started

    async def start_due(self, node_id: str) -> list[Conference]:
        """Start every conference of the node whose time has come, in one compare-and-set (the
        scheduler's decision for a thousand at once); the missed and the blocked ones are left to
        ``start_conference``. The caller runs ``after_start`` for each one returned. With several
        media nodes none is started here: each is placed on its node by ``start_conference``."""
        if self.placement is not None:
            return []
        return await self.repo.start_due(node_id, now_utc())

    async def after_start(self, started: Conference, actor: str = "engine") -> None:
        """What follows a start: the event log, the dial-out, the bus, the scheduler's next time."""
        lateness = (started.started_at - started.starts_at).total_seconds()
        await self.repo.log_event(started.id, "conference.started", actor=actor,
                                  detail={"late_seconds": round(lateness, 3)})
        told = [self.records.deliver("conference.started", started)]

        async def dial() -> list[int]:
            if not started.auto_invite:
                return []
            started.participants = await self.repo.participants(started.id)
            planned = [p for p in started.participants if p.state == ParticipantState.PLANNED]
            return await self.calls.dial(started, planned, actor=actor, strict_rate=False)

        await self._dial_then_tell(started.id, dial(), told)

    async def store_open(self, fields: dict[str, Any], participants: list[dict[str, Any]], events: list[LogEntry],
                         rules: AccountRules) -> tuple[Conference, SlotGrant | None]:
        """Store an immediate plan (``fields`` say running) on a single media node: with
        auto-invite, together with the call slots of its participants in one transaction
        (engine/services/dialout.py ``claim_new``). Raises as the repository's insert does."""
        if not fields["auto_invite"]:
            return await self.repo.insert_conference(fields, participants, events), None
        return await self.calls.claim_new(fields, participants, events, rules=rules)

    async def opened(self, conference: Conference, grant: SlotGrant | None, rules: AccountRules) -> None:
        """What follows ``store_open``: the claimed calls are dialled, then the bus's listeners
        of the plan and the start run."""
        told = [self.records.deliver("conference.scheduled", conference, immediate=True),
                self.records.deliver("conference.started", conference)]
        dialling = None if grant is None else self.calls.dial_claimed(conference, grant, rules)
        await self._dial_then_tell(conference.id, dialling, told)

    async def _dial_then_tell(self, conference_id: int, dialling: Awaitable[list[int]] | None,
                              told: list[Awaitable[None]]) -> None:
        """Run the start's dial-out, then the bus's asynchronous listeners (mail, audit, metrics)
        of the events in ``told``, whose plain subscribers (the console) have heard already. When
        ``dialling`` placed calls (it returns the ids of their participants), the listeners run in
        a task of their own: the start returns once its calls are placed, and the listeners wait
        until the calls have joined or failed or stopped doing so (BOOKKEEPING_QUIET_SECONDS), so
        that they do not take the cores from the calls being set up."""
        try:
            dialled = await dialling if dialling is not None else []
        except BaseException:
            await self._tell(told)
            raise
        if not dialled:
            await self._tell(told)
            return
        task = asyncio.get_running_loop().create_task(self._tell_when_settled(conference_id, told),
                                                      name=f"bookkeeping-{conference_id}")
        self._bookkeeping.add(task)
        task.add_done_callback(self._bookkeeping.discard)

    async def _tell_when_settled(self, conference_id: int, told: list[Awaitable[None]]) -> None:
        if not self._stopping.is_set():
            settling = asyncio.ensure_future(self.calls.calls_settled(
                conference_id, BOOKKEEPING_QUIET_SECONDS, BOOKKEEPING_LONGEST_SECONDS))
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait((settling, stopping), return_when=asyncio.FIRST_COMPLETED)
            finally:
                settling.cancel()
                stopping.cancel()
        await self._tell(told)

    async def _tell(self, told: list[Awaitable[None]]) -> None:
        for listening in told:
            await listening
        self.records.wake_scheduler()

    async def _placed(self, conference_id: int, actor: str) -> bool:
        """Place a starting conference on a media node; one that fits no node fails (the operator
        is alerted)."""
        assert self.placement is not None
        conference = await self.repo.get(conference_id, with_participants=False)
        if conference is None or await self.placement.place(conference) is not None:
            return True
        failed = await self.repo.transition(conference_id, [ConferenceState.SCHEDULED], ConferenceState.FAILED,
                                            end_reason=NO_NODE, ended_at=now_utc())
        if failed is not None:
            self.placement.no_node_alert(failed)
            await self.repo.log_event(conference_id, "conference.failed", actor=actor, detail={"reason": NO_NODE})
            await self.records.publish("conference.failed", failed, reason=NO_NODE)
        return False

    async def _owner_blocked(self, conference_id: int) -> bool:
        conference = await self.repo.get(conference_id, with_participants=False)
        if conference is None:
            return False
        limits = await self.repo.account_limits(conference.owner_id)
        return bool(limits and limits["blocked"])

    async def warn(self, conference: Conference) -> None:
        """Play the deadline warning into the room, once."""
        if not await self.repo.mark_warned(conference.id):
            return
        detail: dict[str, Any] = {"ends_at": conference.ends_at.isoformat(), "language": conference.language}
        if not await self.repo.count_participants(conference.id, [ParticipantState.CONNECTED]):
            return  # nobody to warn; do not create an empty room for the announcer
        left = max(0, round((conference.ends_at - now_utc()).total_seconds()))
        if left >= 60:
            left = round(left / 60) * 60  # said in whole minutes
        announcement = speech.warning(conference.language, left, self._phrases(conference.language))
        detail["prompts"] = list(announcement.files())
        try:
            detail["announcer"] = await self.calls.announce(conference, announcement)
        except AmiError as exc:
            detail["error"] = str(exc)
        await self.repo.log_event(conference.id, "conference.warned", detail=detail)
        await self.records.publish("conference.warned", conference, ends_at=conference.ends_at.isoformat(),
                                   seconds_left=left, language=conference.language)

    def _phrases(self, language: str) -> frozenset[str]:
        """The prompts the operator replaced in ``language`` (the Veche phrases among them make
        Russian minutes grammatical)."""
        return self.prompts.phrases(language)

    async def announce_extension(self, conference: Conference, minutes: int) -> str | None:
        """Tell the room that its end moved by ``minutes``."""
        return await self._announce(conference, speech.extended(conference.language, minutes,
                                                                self._phrases(conference.language)))

    async def _announce(self, conference: Conference, announcement: speech.Announcement,
                        wait: bool = False) -> str | None:
        """Play an announcement into the room when anyone is connected; an Asterisk failure is
        logged and never stops what the announcement is about."""
        if not await self.repo.count_participants(conference.id, [ParticipantState.CONNECTED]):
            return None
        try:
            return await self.calls.announce(conference, announcement, wait=wait)
        except AmiError as exc:
            log.warning("conference %s: announcement %s not played: %s", conference.id, announcement.files(), exc)
            return None

    async def deadline(self, conference: Conference) -> Conference | None:
        """The conference reached its end: auto-extend when on, someone is connected and the
        cap allows; otherwise end it."""
        if conference.auto_extend_minutes:
            connected = await self.repo.count_participants(conference.id, [ParticipantState.CONNECTED])
            if connected:
                step = conference.auto_extend_minutes
                extended = await self.repo.extend(conference.id, self.records.minutes(step).total_seconds(), step,
                                                  count_against_cap=True)
                if extended is not None:
                    log.info("conference %s auto-extended by %s min to %s", conference.id, step, extended.ends_at)
                    await self.repo.log_event(conference.id, "conference.extended",
                                              detail={"minutes": step, "auto": True,
                                                      "ends_at": extended.ends_at.isoformat()})
                    await self.records.publish("conference.extended", extended, minutes=step, auto=True,
                                               ends_at=extended.ends_at.isoformat())
                    await self.announce_extension(extended, step)
                    return extended
                await self.repo.log_event(conference.id, "conference.extend_refused",
                                          detail={"why": "cap", "cap_minutes": conference.extend_cap_minutes})
        return await self.end_conference(conference.id, reason="deadline", actor="engine")

    async def end_conference(self, conference_id: int, reason: str, actor: str = "engine") -> Conference | None:
        """End a running conference: state ended, every channel leaves and is hung up, the room
        closes. None when it was not running."""
        ended = await self.repo.transition(conference_id, [ConferenceState.RUNNING], ConferenceState.ENDED,
                                           ended_at=now_utc(), end_reason=reason)
        if ended is None:
            return None
        # everyone hears that it has ended; the hang-up waits for the announcer to finish
        await self._announce(ended, speech.ending(ended.language), wait=True)
        await self._teardown(ended)
        await self.repo.log_event(conference_id, "conference.ended", actor=actor, detail={"reason": reason})
        await self.records.publish("conference.ended", ended, reason=reason)
        self.records.wake_scheduler()
        return ended

    async def _teardown(self, conference: Conference) -> None:
        node = self.calls.node(conference.node_id)
        try:
            members = await node.members(conference.room)
        except AmiError as exc:
            log.warning("conference %s: cannot list the room: %s", conference.id, exc)
            members = []
        room_closed = asyncio.get_running_loop().create_future()

        def on_end(event: NodeEvent) -> None:
            if isinstance(event, RoomEnded) and event.room == conference.room and not room_closed.done():
                room_closed.set_result(True)

        node.subscribe(on_end)
        try:
            # all at once: their hang-ups and the leaves that follow are written in batches
            await asyncio.gather(*(self._hang_up_member(node, member.channel) for member in members))
            participants = await self.repo.participants(conference.id)
            for participant in participants:
                if participant.state in IN_CALL_STATES:
                    self.calls.forget_attempt(participant.call_id)
                    await self.calls.hangup(participant)
            if members:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(room_closed, ROOM_EMPTY_TIMEOUT)
        finally:
            node.unsubscribe(on_end)
        remaining = await self.repo.participants(conference.id)
        await asyncio.gather(*(self.calls.mark_left(participant, None) for participant in remaining
                               if participant.state == ParticipantState.CONNECTED))
        for participant in remaining:
            if participant.state in IN_CALL_STATES:
                await self.calls.mark_failed(participant, conference.owner_id, FailureReason.CANCELLED, None,
                                             detail={"why": "conference ended"})

    @staticmethod
    async def _hang_up_member(node: MediaNode, channel: str) -> None:
        with contextlib.suppress(AmiError):
            await node.hangup_channel(channel)
