"""FastAGI entry point: Asterisk's dialplan hands dial-in calls to the engine here; each route
turns an AGI session into calls of a service, like a web handler does for HTTP. The server trusts
nothing on the wire: every session is bounded in size and time, authenticated by the node's
secret, and a broken one ends alone with one log line and a count."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import re
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.domain.speech import LANGUAGES
from engine.logging import log_context

if TYPE_CHECKING:
    from engine.config import Settings

log = logging.getLogger(__name__)

_SAFE_VAR_VALUE = re.compile(r"^[A-Za-z0-9_.\-]{0,100}$")
_SAFE_PROMPT = re.compile(r"^[a-z0-9_\-/&]{1,200}$")
_SAFE_SOUND_PATH = re.compile(r"^/?[A-Za-z0-9_\-/.]{1,300}$")  # an operator's replacement on the node
# (language, prompt name) -> the sound to play (engine.services.prompts.PromptService.sound)
SoundResolver = Callable[[str, str], str]
_RESULT = re.compile(r"^200 result=(\S*)(?: \((.*)\))?")
# one header line: a lower-case agi_ name, a colon, a value without control characters but tab
_HEADER_LINE = re.compile(r"(agi_[a-z0-9_]{1,40}):[ \t]?([^\x00-\x08\x0a-\x1f\x7f]*)")
_ROUTE_NAME = re.compile(r"^[a-z0-9_\-]{1,40}$")
_FIRST_ENTRY = re.compile(r"[0-9]{1,20}")
_NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")

# the dialplan's AGI arguments: AGI(agi://host:port/ROUTE,SECRET,FIRST_ENTRY)
ARG_SECRET = "agi_arg_1"
ARG_FIRST_ENTRY = "agi_arg_2"

# why a session ended (label of the veche_fastagi_sessions_ended metric)
END_REASONS = (
    "completed",  # the route returned
    "hangup",  # the caller hung up (Asterisk answered -1 or closed the socket during the route)
    "eof",  # the peer closed (or reset) before the blank line ending the header block
    "header_timeout",  # no complete header block in time (trickling or silent peer)
    "oversize",  # header block over its byte limit
    "encoding",  # a header line is not UTF-8
    "malformed",  # a header line is not "agi_name: value", or a name repeats
    "unknown_script",  # no route of that name
    "bad_secret",  # the node's secret was missing or wrong
    "not_allowed",  # source address outside VECHE_AGI_ALLOW
    "too_many",  # more sessions at once than the cap
    "session_timeout",  # the session lived longer than its limit
    "bad_answer",  # an answer line to a command was too long, not UTF-8 or not AGI
    "error",  # the route raised (a bug: logged with its traceback)
    "stopped",  # the engine stopped during the session
)


class AgiHangup(Exception):
    """The caller hung up during the AGI session."""


class AgiProtocolError(Exception):
    """The peer answered a command with something that is not an AGI answer line."""


class _Refused(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class AgiLimits:
    """The bounds of every session (settings VECHE_AGI_*)."""

    max_sessions: int = 200
    header_timeout: float = 5.0
    header_bytes: int = 8192
    answer_bytes: int = 4096
    session_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AgiLimits:
        return cls(max_sessions=settings.agi_max_sessions, header_timeout=settings.agi_header_timeout,
                   header_bytes=settings.agi_header_bytes, answer_bytes=settings.agi_answer_bytes,
                   session_seconds=settings.agi_session_seconds)


class AgiCall:
    """One dial-in call as the engine sees it: headers plus the few commands the IVR needs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str],
                 answer_bytes: int = 4096, sounds: SoundResolver | None = None) -> None:
        self._reader, self._writer = reader, writer
        self._answer_bytes = answer_bytes
        self.headers = headers
        self.started = time.monotonic()
        self._sounds = sounds
        self.language = headers.get("agi_language", "")  # the channel's voice language, as last set

    def _sound(self, prompt: str) -> str:
        """What Asterisk plays for ``prompt`` (a fixed name): the operator's replacement in the
        channel's language when there is one (a path of ours), else the name itself."""
        if not _SAFE_PROMPT.match(prompt):
            raise ValueError(f"bad prompt name {prompt!r}")
        if self._sounds is None or not self.language:
            return prompt
        sound = self._sounds(self.language, prompt)
        return sound if _SAFE_SOUND_PATH.match(sound) else prompt

    @property
    def caller_number(self) -> str:
        return self.headers.get("agi_callerid", "") or ""

    @property
    def channel(self) -> str:
        return self.headers.get("agi_channel", "")

    @property
    def uniqueid(self) -> str:
        return self.headers.get("agi_uniqueid", "")

    @property
    def first_entry(self) -> str | None:
        """The digits the caller keyed while the dialplan's Read() played the first prompt, or None
        when nothing usable was keyed (only digits, at most 20 of them)."""
        value = self.headers.get(ARG_FIRST_ENTRY, "")
        return value if _FIRST_ENTRY.fullmatch(value) else None

    @property
    def node_id(self) -> str | None:
        """The media node the call is on, as its dialplan names it in the script's query
        (``agi://host:port/dialin?node=ast2``); None when it does not."""
        query = urllib.parse.urlsplit(self.headers.get("agi_network_script", "")).query
        node = urllib.parse.parse_qs(query).get("node", [""])[0]
        return node if _NODE_ID.fullmatch(node) else None

    async def command(self, text: str) -> tuple[str, str]:
        """Send one AGI command; return (result value, text in parentheses)."""
        if "\n" in text or "\r" in text:
            raise ValueError("an AGI command is one line")
        self._writer.write(text.encode() + b"\n")
        await self._writer.drain()
        while True:
            try:
                raw = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                raise AgiHangup(text) from None
            except asyncio.LimitOverrunError:
                raise AgiProtocolError(f"{text}: answer line over the stream limit") from None
            if len(raw) > self._answer_bytes:
                raise AgiProtocolError(f"{text}: answer line of {len(raw)} bytes")
            try:
                line = raw.decode().strip()
            except UnicodeDecodeError:
                raise AgiProtocolError(f"{text}: answer is not UTF-8") from None
            if line.startswith("100"):
                continue
            if line == "HANGUP":
                continue  # SIGHUP notice; the next line is the command's own answer
            match = _RESULT.match(line)
            if not match:
                raise AgiProtocolError(f"{text}: {line[:100]!r}")
            value, extra = match.group(1), match.group(2) or ""
            if value == "-1":
                raise AgiHangup(text)
            return value, extra

    async def get_data(self, prompt: str, timeout_ms: int = 6000, max_digits: int = 12) -> str | None:
        """Play ``prompt`` and collect digits until ``#``; None when nothing was keyed in time,
        "" for ``#`` alone."""
        value, extra = await self.command(f"GET DATA {self._sound(prompt)} {int(timeout_ms)} {int(max_digits)}")
        if extra == "timeout" and not value:
            return None
        return value

    async def play(self, *prompts: str) -> None:
        for prompt in prompts:
            await self.command(f'STREAM FILE {self._sound(prompt)} ""')

    async def set_variable(self, name: str, value: str) -> None:
        if not re.match(r"^VECHE_[A-Z_]{1,40}$", name) or not _SAFE_VAR_VALUE.match(value):
            raise ValueError(f"refusing to set {name}={value!r}")
        await self.command(f'SET VARIABLE {name} "{value}"')

    async def set_language(self, language: str) -> None:
        """Switch the channel's voice language (the prompts it hears from now on) to one of
        the languages every node carries; anything else is refused."""
        if language not in LANGUAGES:
            raise ValueError(f"refusing voice language {language!r}")
        await self.command(f'SET VARIABLE CHANNEL(language) "{language}"')
        self.language = language


