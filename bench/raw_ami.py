"""The baseline: the same Originates as the engine sends, over a raw AMI socket (asyncio streams,
no panoramisk, no database), waiting for every callee's ConfbridgeJoin."""

from __future__ import annotations

import asyncio
import time


class RawAmi:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, username: str, secret: str) -> RawAmi:
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

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def originate_and_wait(ami: RawAmi, numbers: list[str], room: str, timeout: float = 60.0) -> float:
    """Send one Originate per number into ``room``; seconds until all of them joined."""
    started = time.perf_counter()
    for index, number in enumerate(numbers):
        call_id = f"raw-{room}-{index}"
        ami.send({"Action": "Originate", "Channel": f"Local/{number}@veche-dialout/n", "Context": "veche-room",
                  "Exten": "join", "Priority": "1", "Async": "true", "Timeout": "15000",
                  "ChannelId": call_id, "OtherChannelId": f"{call_id}-2",
                  "Variable": [f"VECHE_ROOM={room}", "VECHE_PROFILE=veche_guest", f"VECHE_CALL={call_id}",
                               f"VECHE_MAX_MEMBERS={len(numbers) + 1}"]})
    await ami.writer.drain()
    joined = 0
    deadline = started + timeout
    while joined < len(numbers):
        message = await asyncio.wait_for(ami.read(), max(0.1, deadline - time.perf_counter()))
        if message.get("Event") == "ConfbridgeJoin" and message.get("Conference") == room:
            joined += 1
    return time.perf_counter() - started


async def clear_room(ami: RawAmi, room: str, timeout: float = 30.0) -> None:
    """Kick everyone out of ``room`` and wait for ConfbridgeEnd."""
    ami.send({"Action": "ConfbridgeKick", "Conference": room, "Channel": "all"})
    await ami.writer.drain()
    deadline = time.perf_counter() + timeout
    while True:
        message = await asyncio.wait_for(ami.read(), max(0.1, deadline - time.perf_counter()))
        if message.get("Event") == "ConfbridgeEnd" and message.get("Conference") == room:
            return
