"""The baseline: the same Originates as the engine sends, over a raw AMI socket (asyncio streams,
no panoramisk, no database), waiting for every callee's ConfbridgeJoin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Container
from dataclasses import dataclass
from typing import Protocol

from bench.outcome import CallTally


class RawAmi:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, username: str, secret: str, timeout: float = 30.0) -> RawAmi:
        return await asyncio.wait_for(cls._login(host, port, username, secret), timeout)

    @classmethod
    async def _login(cls, host: str, port: int, username: str, secret: str) -> RawAmi:
        reader, writer = await asyncio.open_connection(host, port)
        await reader.readline()  # "Asterisk Call Manager/..."
        ami = cls(reader, writer)
        ami.send({"Action": "Login", "Username": username, "Secret": secret, "Events": "on"})
        while True:
            message = await ami.read()
            if message.get("Response") == "Success":
                return ami
            if message.get("Response") == "Error":
                raise RuntimeError(f"AMI login refused: {message}")

    def send(self, headers: dict[str, str | list[str]]) -> None:
        lines = []
        for key, value in headers.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"{key}: {item}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def read(self) -> dict[str, str]:
        block = await self.reader.readuntil(b"\r\n\r\n")
        message: dict[str, str] = {}
        for line in block.decode(errors="replace").split("\r\n"):
            key, sep, value = line.partition(": ")
            if sep:
                message[key] = value
        return message

    async def set_events(self, on: bool) -> None:
        """Turn this session's events on or off (AMI ``Events``), once Asterisk confirmed it."""
        action_id = f"events-{'on' if on else 'off'}-{id(self)}"
        self.send({"Action": "Events", "EventMask": "on" if on else "off", "ActionID": action_id})
        while (await self.read()).get("ActionID") != action_id:
            pass

    async def drop_events(self) -> None:
        """Read and drop whatever arrives (the session stays logged in while another program's
        calls run), until cancelled; a block cut by the cancel stays for the next read."""
        while True:
            await self.read()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


class _Headers(Protocol):
    def get(self, key: str, default: str = ...) -> str: ...


def track(tally: CallTally, message: _Headers, calls: Container[str], room: str | None, at: float) -> None:
    """Fold one AMI event into the run's tally: a ConfbridgeJoin of one of ``calls`` (in ``room``
    unless None) is a join; a failed OriginateResponse or a Hangup of either leg before the join
    ends the call. The other leg's Uniqueid is the call id plus ``-2``, so no call id may end so."""
    event = message.get("Event")
    uid = message.get("Uniqueid", "")
    call = uid[:-2] if uid.endswith("-2") else uid
    if call not in calls:
        return
    if event == "ConfbridgeJoin" and room in (None, message.get("Conference")) and call == uid:
        tally.join(call, at)
    elif event == "OriginateResponse" and message.get("Response") != "Success":
        tally.fail(call, f"OriginateResponse Reason {message.get('Reason', '?')}")
    elif event == "Hangup":
        cause = message.get("Cause", "?")
        text = message.get("Cause-txt", "")
        tally.fail(call, f"hangup cause {cause}" + (f" ({text})" if text else ""))


@dataclass(frozen=True)
class DialOut:
    """What the engine's Originate of an invited guest carries besides the number and the room
    (engine/adapters/asterisk/node.py MediaNode.dial), so that Asterisk does the same work for the
    raw script's calls: the user profile, the language, the caller id shown to the callee, the
    room's seats beyond its participants and the ring timeout."""

    profile: str
    language: str
    caller_id: str
    extra_members: int
    timeout_ms: int


async def originate_and_wait(ami: RawAmi, numbers: list[str], room: str, dial: DialOut,
                             deadline_seconds: float = 60.0) -> tuple[float, CallTally]:
    """Send one Originate per number into ``room`` and follow every call until all joined, every
    call ended one way or another, or the deadline passed (the rest then count as timed out).
    Returns the seconds until the last join (or until the run was over) and the tally."""
    started = time.perf_counter()
    calls = {f"raw-{room}-c{index:04d}" for index in range(len(numbers))}
    for index, number in enumerate(numbers):
        # all of one length (like the engine's), never ending in "-2" (the other leg's suffix)
        call_id = f"raw-{room}-c{index:04d}"
        ami.send({"Action": "Originate", "Channel": f"Local/{number}@veche-dialout/n", "Context": "veche-room",
                  "Exten": "join", "Priority": "1", "Async": "true", "Timeout": str(dial.timeout_ms),
                  "ChannelId": call_id, "OtherChannelId": f"{call_id}-2", "CallerID": dial.caller_id,
                  "Variable": [f"VECHE_ROOM={room}", f"VECHE_PROFILE={dial.profile}", f"VECHE_CALL={call_id}",
                               f"VECHE_LANG={dial.language}",
                               f"VECHE_MAX_MEMBERS={len(numbers) + dial.extra_members}"]})
    await ami.writer.drain()
    tally = CallTally(len(numbers))
    deadline = started + deadline_seconds
    while not tally.finished:
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        try:
            message = await asyncio.wait_for(ami.read(), left)
        except TimeoutError:
            break
        track(tally, message, calls, room, time.perf_counter())
    ended = time.perf_counter()
    tally.close()
    last = tally.last_join_at if tally.all_joined and tally.last_join_at else ended
    return last - started, tally


async def clear_room(ami: RawAmi, room: str, timeout: float = 30.0) -> bool:
    """Kick everyone out of ``room`` and wait for ConfbridgeEnd (False: the room was empty
    already, or the deadline passed first)."""
    ami.send({"Action": "ConfbridgeKick", "Conference": room, "Channel": "all", "ActionID": f"kick-{room}"})
    await ami.writer.drain()
    deadline = time.perf_counter() + timeout
    while (left := deadline - time.perf_counter()) > 0:
        try:
            message = await asyncio.wait_for(ami.read(), left)
        except TimeoutError:
            return False
        if message.get("ActionID") == f"kick-{room}" and message.get("Response") == "Error":
            return False  # no such room: nobody joined
        if message.get("Event") == "ConfbridgeEnd" and message.get("Conference") == room:
            return True
    return False
