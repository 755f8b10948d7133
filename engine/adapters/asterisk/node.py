"""A media node: one Asterisk reached over one AMI link, offered to the services as intents
(dial, hang up, kick, mute, lock, play, record, re-enter with another role, list rooms) and typed
events. ``MediaNodes`` holds every node of the engine by its node id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from engine.adapters.asterisk import contract
from engine.adapters.asterisk.ami import AmiEvent, PreparedOriginate, is_channel
from engine.adapters.asterisk.events import (
    AMI_EVENTS,
    CallHungUp,
    LinkChanged,
    NodeEvent,
    RoomMember,
    member,
    translate,
)
from engine.domain.errors import AmiError
from engine.domain.model import Role
from engine.domain.speech import Announcement

log = logging.getLogger(__name__)

NodeCallback = Callable[[NodeEvent], Awaitable[None] | None]
PreparedDial = PreparedOriginate  # a dial checked and written out, for MediaNode.start_dial
PLAY_TIMEOUT_MS = 10000


class Link(Protocol):
    """What a node needs of its AMI link (engine.adapters.asterisk.ami.AmiLink)."""

    node_id: str

    @property
    def connected(self) -> bool: ...

    @property
    def reconnects(self) -> int: ...

    def subscribe(self, callback: Callable[[AmiEvent], Any], events: Iterable[str] | None = None) -> None: ...

    def on_link_change(self, callback: Callable[[str, bool], Any]) -> None: ...

    async def originate(self, *, channel_id: str, channel: str, context: str, exten: str,
                        variables: dict[str, str], timeout_ms: int, caller_id: str | None = None,
                        other_channel_id: str | None = None) -> None: ...

    def prepare_originate(self, *, channel_id: str, channel: str, context: str, exten: str,
                          variables: dict[str, str], timeout_ms: int, caller_id: str | None = None,
                          other_channel_id: str | None = None) -> PreparedOriginate: ...

    def start_originate(self, prepared: PreparedOriginate) -> Awaitable[None]: ...

    def send_now(self) -> None: ...

    async def hangup(self, channel: str) -> None: ...

    async def getvar(self, channel: str, variable: str) -> str: ...

    async def setvar(self, channel: str, variable: str, value: str) -> None: ...

    async def channel_ids(self) -> set[str]: ...

    async def boot_time(self) -> str: ...

    async def confbridge_rooms(self) -> list[AmiEvent]: ...

    async def confbridge_members(self, room: str) -> list[AmiEvent]: ...

    async def confbridge_kick(self, room: str, channel: str) -> None: ...

    async def confbridge_mute(self, room: str, channel: str, mute: bool = True) -> None: ...

    async def confbridge_lock(self, room: str, lock: bool = True) -> None: ...

    async def confbridge_rejoin(self, channel: str, profile: str) -> None: ...


class MediaNode:
    """One Asterisk node: intents in the engine's words, typed events out."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.node_id = link.node_id
        self._subscribers: list[NodeCallback] = []
        link.subscribe(self._on_ami_event, AMI_EVENTS)
        link.on_link_change(self._on_link_change)

    @property
    def connected(self) -> bool:
        return self.link.connected

    @property
    def reconnects(self) -> int:
        return self.link.reconnects

    # ----------------------------------------------------------------- events

    def subscribe(self, callback: NodeCallback) -> None:
        """Call ``callback`` with every typed event of this node, in arrival order."""
        self._subscribers = [*self._subscribers, callback]  # a new list: delivery iterates the old one

    def unsubscribe(self, callback: NodeCallback) -> None:
        self._subscribers = [cb for cb in self._subscribers if cb != callback]

    def _on_ami_event(self, event: AmiEvent) -> Awaitable[None] | None:
        """Hand the typed event to the subscribers in order. Plain subscribers are called here;
        from the first one that returns a coroutine on, the rest run in the returned coroutine,
        which the link awaits (an event that concerns only plain subscribers costs no coroutine)."""
        typed = translate(event)
        if typed is None:
            return None
        subscribers = self._subscribers
        for index, callback in enumerate(subscribers):
            try:
                result = callback(typed)
            except Exception:  # noqa: BLE001 - one bad subscriber must not stop the others
                log.exception("node event subscriber failed on %s", type(typed).__name__)
                continue
            if asyncio.iscoroutine(result):
                return self._deliver_rest(typed, result, subscribers[index + 1:])
        return None

    @staticmethod
    async def _deliver_rest(typed: NodeEvent, pending: Awaitable[None], rest: list[NodeCallback]) -> None:
        try:
            await pending
        except Exception:  # noqa: BLE001
            log.exception("node event subscriber failed on %s", type(typed).__name__)
        for callback in rest:
            try:
                result = callback(typed)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # noqa: BLE001
                log.exception("node event subscriber failed on %s", type(typed).__name__)

    def _on_link_change(self, node_id: str, up: bool) -> None:
        typed = LinkChanged(node_id=node_id, up=up)
        for callback in list(self._subscribers):
            result = callback(typed)
            if asyncio.iscoroutine(result):
                asyncio.ensure_future(result)

    # ----------------------------------------------------------------- calls

    async def dial(self, call_id: str, number: str, *, room: str, role: Role, language: str, max_members: int,
                   ring_seconds: int, caller_id: str | None) -> None:
        """Dial ``number`` (through the number plan's ``veche-dialout``) into ``room``; the outcome
        comes as CallPlaced / DialOutcome / Ringing / ParticipantJoined events of ``call_id``."""
        await self.start_dial(self.prepare_dial(call_id, number, room=room, role=role, language=language,
                                                max_members=max_members, ring_seconds=ring_seconds,
                                                caller_id=caller_id))

    def prepare_dial(self, call_id: str, number: str, *, room: str, role: Role, language: str, max_members: int,
                     ring_seconds: int, caller_id: str | None) -> PreparedDial:
        """``dial`` in two steps: the dial checked and written out now (AmiError if anything in it
        is unsafe), placed later by ``start_dial``."""
        return self.link.prepare_originate(
            channel_id=call_id, other_channel_id=f"{call_id}{contract.FAR_LEG_SUFFIX}",
            channel=contract.dialout_channel(number), context=contract.ROOM_CONTEXT, exten=contract.ROOM_EXTEN,
            variables={"VECHE_ROOM": room, contract.PROFILE_VARIABLE: contract.profile_for(role, invited=True),
                       "VECHE_CALL": call_id, "VECHE_LANG": language, "VECHE_MAX_MEMBERS": str(max_members)},
            timeout_ms=(ring_seconds + 5) * 1000, caller_id=caller_id)

    def start_dial(self, prepared: PreparedDial) -> Awaitable[None]:
        """Place a prepared dial now, with the rest of this turn's; the returned awaitable ends
        once the node accepted it and must be awaited. AmiUnavailable at once when the node's
        link is down."""
        return self.link.start_originate(prepared)

    def send_now(self) -> None:
        """Send the dials placed in this turn now (``start_dial`` sends them at the next turn)."""
        self.link.send_now()

    async def play(self, room: str, spoken: Announcement, *, max_members: int,
                   wait_seconds: float | None = None) -> str:
        """Play ``spoken`` (sounds already resolved) into ``room`` through a quiet announcer
        channel; returns the announcer's call id. ``wait_seconds``: return only once it has
        hung up (played to the end), or after that many seconds."""
        call_id = contract.new_announcer_id()
        finished = asyncio.get_running_loop().create_future()

        def on_hangup(event: NodeEvent) -> None:
            if isinstance(event, CallHungUp) and event.call_id == call_id and not finished.done():
                finished.set_result(event)

        if wait_seconds is not None:
            self.subscribe(on_hangup)
        try:
            await self.link.originate(
                channel_id=call_id, other_channel_id=f"{call_id}{contract.FAR_LEG_SUFFIX}",
                channel=contract.ANNOUNCE_CHANNEL, context=contract.ROOM_CONTEXT, exten=contract.ROOM_EXTEN,
                variables={"VECHE_ROOM": room, contract.PROFILE_VARIABLE: contract.ANNOUNCER_PROFILE,
                           "VECHE_LANG": spoken.language, "VECHE_SOUND": spoken.sounds[0],
                           "VECHE_SOUND2": spoken.sounds[1] if len(spoken.sounds) > 1 else "",
                           "VECHE_NUMBER": "" if spoken.number is None else str(spoken.number),
                           "VECHE_UNIT": spoken.unit or "", "VECHE_CALL": call_id,
                           "VECHE_NUMBER_SOUND": spoken.number_sound or "",
                           "VECHE_MAX_MEMBERS": str(max_members)},
                timeout_ms=PLAY_TIMEOUT_MS)
            if wait_seconds is not None:
                try:
                    await asyncio.wait_for(finished, wait_seconds)
                except TimeoutError:
                    log.warning("room %s: announcer %s did not finish within %.0f s", room, call_id, wait_seconds)
        finally:
            if wait_seconds is not None:
                self.unsubscribe(on_hangup)
        return call_id

    async def record(self, call_id: str, room: str, *, max_members: int) -> None:
        """Start a recorder channel ``call_id`` in ``room`` (its file comes as RecordingWritten)."""
        await self.link.originate(
            channel_id=call_id, other_channel_id=f"{call_id}{contract.FAR_LEG_SUFFIX}",
            channel=contract.RECORD_CHANNEL, context=contract.ROOM_CONTEXT, exten=contract.ROOM_EXTEN,
            variables={"VECHE_ROOM": room, contract.PROFILE_VARIABLE: contract.RECORDER_PROFILE,
                       "VECHE_CALL": call_id, "VECHE_MAX_MEMBERS": str(max_members)},
            timeout_ms=PLAY_TIMEOUT_MS)

    async def hangup(self, *calls: str | None) -> bool:
        """Hang up the first of ``calls`` (channel names or call ids) the node accepts; a dial-in
        token names no channel and is skipped. True when one was hung up."""
        for target in calls:
            if not target or not is_channel(target) or contract.is_dialin_token(target):
                continue
            try:
                await self.link.hangup(target)
                return True
            except AmiError as exc:
                log.debug("hangup %s: %s", target, exc)
        return False

    async def hangup_channel(self, channel: str | None) -> None:
        """Hang up one channel; AmiError when the node refuses (no such channel, link down)."""
        await self.link.hangup(channel or "")

    async def call_alive(self, call_id: str) -> bool:
        """True while the channel ``call_id`` exists on the node."""
        try:
            await self.link.getvar(call_id, "UNIQUEID")
        except AmiError:
            return False
        return True

    async def set_role(self, call_id: str, role: Role, *, invited: bool) -> None:
        """A call still being set up enters its room with the profile of ``role``."""
        await self.link.setvar(call_id, contract.PROFILE_VARIABLE, contract.profile_for(role, invited=invited))

    async def media_quality(self, call_id: str, channel: str | None, *, dialin: bool) -> tuple[str, str] | None:
        """RTCP statistics and native audio format of the SIP channel carrying a participant's
        audio: a dial-in caller's own channel, or the channel a dial-out's far leg dialled."""
        if dialin:
            media = channel or call_id
        else:
            media = await self.link.getvar(f"{call_id}{contract.FAR_LEG_SUFFIX}", "BRIDGEPEER")
        if not media:
            return None
        rtcp, native = await asyncio.gather(self.link.getvar(media, "CHANNEL(rtcp,all)"),
                                            self.link.getvar(media, "CHANNEL(audionativeformat)"))
        return rtcp, native

    # ----------------------------------------------------------------- rooms

    async def kick(self, room: str, channel: str | None) -> None:
        await self.link.confbridge_kick(room, channel or "")

    async def mute(self, room: str, channel: str | None, on: bool) -> None:
        await self.link.confbridge_mute(room, channel or "", on)

    async def lock(self, room: str, on: bool) -> None:
        await self.link.confbridge_lock(room, on)

    async def rejoin(self, channel: str | None, role: Role, *, invited: bool) -> None:
        """Send a channel in a room back into it with the user profile of ``role`` (the call
        stays up; its leave and join follow as events)."""
        await self.link.confbridge_rejoin(channel or "", contract.profile_for(role, invited=invited))

    async def rooms(self) -> set[str]:
        return {r.get("Conference") for r in await self.link.confbridge_rooms()}

    async def members(self, room: str) -> list[RoomMember]:
        return [member(m) for m in await self.link.confbridge_members(room)]

    # ----------------------------------------------------------------- node

    async def boot_time(self) -> str:
        """When this Asterisk started, to tell a restart from a link loss."""
        return await self.link.boot_time()

    async def channel_ids(self) -> set[str]:
        """Ids of the channels up on the node."""
        return await self.link.channel_ids()

    async def channel_count(self) -> int:
        """Channels up on the node: the operator's measure of its load."""
        return len(await self.channel_ids())


class MediaNodes(Mapping[str, MediaNode]):
    """Every media node of the engine by node id, and the default node for a conference that
    names none (or a node the engine does not run)."""

    def __init__(self, nodes: Iterable[MediaNode] = (), default: str = "") -> None:
        self._nodes = {node.node_id: node for node in nodes}
        self.default = default

    def add(self, node: MediaNode) -> None:
        self._nodes[node.node_id] = node

    def node(self, node_id: str | None) -> MediaNode:
        return self._nodes.get(node_id or self.default) or self._nodes[self.default]

    def subscribe(self, callback: NodeCallback) -> None:
        """``callback`` gets the typed events of every node."""
        for node in self._nodes.values():
            node.subscribe(callback)

    def unsubscribe(self, callback: NodeCallback) -> None:
        for node in self._nodes.values():
            node.unsubscribe(callback)

    def __getitem__(self, node_id: str) -> MediaNode:
        return self._nodes[node_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

