"""In-memory fakes of the engine's own interfaces, for unit tests of the services' rules: the
AMI link under a real media node (only the methods the node calls on it), the conference
repository and the dial-out slot repository (only what those services use), and the small
collaborators build_services hands them. Each fake keeps state in plain dicts and lists and
records what the service asked of it; none of them speaks Asterisk or SQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from engine.adapters.asterisk import MediaNode, MediaNodes
from engine.adapters.asterisk.ami import AmiEvent
from engine.adapters.asterisk.contract import ANNOUNCER_PREFIX
from engine.adapters.db.conferences import Joined, Left, LogEntry, SlotGrant, SlotRequest
from engine.adapters.db.lease import Fence
from engine.config import Settings
from engine.domain.errors import AmiError
from engine.domain.model import Conference, ConferenceState, Origin, Participant, ParticipantState, Role
from engine.domain.numberplan import NumberPlan
from engine.services.bus import DomainEvent, EventBus
from engine.services.calls import CallService
from engine.services.conference_lifecycle import ConferenceLifecycle
from engine.services.conference_limits import PlanChecks
from engine.services.conference_planning import ConferencePlanning
from engine.services.conference_records import ConferenceRecords
from engine.services.dialout import DialOutService
from engine.services.live_control import LiveControl
from engine.services.participant_states import ParticipantStates

NODE = "ast1"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FakeNode:
    """The AMI link of one node as its media node uses it: Originates, hang-ups and room actions
    are recorded; ``emit`` hands an AMI event to the subscribers as the link would."""

    connected = True
    reconnects = 0

    def __init__(self, node_id: str = NODE) -> None:
        self.node_id = node_id
        self.originates: list[dict[str, Any]] = []
        self.hangups: list[str] = []
        self.live_channels: set[str] = set()  # what getvar finds (the watchdog's question)
        self.sends_now = 0  # bursts sent at once (send_now)
        self.getvars = 0
        self.variables: dict[tuple[str, str], str] = {}
        self.members: list[dict[str, str]] = []
        self.locks: list[tuple[str, bool]] = []
        self.room_actions: list[tuple[str, ...]] = []  # mutes and kicks, as (action, room, channel[, muted])
        self.refuse_room_actions = False  # Asterisk answers every room action with an error
        self._subscribers: list[tuple[Callable[[AmiEvent], Any], tuple[str, ...] | None]] = []
        self._played: set[asyncio.Task[None]] = set()
        self.settle: list[Callable[[], Awaitable[None]]] = []  # awaited after each emit (CallService.settled)

    def subscribe(self, callback: Callable[[AmiEvent], Any], events: Iterable[str] | None = None) -> None:
        self._subscribers.append((callback, tuple(events) if events is not None else None))

    def unsubscribe(self, callback: Callable[[AmiEvent], Any]) -> None:
        self._subscribers = [(cb, names) for cb, names in self._subscribers if cb != callback]

    def on_link_change(self, callback: Callable[[str, bool], Any]) -> None:
        pass

    async def emit(self, name: str, **headers: str) -> None:
        event = AmiEvent(self.node_id, name, dict(headers))
        for callback, names in list(self._subscribers):
            if names is None or name in names:
                result = callback(event)
                if asyncio.iscoroutine(result):
                    await result
        for settled in self.settle:  # the tracker handles events in tasks of its own
            await settled()

    async def originate(self, **action: Any) -> None:
        await self.start_originate(self.prepare_originate(**action))

    def prepare_originate(self, **action: Any) -> dict[str, Any]:
        return action

    def start_originate(self, action: dict[str, Any]) -> Awaitable[None]:
        self.originates.append(action)
        if action["channel_id"].startswith(ANNOUNCER_PREFIX):  # an announcement plays and hangs up
            self._played.add(asyncio.get_running_loop().create_task(
                self.emit("Hangup", Uniqueid=action["channel_id"], Cause="16")))
            self._played = {task for task in self._played if not task.done()}
        return asyncio.sleep(0)

    def send_now(self) -> None:
        self.sends_now += 1

    async def getvar(self, channel: str, name: str) -> str:
        self.getvars += 1
        if channel not in self.live_channels:
            raise AmiError("no such channel")
        return channel

    async def hangup(self, channel: str) -> None:
        self.hangups.append(channel)

    async def setvar(self, channel: str, name: str, value: str) -> None:
        self.variables[(channel, name)] = value

    async def confbridge_members(self, room: str) -> list[AmiEvent]:
        return [AmiEvent(self.node_id, "ConfbridgeList", dict(m)) for m in self.members]

    async def confbridge_lock(self, room: str, locked: bool) -> None:
        if self.refuse_room_actions:
            raise AmiError("No Conference by that name found.")
        self.locks.append((room, locked))

    async def confbridge_mute(self, room: str, channel: str, muted: bool) -> None:
        if self.refuse_room_actions:
            raise AmiError("No Channel by that name found in conference.")
        self.room_actions.append(("mute", room, channel, str(muted)))

    async def confbridge_kick(self, room: str, channel: str) -> None:
        if self.refuse_room_actions:
            raise AmiError("No Channel by that name found in conference.")
        self.room_actions.append(("kick", room, channel))


class FakeConferenceRepo:
    """Conferences and participants in dicts, with the same compare-and-set rules as the SQL:
    an update names the states it may leave, an extension stays within the cap, a warning is
    marked once, a transition only from the given states."""

    def __init__(self) -> None:
        self.conferences: dict[int, Conference] = {}
        self.participants_by_id: dict[int, Participant] = {}
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.warned: set[int] = set()
        self.blocked: set[int] = set()  # owner ids
        self.limits: dict[str, Any] = {"max_participants": 10, "max_concurrent_conferences": 3,
                                       "max_dialouts_per_minute": 60, "language": "ru"}  # every account's
        self.limit_reads = 0

    def add(self, conference: Conference, *participants: Participant) -> None:
        self.conferences[conference.id] = conference
        for participant in participants:
            self.participants_by_id[participant.id] = participant

    async def get(self, conference_id: int, owner_id: int | None = None, *,
                  with_participants: bool = True) -> Conference | None:
        conference = self.conferences.get(conference_id)
        if conference is None or (owner_id is not None and conference.owner_id != owner_id):
            return None
        return replace(conference, participants=await self.participants(conference_id) if with_participants else [])

    async def get_by_room(self, room: str) -> Conference | None:
        return next((c for c in self.conferences.values() if c.room == room), None)

    async def account_limits(self, owner_id: int) -> dict[str, Any] | None:
        self.limit_reads += 1
        return {**self.limits, "blocked": owner_id in self.blocked, "rules_stamp": None}

    async def participants(self, conference_id: int) -> list[Participant]:
        return [p for p in self.participants_by_id.values() if p.conference_id == conference_id]

    async def get_participant(self, participant_id: int) -> Participant | None:
        return self.participants_by_id.get(participant_id)

    async def participant_by_call_id(self, call_id: str) -> Participant | None:
        return next((p for p in self.participants_by_id.values() if p.call_id == call_id), None)

    async def live_call_ids(self) -> list[str]:
        live = ("calling", "ringing", "connected")
        return [p.call_id for p in self.participants_by_id.values() if p.call_id and p.state in live]

    async def update_participant(self, participant_id: int, *, only_states: Iterable[str] | None = None,
                                 **changes: Any) -> Participant | None:
        current = self.participants_by_id.get(participant_id)
        if current is None or (only_states is not None and current.state not in tuple(only_states)):
            return None
        updated = self.participants_by_id[participant_id] = replace(current, **changes)
        return updated

    async def mark_ringing(self, participant_ids: Sequence[int]) -> set[int]:
        moved = set()
        for participant_id in participant_ids:
            if await self.update_participant(participant_id, only_states=(ParticipantState.CALLING,),
                                             state=ParticipantState.RINGING) is not None:
                moved.add(participant_id)
        return moved

    async def mark_joined(self, joins: Mapping[int, Joined]) -> dict[int, Participant]:
        stored = {}
        for participant_id, join in joins.items():
            current = self.participants_by_id.get(participant_id)
            if current is None:
                continue
            updated = await self.update_participant(
                participant_id, state=ParticipantState.CONNECTED, joined_at=join.at, left_at=None,
                channel=join.channel or current.channel, failure_reason=None, muted=join.muted)
            assert updated is not None
            await self.log_event(updated.conference_id, "participant.joined", participant_id=participant_id,
                                 detail={"number": updated.number, "origin": str(updated.origin),
                                         "role": str(updated.role)})
            stored[participant_id] = updated
        return stored

    async def mark_left(self, leaves: Mapping[int, Left]) -> dict[int, Participant]:
        stored = {}
        for participant_id, leave in leaves.items():
            current = self.participants_by_id.get(participant_id)
            if current is None or current.call_id != leave.call_id:
                continue
            changes: dict[str, Any] = {"state": ParticipantState.LEFT, "left_at": leave.at, "talking": False}
            if leave.cause is not None:
                changes["hangup_cause"] = leave.cause
            updated = await self.update_participant(participant_id, only_states=(ParticipantState.CONNECTED,),
                                                    **changes)
            if updated is None:
                continue
            await self.log_event(updated.conference_id, "participant.left", actor=leave.actor,
                                 participant_id=participant_id,
                                 detail={"connected_seconds": updated.connected_seconds, **leave.detail})
            stored[participant_id] = updated
        return stored

    async def store_hangup_causes(self, causes: Mapping[int, int]) -> set[int]:
        written = set()
        for participant_id, cause in causes.items():
            current = self.participants_by_id.get(participant_id)
            if current is not None and current.state == ParticipantState.LEFT and current.hangup_cause is None:
                await self.update_participant(participant_id, hangup_cause=cause)
                written.add(participant_id)
        return written

    async def count_participants(self, conference_id: int, states: Iterable[str] | None = None) -> int:
        wanted = tuple(states) if states is not None else None
        return sum(1 for p in await self.participants(conference_id) if wanted is None or p.state in wanted)

    async def log_event(self, conference_id: int, kind: str, *, actor: str = "engine",
                        participant_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
        self.events.append((conference_id, kind, dict(detail or {})))

    def kinds(self, conference_id: int) -> list[str]:
        return [kind for cid, kind, _ in self.events if cid == conference_id]

    async def due_starts(self, node_id: str, now: datetime) -> list[Conference]:
        return [c for c in self.conferences.values()
                if c.state == ConferenceState.SCHEDULED and c.node_id == node_id and c.starts_at <= now]

    async def start_due(self, node_id: str, now: datetime) -> list[Conference]:
        started = []
        for c in await self.due_starts(node_id, now):
            if c.ends_at > now and c.owner_id not in self.blocked:
                started.append(replace(c, state=ConferenceState.RUNNING, started_at=now))
                self.conferences[c.id] = started[-1]
        return started

    async def due_warnings(self, node_id: str, now: datetime, warning_seconds: float) -> list[Conference]:
        return [c for c in self.conferences.values()
                if c.state == ConferenceState.RUNNING and c.node_id == node_id and c.id not in self.warned
                and c.ends_at - timedelta(seconds=warning_seconds) <= now < c.ends_at]

    async def due_ends(self, node_id: str, now: datetime) -> list[Conference]:
        return [c for c in self.conferences.values()
                if c.state == ConferenceState.RUNNING and c.node_id == node_id and c.ends_at <= now]

    async def mark_warned(self, conference_id: int) -> bool:
        if conference_id in self.warned:
            return False
        self.warned.add(conference_id)
        return True

    async def extend(self, conference_id: int, seconds: float, minutes: int,
                     count_against_cap: bool) -> Conference | None:
        current = self.conferences.get(conference_id)
        if current is None or current.state != ConferenceState.RUNNING:
            return None
        if count_against_cap and current.extended_minutes + minutes > current.extend_cap_minutes:
            return None
        self.warned.discard(conference_id)  # the new end gets its own warning
        updated = self.conferences[conference_id] = replace(
            current, ends_at=current.ends_at + timedelta(seconds=seconds),
            extended_minutes=current.extended_minutes + minutes)
        return updated

    async def update(self, conference_id: int, **changes: Any) -> Conference | None:
        current = self.conferences.get(conference_id)
        if current is None:
            return None
        updated = self.conferences[conference_id] = replace(current, **changes)
        return updated

    async def transition_if_over(self, conference_id: int, to_state: str, **changes: Any) -> Conference | None:
        """A scheduled conference whose end has passed moves to ``to_state`` (it was missed)."""
        current = self.conferences.get(conference_id)
        if current is None or current.state != ConferenceState.SCHEDULED or current.ends_at > datetime.now(UTC):
            return None
        return await self.transition(conference_id, [ConferenceState.SCHEDULED], to_state, **changes)

    async def insert_conference(self, fields: dict[str, Any], participants: Sequence[dict[str, Any]],
                                events: Sequence[LogEntry] = ()) -> Conference:
        """A new conference row (participants are not kept: the rules under test do not read them)."""
        known = set(Conference.__dataclass_fields__) - {"state"}
        conference = Conference(id=max(self.conferences, default=0) + 1, extended_minutes=0, locked=False,
                                state=ConferenceState(fields.get("state", ConferenceState.SCHEDULED)),
                                **{k: v for k, v in fields.items() if k in known})
        self.conferences[conference.id] = conference
        for entry in events:
            await self.log_event(conference.id, entry.kind, actor=entry.actor, detail=entry.detail)
        return conference

    async def transition(self, conference_id: int, from_states: Iterable[str], to_state: str,
                         **changes: Any) -> Conference | None:
        current = self.conferences.get(conference_id)
        if current is None or current.state not in tuple(from_states):
            return None
        updated = self.conferences[conference_id] = replace(current, state=ConferenceState(to_state), **changes)
        return updated


@dataclass
class FakeSlots:
    """Dial-out slots: at most ``room`` claims in all (None: no limit), named ``bound_by`` when
    exhausted; a claim moves the participant to calling with its new call id, as the SQL does."""

    repo: FakeConferenceRepo
    room: int | None = None
    bound_by: str = "max_concurrent_calls"
    claims: list[SlotRequest] = field(default_factory=list)
    fence: Fence = field(default_factory=lambda: Fence(enabled=False))  # the leader lease's token
    stored: asyncio.Event | None = None  # given: open_and_claim's statement runs until it is set

    async def open_and_claim(self, fields: dict[str, Any], participants: Sequence[dict[str, Any]],
                             events: Sequence[LogEntry], *, call_ids: Sequence[str], system_cap: int,
                             actor: str, rules_stamp: str | None = None) -> tuple[Conference, SlotGrant]:
        """The conference stored with its participants, the first ``room`` of them calling."""
        if self.stored is not None:
            await self.stored.wait()
        conference = await self.repo.insert_conference(fields, participants, events)
        free = len(call_ids) if self.room is None else self.room
        grant = SlotGrant(room=free, bound_by=self.bound_by if free < len(call_ids) else None,
                          limits={self.bound_by: 3})
        first = max(self.repo.participants_by_id, default=0) + 1
        for index, (planned, call_id) in enumerate(zip(participants, call_ids, strict=True)):
            claimed = index < free
            added = Participant(id=first + index, conference_id=conference.id, number=planned["number"],
                                name=planned.get("name") or "", email=planned.get("email"),
                                role=Role(planned.get("role", Role.GUEST)), origin=Origin.DIALOUT,
                                state=ParticipantState.CALLING if claimed else ParticipantState.PLANNED,
                                call_id=call_id if claimed else None, node_id=planned.get("node_id"),
                                attempts=1 if claimed else 0)
            self.repo.add(conference, added)
            if claimed:
                grant.claimed.append(added)
        conference = replace(conference, participants=await self.repo.participants(conference.id))
        return conference, grant

    async def claim(self, owner_id: int, conference_id: int, requests: Sequence[SlotRequest], *,
                    system_cap: int, from_states: Sequence[str], actor: str,
                    all_or_nothing: bool) -> SlotGrant:
        free = len(requests) if self.room is None else self.room
        limited = free < len(requests)
        if limited and all_or_nothing:
            return SlotGrant(room=free, bound_by=self.bound_by, limits={self.bound_by: 3})
        grant = SlotGrant(room=free, bound_by=self.bound_by if limited else None, limits={self.bound_by: 3})
        for request in requests[:free]:
            updated = await self.repo.update_participant(
                request.participant_id, only_states=from_states, state=ParticipantState.CALLING,
                call_id=request.call_id, node_id=request.node_id, attempts=request.attempts, failure_reason=None)
            if updated is not None:
                grant.claimed.append(updated)
                self.claims.append(request)
        if self.room is not None:
            self.room -= len(grant.claimed)
        return grant


class FakePlans:
    """Every account dials with the default number plan."""

    def __init__(self, plan: NumberPlan) -> None:
        self.plan = plan

    def of_account(self, limits: dict[str, Any] | None) -> NumberPlan:
        return self.plan


class FakeGuard:
    """Records the limit refusals the services report."""

    def __init__(self) -> None:
        self.hits: list[tuple[int | None, str]] = []

    def hit(self, account_id: int | None, limit: str, detail: str = "") -> bool:
        self.hits.append((account_id, limit))
        return False


class FakePrompts:
    """No prompt replaced by the operator: every prompt is Asterisk's own sound."""

    def phrases(self, language: str) -> frozenset[str]:
        return frozenset()

    def sound(self, language: str, name: str) -> str:
        return name