AgiRoute = Callable[[AgiCall], Awaitable[None]]


class AgiServer:
    """Listens for FastAGI sessions and dispatches them by script name (``agi://host/NAME``).
    A session is served only from an allowed address, within the session cap, with a complete,
    well-formed header block read within its size and time limits, and with the node's secret as
    its first AGI argument; anything else ends that session alone (one log line, one count in
    ``ended``)."""

    def __init__(self, host: str, port: int, secret: str, *, allow: Iterable[str] = (),
                 limits: AgiLimits | None = None) -> None:
        self.host = host
        self.port = port
        self.limits = limits or AgiLimits()
        self._secret = secret.encode()
        self._allow = tuple(ipaddress.ip_network(item, strict=False) for item in allow)
        self._routes: dict[str, AgiRoute] = {}
        self._server: asyncio.Server | None = None
        self.active = 0  # sessions open now
        self.handled = 0  # sessions that reached a route
        self.sessions: Counter[str] = Counter()  # sessions started, per route (metrics)
        self.ended: Counter[str] = Counter(dict.fromkeys(END_REASONS, 0))  # sessions ended, per reason
        self.sounds: SoundResolver | None = None  # set by the prompts service
        if not secret:
            log.error("FastAGI: no secret configured (VECHE_AGI_SECRET): every session will be refused")

    def route(self, name: str, handler: AgiRoute) -> None:
        if not _ROUTE_NAME.match(name) or name in self._routes:
            raise ValueError(f"bad or duplicate AGI route {name!r}")
        self._routes[name] = handler

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._session, self.host, self.port, limit=max(self.limits.header_bytes, self.limits.answer_bytes) + 1)

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _allowed(self, host: str) -> bool:
        if not self._allow:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._allow)

    async def _read_header(self, reader: asyncio.StreamReader) -> dict[str, str]:
        """The header block up to its blank line, within the size and time limits."""
        headers: dict[str, str] = {}
        size = 0
        try:
            async with asyncio.timeout(self.limits.header_timeout):
                while True:
                    try:
                        raw = await reader.readuntil(b"\n")
                    except asyncio.IncompleteReadError as exc:
                        raise _Refused("eof", f"after {size + len(exc.partial)} bytes") from None
                    except asyncio.LimitOverrunError:
                        raise _Refused("oversize", "one line over the limit") from None
                    except (ConnectionError, OSError) as exc:
                        raise _Refused("eof", type(exc).__name__) from None
                    size += len(raw)
                    if size > self.limits.header_bytes:
                        raise _Refused("oversize", f"over {self.limits.header_bytes} bytes")
                    line = raw.rstrip(b"\r\n")
                    if not line:
                        return headers
                    try:
                        text = line.decode()
                    except UnicodeDecodeError:
                        raise _Refused("encoding", f"line {len(headers) + 1}") from None
                    match = _HEADER_LINE.fullmatch(text)
                    if match is None or match.group(1) in headers:
                        raise _Refused("malformed", f"line {len(headers) + 1}")
                    headers[match.group(1)] = match.group(2)
        except TimeoutError:
            raise _Refused("header_timeout", f"{size} bytes in {self.limits.header_timeout:g} s") from None

    def _authorise(self, headers: dict[str, str]) -> tuple[str, AgiRoute]:
        supplied = headers.get(ARG_SECRET, "").encode()
        if not self._secret or not hmac.compare_digest(supplied, self._secret):
            raise _Refused("bad_secret")
        script = headers.get("agi_network_script", "").split("?", 1)[0].strip("/")
        handler = self._routes.get(script)
        if handler is None:
            raise _Refused("unknown_script", repr(script[:40]))
        return script, handler

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        reason, detail, name = "stopped", "", "-"
        self.active += 1
        try:
            if not self._allowed(source):
                raise _Refused("not_allowed")
            if self.active > self.limits.max_sessions:
                raise _Refused("too_many", f"{self.limits.max_sessions} open")
            headers = await self._read_header(reader)
            name, handler = self._authorise(headers)
            call = AgiCall(reader, writer, headers, self.limits.answer_bytes, self.sounds)
            self.sessions[name] += 1
            with log_context(channel=call.channel[:100], call_id=call.uniqueid[:100]):
                lifetime = asyncio.timeout(self.limits.session_seconds)
                try:
                    async with lifetime:
                        await handler(call)
                    reason = "completed"
                except TimeoutError:
                    if not lifetime.expired():
                        raise
                    reason, detail = "session_timeout", f"{self.limits.session_seconds:g} s"
                finally:
                    self.handled += 1
        except _Refused as refused:
            reason, detail = refused.reason, refused.detail
        except AgiHangup:
            reason = "hangup"
        except AgiProtocolError as exc:
            reason, detail = "bad_answer", str(exc)[:200]
        except (ConnectionError, OSError) as exc:
            reason, detail = "hangup", type(exc).__name__
        except Exception:  # noqa: BLE001 - a route's bug ends its own session, never the server
            reason = "error"
            log.exception("FastAGI %s: the route failed", name)
        finally:
            self.active -= 1
            self.ended[reason] += 1
            writer.close()
            level = logging.INFO if reason in ("completed", "hangup", "stopped") else logging.WARNING
            log.log(level, "FastAGI session from %s (route %s) ended: %s%s", source, name, reason,
                    f" ({detail})" if detail else "")
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (TimeoutError, ConnectionError, OSError):
            pass
