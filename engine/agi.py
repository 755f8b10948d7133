"""FastAGI entry point: Asterisk's dialplan hands dial-in calls to the engine here; each route
turns an AGI session into calls of a service, like a web handler does for HTTP."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from panoramisk.fast_agi import Application, Request

from engine.logging import log_context

log = logging.getLogger(__name__)

_SAFE_VAR_VALUE = re.compile(r"^[A-Za-z0-9_.\-]{0,100}$")
_SAFE_PROMPT = re.compile(r"^[a-z0-9_\-/&]{1,200}$")
_RESULT = re.compile(r"^200 result=(\S*)(?: \((.*)\))?")


class AgiHangup(Exception):
    """The caller hung up during the AGI session."""


class AgiCall:
    """One dial-in call as the engine sees it: headers plus the few commands the IVR needs."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.headers: dict[str, str] = dict(request.headers)
        self.started = time.monotonic()

    @property
    def caller_number(self) -> str:
        return self.headers.get("agi_callerid", "") or ""

    @property
    def channel(self) -> str:
        return self.headers.get("agi_channel", "")

    @property
    def uniqueid(self) -> str:
        return self.headers.get("agi_uniqueid", "")

    async def command(self, text: str) -> tuple[str, str]:
        """Send one AGI command; return (result value, text in parentheses)."""
        writer, reader = self._request.writer, self._request.reader
        writer.write(text.encode() + b"\n")
        await writer.drain()
        while True:
            raw = await reader.readline()
            if not raw:
                raise AgiHangup(text)
            line = raw.decode(errors="replace").strip()
            if line.startswith("100"):
                continue
            if line == "HANGUP":
                continue  # SIGHUP notice; the next line is the command's own answer
            match = _RESULT.match(line)
            if not match:
                raise AgiHangup(f"{text}: {line}")
            value, extra = match.group(1), match.group(2) or ""
            if value == "-1":
                raise AgiHangup(text)
            return value, extra

    async def get_data(self, prompt: str, timeout_ms: int = 6000, max_digits: int = 12) -> str | None:
        """Play ``prompt`` and collect digits until ``#``; None when nothing was keyed in time,
        "" for ``#`` alone."""
        if not _SAFE_PROMPT.match(prompt):
            raise ValueError(f"bad prompt name {prompt!r}")
        value, extra = await self.command(f"GET DATA {prompt} {int(timeout_ms)} {int(max_digits)}")
        if extra == "timeout" and not value:
            return None
        return value

    async def play(self, *prompts: str) -> None:
        for prompt in prompts:
            if not _SAFE_PROMPT.match(prompt):
                raise ValueError(f"bad prompt name {prompt!r}")
            await self.command(f'STREAM FILE {prompt} ""')

    async def set_variable(self, name: str, value: str) -> None:
        if not re.match(r"^VECHE_[A-Z_]{1,40}$", name) or not _SAFE_VAR_VALUE.match(value):
            raise ValueError(f"refusing to set {name}={value!r}")
        await self.command(f'SET VARIABLE {name} "{value}"')


AgiRoute = Callable[[AgiCall], Awaitable[None]]


class AgiServer:
    """Listens for FastAGI sessions and dispatches them by script name (``agi://host/NAME``)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._app = Application()
        self._server: asyncio.base_events.Server | None = None
        self.handled = 0
        self.sessions: Counter[str] = Counter()  # sessions started, per route (metrics)

    def route(self, name: str, handler: AgiRoute) -> None:
        async def endpoint(request: Request) -> None:  # panoramisk needs a coroutine function
            call = AgiCall(request)
            self.sessions[name] += 1
            with log_context(channel=call.channel, call_id=call.uniqueid):
                try:
                    await handler(call)
                except AgiHangup:
                    log.info("AGI %s: caller %s hung up", name, call.caller_number)
                finally:
                    self.handled += 1

        self._app.add_route(name, endpoint)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._app.handler, self.host, self.port)

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