@dataclass
class Stack:
    """The call and conference services built as build_services builds them, over fakes."""

    settings: Settings
    node: FakeNode
    repo: FakeConferenceRepo
    slots: FakeSlots
    guard: FakeGuard
    dialout: DialOutService
    calls: CallService
    planning: ConferencePlanning
    live: LiveControl
    lifecycle: ConferenceLifecycle
    published: list[DomainEvent]

    async def start(self) -> None:
        await self.calls.start()

    async def stop(self) -> None:
        """Stop what runs on its own: the starts' bookkeeping, the call tracker and the dial-out's
        watchdogs and retries."""
        await self.lifecycle.stop()
        await self.calls.stop()
        await self.dialout.stop()

    def states(self) -> dict[int, str]:
        return {p.id: str(p.state) for p in self.repo.participants_by_id.values()}

    def dialled(self) -> list[dict[str, Any]]:
        """The participants' Originates (not the announcer's)."""
        return [o for o in self.node.originates if not o["channel_id"].startswith(ANNOUNCER_PREFIX)]


def count_look_ups(repo: FakeConferenceRepo) -> list[str]:
    """The call ids ``repo`` is asked for from now on (``participant_by_call_id``), in order."""
    looked_up: list[str] = []
    find = repo.participant_by_call_id

    async def by_call_id(call_id: str) -> Participant | None:
        looked_up.append(call_id)
        return await find(call_id)

    repo.participant_by_call_id = by_call_id  # type: ignore[method-assign]
    return looked_up


# Tasks that were running before the unit test began: another suite's fixtures sharing the
# session's event loop (an integration test's engine, when both suites run in one process).
_BEFORE_THE_TEST: set[asyncio.Task] = set()


def note_running_tasks() -> None:
    """Remember the tasks running now, which ``quiet`` then leaves out (the unit fixture's first step)."""
    _BEFORE_THE_TEST.clear()
    _BEFORE_THE_TEST.update(asyncio.all_tasks())


def quiet() -> bool:
    """No task but the test's own is left to run (every spawned outcome, retry and watchdog over)."""
    current = asyncio.current_task()
    return all(task is current or task.done() or task in _BEFORE_THE_TEST for task in asyncio.all_tasks())


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the services' tasks run until ``condition`` holds (a deadline, never a fixed wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


def build(**settings: Any) -> Stack:
    """The dial-out, call and conference services wired like engine/app.py build_services, over
    one media node whose AMI link is a FakeNode."""
    configured = replace(Settings(test_mode=True), node_id=NODE, **settings)
    node, repo, guard, bus = FakeNode(), FakeConferenceRepo(), FakeGuard(), EventBus()
    published: list[DomainEvent] = []
    bus.subscribe(published.append)
    slots = FakeSlots(repo)
    plans = FakePlans(NumberPlan.from_settings(configured))
    nodes = MediaNodes([MediaNode(node)], default=NODE)
    states = ParticipantStates(repo, bus)  # type: ignore[arg-type]
    dialout = DialOutService(configured, repo, slots, nodes=nodes, states=states, plans=plans,  # type: ignore[arg-type]
                             guard=guard)  # type: ignore[arg-type]
    calls = CallService(configured, repo, nodes=nodes, states=states, dialout=dialout,  # type: ignore[arg-type]
                        prompts=FakePrompts())  # type: ignore[arg-type]
    node.settle.append(calls.settled)
    records = ConferenceRecords(configured, repo, bus, schedule_changed=asyncio.Event())  # type: ignore[arg-type]
    checks = PlanChecks(repo, plans, guard)  # type: ignore[arg-type]
    lifecycle = ConferenceLifecycle(records, calls=calls, prompts=FakePrompts())  # type: ignore[arg-type]
    planning = ConferencePlanning(configured, records, checks, lifecycle=lifecycle)
    live = LiveControl(records, checks, calls=calls, lifecycle=lifecycle)
    return Stack(configured, node, repo, slots, guard, dialout, calls, planning, live, lifecycle, published)


def conference(**changes: Any) -> Conference:
    values: dict[str, Any] = dict(
        id=1, owner_id=5, subject="s", mode="voice", node_id=NODE, room="veche-1", conference_number="123456",
        chair_pin="111111", guest_pin="222222", guest_pin_required=True, immediate=False,
        starts_at=NOW - timedelta(minutes=5), duration_minutes=30, ends_at=NOW + timedelta(minutes=25),
        timezone="UTC", max_participants=10, auto_invite=True, auto_extend_minutes=0, extend_cap_minutes=120,
        extended_minutes=0, reminder_minutes=None, locked=False, state=ConferenceState.RUNNING)
    values.update(changes)
    return Conference(**values)


def participant(pid: int, number: str = "375291234567", **changes: Any) -> Participant:
    values: dict[str, Any] = dict(id=pid, conference_id=1, number=number, name="", email=None, role=Role.GUEST,
                                  origin=Origin.DIALOUT, state=ParticipantState.PLANNED)
    values.update(changes)
    return Participant(**values)


@dataclass
class FakeCall:
    """Answers GET DATA from a script of entries and records every prompt."""

    entries: list[str | None]
    caller_number: str = "375291234567"
    channel: str = "PJSIP/pstn-00000001"
    uniqueid: str = "1700000000.1"
    first_entry: str | None = None  # nothing keyed during the dialplan's Read()
    node_id: str | None = None  # the dialplan did not name its node
    heard: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)

    async def get_data(self, prompt: str, timeout_ms: int = 6000, max_digits: int = 12) -> str | None:
        self.heard.append(f"ask {prompt}")
        return self.entries.pop(0) if self.entries else None

    async def play(self, *prompts: str) -> None:
        self.heard.extend(f"play {p}" for p in prompts)

    async def set_variable(self, name: str, value: str) -> None:
        self.variables[name] = value

    async def set_language(self, language: str) -> None:
        self.variables["CHANNEL(language)"] = language


@dataclass
class FakeDialinRepo:
    """The dial-in repository: conferences by number, failures and lock-outs in lists."""

    conferences: dict[str, Conference] = field(default_factory=dict)
    failures_log: list[dict[str, Any]] = field(default_factory=list)
    lockouts: dict[str, tuple[datetime, datetime, int]] = field(default_factory=dict)

    seats: int = 0  # connected callers and callers still joining, of every conference
    callers: list[dict[str, Any]] = field(default_factory=list)

    async def conference_by_number(self, number: str) -> Conference | None:
        return self.conferences.get(number)

    async def seats_taken(self, conference_id: int) -> int:
        return self.seats

    async def add_caller(self, conference_id: int, **kw: Any) -> Any:
        self.callers.append({"conference_id": conference_id, **kw})
        return SimpleNamespace(id=99)

    async def record_failure(self, *, caller: str, kind: str, conference_id: int | None, conference_number: str,
                             call_id: str) -> None:
        self.failures_log.append({"at": datetime.now(UTC), "caller": caller, "kind": kind,
                                  "conference_number": conference_number})

    async def recent_failures(self, *, caller: str, caller_since: datetime, conference_number: str,
                              number_since: datetime) -> tuple[int, int]:
        counted = [f for f in self.failures_log if f["kind"] != "blocked"]
        return (sum(1 for f in counted if f["caller"] == caller and f["at"] >= caller_since),
                sum(1 for f in counted if f["conference_number"] == conference_number and f["at"] >= number_since))

    async def lockout_until(self, conference_number: str) -> datetime | None:
        found = self.lockouts.get(conference_number)
        return found[1] if found else None

    async def start_lockout(self, *, conference_number: str, conference_id: int | None, now: datetime,
                            until: datetime, failures: int) -> datetime | None:
        found = self.lockouts.get(conference_number)
        if found and found[1] > now:
            return None
        self.lockouts[conference_number] = (now, until, failures)
        return now


class NoRooms:
    """Permanent rooms of an account that has none."""

    async def standing(self, conference_number: str) -> Conference | None:
        return None

    async def open_session(self, room_id: int) -> Conference:
        raise AssertionError("no permanent room to open")


@dataclass
class FakeRooms:
    """One permanent room answering its number; ``refuse`` is what opening a session raises
    (the account's limit of concurrent conferences), else the session is ``session``."""

    room: Conference
    session: Conference
    refuse: Exception | None = None
    opened: list[int] = field(default_factory=list)

    async def standing(self, conference_number: str) -> Conference | None:
        return self.room if conference_number == self.room.conference_number else None

    async def open_session(self, room_id: int) -> Conference:
        if self.refuse is not None:
            raise self.refuse
        self.opened.append(room_id)
        return self.session


class FakeSeriesRepo:
    """Series rows in a dict; their conferences are those of the conference fake with the series id."""

    def __init__(self, conferences: FakeConferenceRepo) -> None:
        self.conferences = conferences
        self.series: dict[int, dict[str, Any]] = {}

    async def get(self, series_id: int, owner_id: int | None = None) -> dict[str, Any] | None:
        series = self.series.get(series_id)
        return None if series is None or owner_id not in (None, series["owner_id"]) else dict(series)

    async def active_recurring(self) -> list[int]:
        return [s["id"] for s in self.series.values() if s["kind"] == "recurring" and s["state"] == "active"]

    async def occurrence_starts(self, series_id: int) -> dict[datetime, str]:
        return {c.occurrence_at: str(c.state) for c in self.conferences.conferences.values()
                if c.series_id == series_id and c.occurrence_at is not None}

    async def mark_changed(self, conference_id: int) -> None:
        await self.conferences.update(conference_id, occurrence_changed=True)
