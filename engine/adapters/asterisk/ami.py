"""The AMI link to one Asterisk node: panoramisk behind a small interface, with login,
a liveness check, reconnects without replaying actions, and the channel rule every action keeps."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from engine.config import AmiTarget
from engine.domain.errors import AmiError, AmiUnavailable, ConfigError
from engine.logging import log_context

log = logging.getLogger(__name__)

EventCallback = Callable[["AmiEvent"], Awaitable[None] | None]
LinkCallback = Callable[[str, bool], Awaitable[None] | None]

# What may be put into Context / Variable values: the engine builds these itself, and this
# guard makes sure no caller can smuggle separators or newlines into an action.
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_.@:+\-]{1,200}$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.;/@:+\- ]{0,200}$")
# The one rule for every action that names an existing channel (Hangup, Getvar, Setvar,
# ConfbridgeKick/Mute/Unmute). Accepted are exactly: a channel name as Asterisk reports it in
# events (PJSIP or Local, a name, Asterisk's 8-hex-digit sequence, the Local half ;1/;2), an
# Asterisk Uniqueid as reported in events, or a ChannelId the engine chose for its own Originate.
# AMI reads a Channel value wrapped in slashes as a regular expression over every channel, and
# ConfBridge actions match a prefix or the words "all"/"participants": none of those shapes pass.
_CHANNEL_NAME = re.compile(r"(PJSIP|Local)/[A-Za-z0-9_.@+\-]{1,120}-[0-9a-f]{8}(;[12])?")
_UNIQUEID = re.compile(r"[0-9]{1,20}\.[0-9]{1,10}")
_CHANNEL_ID = re.compile(r"[a-z]{1,3}(-[a-z_]{1,20})?-[0-9a-f]{8,32}(-2)?")
# What the engine originates: a Local channel into one of its own veche-* contexts.
_ORIGINATE_CHANNEL = re.compile(r"Local/[0-9A-Za-z]{1,32}@veche-[a-z]{1,20}/n")


def _check_token(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SAFE_TOKEN.fullmatch(value):
        raise AmiError("refusing unsafe %(what)s %(value)r", what=what, value=value)
    return value


def check_channel(value: object) -> str:
    """``value`` if it names exactly one channel (see the rule above), else AmiError."""
    if isinstance(value, str) and (_CHANNEL_NAME.fullmatch(value) or _UNIQUEID.fullmatch(value)
                                   or _CHANNEL_ID.fullmatch(value)):
        return value
    raise AmiError("refusing to name channel %(value)r: not an exact channel name or id", value=value)


def _check_variable_name(name: str) -> str:
    """A variable or dialplan function the engine reads: ``UNIQUEID``, ``CHANNEL(rtcp,all)``."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Z_]{1,40}(\([a-z,\-]{1,40}\))?", name):
        raise AmiError("refusing to read variable %(name)r", name=name)
    return name


def is_channel(value: object) -> bool:
    """True when ``check_channel`` accepts ``value``."""
    try:
        check_channel(value)
    except AmiError:
        return False
    return True


class AmiEvent:
    """One AMI event, with the node it came from. Header names keep Asterisk's spelling.

    An event read off the socket keeps its block and finds a header in it when asked: the call
    tracker reads a handful of an event's twenty-odd headers, and splitting all of them cost a
    third of the link's time per event. ``headers`` splits the block on first use."""

    __slots__ = ("node_id", "name", "_block", "_headers", "_folded")

    def __init__(self, node_id: str, name: str, headers: dict[str, Any] | None = None) -> None:
        self.node_id = node_id
        self.name = name
        self._block: str | None = None
        self._headers: dict[str, Any] | None = {} if headers is None else headers
        # the headers by lower-case name, made on the first look-up of a name not spelled as Asterisk does
        self._folded: dict[str, Any] | None = None

    @property
    def headers(self) -> dict[str, Any]:
        """Every header by name (a repeated name gives a list of its values)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = _headers_of(self._block or "")
        return headers

    def get(self, key: str, default: str = "") -> str:
        if self._headers is None:
            block = self._block or ""
            value = _line_value(block, f"{key}: ")
            if value is not None:
                return value
            if _line_value(block.lower(), f"{key.lower()}: ", once=False) is None:
                return default  # no line of that name, however spelled
        value = self.headers.get(key)
        if value is None:
            folded = self._folded
            if folded is None:
                folded = self._folded = {k.lower(): v for k, v in self.headers.items()}
            value = folded.get(key.lower(), default)
        return value if isinstance(value, str) else ",".join(value)

    def channel_variable(self, name: str) -> str | None:
        """A variable of the event's channel, as manager.conf ``channelvars`` reports it
        (``ChanVariable: NAME=value``); None when the event does not carry it."""
        if self._headers is None:  # the first line of its name, as the headers' list would give it
            return _line_value(self._block or "", f"ChanVariable: {name}=", once=False)
        raw = self._headers.get("ChanVariable")
        for item in ([raw] if isinstance(raw, str) else raw or []):
            key, sep, value = item.partition("=")
            if sep and key == name:
                return value
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiEvent):
            return NotImplemented
        return (self.node_id, self.name, self.headers) == (other.node_id, other.name, other.headers)

    __hash__ = None  # type: ignore[assignment]  # compared by its headers, which a dict holds

    def __repr__(self) -> str:
        return f"AmiEvent(node_id={self.node_id!r}, name={self.name!r}, headers={self.headers!r})"

    @classmethod
    def from_message(cls, node_id: str, message: Message) -> AmiEvent:
        headers = {k: (v if isinstance(v, str) else list(v)) for k, v in message.items()
                   if k != "content"}
        return cls(node_id=node_id, name=message.get("Event", ""), headers=headers)

    @classmethod
    def from_block(cls, node_id: str, block: str) -> AmiEvent:
        """The event in one AMI block."""
        event = cls(node_id, _line_value(block, "Event: ") or "")
        event._block, event._headers = block, None
        return event


def _line_value(block: str, prefix: str, *, once: bool = True) -> str | None:
    """The rest of the line of an AMI block that starts with ``prefix`` (``"Uniqueid: "``). None
    when no line starts so, or with ``once`` when more than one does (a repeated header: the
    headers' list of its values answers then)."""
    if block.startswith(prefix):
        start = len(prefix)
    else:
        at = block.find(f"\r\n{prefix}")
        if at < 0:
            return None
        start = at + 2 + len(prefix)
    end = block.find("\r\n", start)
    if end < 0:
        end = len(block)
    if once and block.find(f"\r\n{prefix}", end) >= 0:
        return None
    return block[start:end]


def _headers_of(block: str) -> dict[str, Any]:
    """The headers of one AMI block (``Name: value`` lines; a repeated name gives a list)."""
    lines = block.split("\r\n")
    try:
        headers: dict[str, Any] = dict([line.split(": ", 1) for line in lines])
    except ValueError:  # a line that is no header
        headers = {}
    if len(headers) != len(lines):  # repeated names, or lines to skip: line by line
        headers = {}
        for line in lines:
            key, sep, value = line.partition(": ")
            if not sep:
                continue
            if key in headers:
                known = headers[key]
                headers[key] = [*known, value] if isinstance(known, list) else [known, value]
            else:
                headers[key] = value
    return headers


def _log_ids(event: AmiEvent) -> dict[str, Any]:
    """What the log lines written while ``event`` is handled carry."""
    return {"node": event.node_id, "channel": event.get("Channel"), "call_id": event.get("Uniqueid"),
            "room": event.get("Conference")}


# Blocks the lean path leaves to panoramisk: anything answering an action panoramisk still
# awaits (a response, or an event of a list action, which carries the action's ActionID), and
# the session events panoramisk itself acts on (Shutdown closes the protocol, FullyBooted sends
# its awaiting actions). An OriginateResponse carries the ActionID of an Originate answered long
# ago: an event. The answers to the adapter's own Originates (AmiLink.originate) go to it.
_EVENT_PREFIX = b"Event: "
_RESPONSE_PREFIX = b"Response: "
_SESSION_EVENTS = (b"Event: Shutdown\r\n", b"Event: FullyBooted\r\n")


@dataclass(frozen=True)
class PreparedOriginate:
    """An Originate checked and encoded by one link (AmiLink.prepare_originate), for that link
    to send: its ActionID is the link's own."""

    action_id: str
    data: bytes


class _OneSendPerTurn:
    """The AMI socket's writes of one turn of the event loop, sent together: a burst's dials run
    as tasks that are ready in the same turn, and their Originates then wake Asterisk's manager
    thread (and cost the engine a system call) once instead of once per action. Everything else
    is the transport's own."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        """Write this turn's writes now."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Protocol(AMIProtocol):
    """panoramisk's AMI protocol with a lean path for events: a node sends tens of thousands of
    events a second at peak, and panoramisk's case-insensitive messages and pattern dispatch
    cost more than the call tracker behind them. Blocks are split as bytes and decoded whole (a
    character cut between two reads stays intact); events go straight to the adapter as
    AmiEvents, everything else through panoramisk's own message handling."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(_OneSendPerTurn(transport))
        self._pending_bytes = b""

    def data_received(self, data: bytes) -> None:
        if self.version is None and not self._pending_bytes and data.startswith(b"Asterisk Call Manager/"):
            banner, _, data = data.partition(b"\r\n")
            self.version = banner.decode("ascii", "replace").partition("/")[2].strip()
        blocks = (self._pending_bytes + data).split(b"\r\n\r\n")
        self._pending_bytes = blocks.pop()
        adapter: AmiLink | None = self.factory.config.get("adapter") if self.factory else None
        for raw in blocks:
            raw = raw.strip(b"\r\n")
            if adapter is not None and raw.startswith(_EVENT_PREFIX) and not raw.startswith(_SESSION_EVENTS):
                event = AmiEvent.from_block(adapter.node_id, raw.decode("utf-8", "replace"))
                if b"\r\nActionID: " not in raw or event.get("ActionID") not in self.responses:
                    adapter._received(event)
                    continue
            elif adapter is not None and adapter._originating and raw.startswith(_RESPONSE_PREFIX):
                headers = _headers_of(raw.decode("utf-8", "replace"))
                if adapter._answered(headers):
                    continue
            message = Message.from_line(raw.decode("utf-8", "replace"))
            if message is not None:
                self.handle_message(message)


class _Manager(Manager):
    """panoramisk's Manager, telling the adapter how each login attempt ended."""

    def login(self, future: asyncio.Future) -> bool:
        ok = super().login(future)
        adapter: AmiLink | None = self.config.get("adapter")
        if adapter is not None:
            adapter._login_done(future)
        return ok

    def connect(self, *args: Any, **kwargs: Any) -> asyncio.Task | None:
        adapter: AmiLink | None = self.config.get("adapter")
        if adapter is not None and adapter._closing:
            return None  # a closed adapter stays closed (panoramisk would retry every second)
        return super().connect(*args, **kwargs)

    def connection_lost(self, exc: object) -> None:
        adapter: AmiLink | None = self.config.get("adapter")
        if adapter is not None and adapter._closing:
            self._connected = False
            return
        super().connection_lost(exc)


class AmiLink:
    """AMI link to one Asterisk node: actions, and the raw events for its media node."""

    def __init__(self, target: AmiTarget, node_id: str = "ast1", *, ping_interval: float = 5.0,
                 pong_timeout: float = 3.0, action_timeout: float = 10.0) -> None:
        self.target = target
        self.node_id = node_id
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.action_timeout = action_timeout
        self._manager: _Manager | None = None
        self._subscribers: list[tuple[frozenset[str] | None, EventCallback]] = []
        self._link_callbacks: list[LinkCallback] = []
        self._inbox: deque[AmiEvent] = deque()  # received, not yet delivered to the subscribers
        self._wakeup: asyncio.Future[None] | None = None  # set while the delivery waits for an event
        self._tasks: list[asyncio.Task] = []
        self._logged_in = asyncio.Event()
        self._login_result: asyncio.Future | None = None
        self._pending: set[asyncio.Future] = set()
        self._originating: dict[str, asyncio.Future[dict[str, Any]]] = {}  # by ActionID, until answered
        self._originate_ids = itertools.count(1)
        self._closing = False
        self.reconnects = 0

    # ----------------------------------------------------------------- life cycle

    @property
    def connected(self) -> bool:
        return self._logged_in.is_set()

    async def connect(self, timeout: float = 10.0) -> None:
        """Log in, or raise ConfigError with a one-line reason (unreachable, wrong secret)."""
        where = f"{self.target.host}:{self.target.port}"
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.target.host, self.target.port), timeout)
            writer.close()
        except (TimeoutError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigError(f"cannot reach Asterisk AMI at {where}: {reason}") from None
        loop = asyncio.get_running_loop()
        self._login_result = loop.create_future()
        self._manager = _Manager(
            loop=loop, host=self.target.host, port=self.target.port,
            username=self.target.username, secret=self.target.secret,
            ping_delay=10**9, reconnect_timeout=1, adapter=self,
            on_disconnect=self._on_disconnect,
            forgetable_actions=("ping", "login"), protocol_factory=_Protocol,
            log=logging.getLogger("engine.ami.panoramisk"),
        )
        self._manager.register_event("*", self._on_message)
        self._tasks.append(asyncio.create_task(self._deliver_events(), name="ami-events"))
        self._manager.connect()
        try:
            ok = await asyncio.wait_for(asyncio.shield(self._login_result), timeout)
        except TimeoutError:
            await self.close()
            raise ConfigError(f"Asterisk AMI at {where} did not answer the login in {timeout:.0f} s") from None
        if not ok:
            await self.close()
            raise ConfigError(f"Asterisk AMI at {where} refused user {self.target.username!r}: "
                              "wrong secret or not permitted from this address")
        self._tasks.append(asyncio.create_task(self._liveness(), name="ami-liveness"))

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            while not task.done():  # Python 3.11's wait_for can swallow a cancel: repeat it
                await asyncio.wait({task}, timeout=1.0)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._manager is not None:
            self._manager.close()
            self._manager.awaiting_actions.clear()
        self._logged_in.clear()
        self._fail_pending()

    def _login_done(self, future: asyncio.Future) -> None:
        try:
            ok = bool(future.result().success)
        except Exception:  # noqa: BLE001 - a broken login is a failed login
            ok = False
        if self._login_result is not None and not self._login_result.done():
            self._login_result.set_result(ok)
            if ok:
                self._logged_in.set()
            else:
                self._closing = True  # connect() closes a refused adapter; Asterisk hangs up first
            return
        if ok and not self._logged_in.is_set():
            self._logged_in.set()
            self.reconnects += 1
            log.warning("AMI link to %s is up again (reconnect #%d)", self.node_id, self.reconnects)
            self._notify_link(True)

    def _on_disconnect(self, manager: Manager, exc: object) -> None:
        # panoramisk would replay unanswered actions after the reconnect; an Originate replayed
        # could dial a person twice, so the adapter drops them all and fails their futures.
        manager.awaiting_actions.clear()
        self._fail_pending()
        if self._logged_in.is_set():
            self._logged_in.clear()
            if not self._closing:
                log.warning("AMI link to %s lost", self.node_id)
                self._notify_link(False)

    def _fail_pending(self) -> None:
        for fut in list(self._pending):
            if not fut.done():
                fut.set_exception(AmiUnavailable("AMI link to %(node)s lost", node=self.node_id))
        self._pending.clear()

    def _drop_link(self) -> None:
        manager = self._manager
        if manager is not None and manager.protocol is not None:
            transport = getattr(manager.protocol, "transport", None)
            if transport is not None:
                transport.abort()  # connection_lost follows, and panoramisk reconnects

    async def _liveness(self) -> None:
        """panoramisk's Ping never checks for the pong: a half-open link would go unnoticed."""
        while True:
            await asyncio.sleep(self.ping_interval)
            if not self.connected:
                continue
            try:
                await self.action("Ping", timeout=self.pong_timeout)
            except (TimeoutError, AmiError):
                if self.connected:
                    log.warning("AMI %s: no pong within %.1f s, dropping the link", self.node_id,
                                self.pong_timeout)
                    self._drop_link()

    def _notify_link(self, up: bool) -> None:
        for callback in self._link_callbacks:
            result = callback(self.node_id, up)
            if asyncio.iscoroutine(result):
                asyncio.ensure_future(result)

    # ----------------------------------------------------------------- events

    def subscribe(self, callback: EventCallback, events: Iterable[str] | None = None) -> None:
        """Call ``callback`` for every event (or only the named ones), in arrival order."""
        # a new list: the delivery loop iterates the old one without copying it
        self._subscribers = [*self._subscribers, (frozenset(events) if events is not None else None, callback)]

    def unsubscribe(self, callback: EventCallback) -> None:
        self._subscribers = [(names, cb) for names, cb in self._subscribers if cb is not callback]

    def on_link_change(self, callback: LinkCallback) -> None:
        """``callback(node_id, up)`` when the link is lost or comes back after a loss."""
        self._link_callbacks.append(callback)

    def _on_message(self, manager: Manager, message: Message) -> None:
        self._received(AmiEvent.from_message(self.node_id, message))

    def _received(self, event: AmiEvent) -> None:
        self._inbox.append(event)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _deliver_events(self) -> None:
        inbox = self._inbox
        loop = asyncio.get_running_loop()
        while True:
            if not inbox:
                self._wakeup = loop.create_future()
                await self._wakeup
                continue
            event = inbox.popleft()
            with log_context.of(event, _log_ids):
                for names, callback in self._subscribers:
                    if names is not None and event.name not in names:
                        continue
                    try:
                        result = callback(event)
                        if result is not None and asyncio.iscoroutine(result):
                            await result
                    except Exception:  # noqa: BLE001 - one bad subscriber must not stop the others
                        log.exception("AMI event subscriber failed on %s", event.name)

    async def wait_for_event(self, predicate: Callable[[AmiEvent], bool],
                             timeout: float = 10.0) -> AmiEvent:
        """The next event matching ``predicate`` (subscribe before triggering it)."""
        loop = asyncio.get_running_loop()
        found: asyncio.Future[AmiEvent] = loop.create_future()

        def check(event: AmiEvent) -> None:
            if not found.done() and predicate(event):
                found.set_result(event)

        self.subscribe(check)
        try:
            return await asyncio.wait_for(found, timeout)
        finally:
            self.unsubscribe(check)

    # ----------------------------------------------------------------- actions

    async def action(self, name: str, timeout: float | None = None, **headers: Any) -> Message:
        """Send one action and return its single response; raise AmiError on an error reply."""
        response = await self._send({"Action": name, **headers}, as_list=False, timeout=timeout)
        self._check_accepted(name, response)
        return response

    def _check_accepted(self, name: str, response: Message | dict[str, Any]) -> None:
        """Raise AmiError when Asterisk's single response refuses the action."""
        if response.get("Response") in ("Error", "Failure", "Fail"):
            raise AmiError("%(action)s refused by %(node)s: %(reason)s", action=name, node=self.node_id,
                           reason=response.get("Message", "?"))

    async def action_list(self, name: str, timeout: float | None = None,
                          empty_ok: tuple[str, ...] = (), **headers: Any) -> list[Message]:
        """Send a list action (EventList) and return its events, without the Complete marker."""
        result = await self._send({"Action": name, **headers}, as_list=None, timeout=timeout)
        messages = result if isinstance(result, list) else [result]
        head = messages[0]
        if head.get("Response") in ("Error", "Failure"):
            if any(text in head.get("Message", "") for text in empty_ok):
                return []
            raise AmiError("%(action)s refused by %(node)s: %(reason)s", action=name, node=self.node_id,
                           reason=head.get("Message", "?"))
        return [m for m in messages[1:] if not m.get("Event", "").endswith("Complete")]

    async def _send(self, action: dict[str, Any], as_list: bool | None,
                    timeout: float | None) -> Any:
        if not self.connected or self._manager is None:
            raise AmiUnavailable("AMI link to %(node)s is down", node=self.node_id)
        future = self._manager.send_action(action, as_list=as_list)
        self._pending.add(future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout or self.action_timeout)
        except TimeoutError:
            raise AmiError("%(action)s got no answer from %(node)s", action=action["Action"],
                           node=self.node_id) from None
        finally:
            self._pending.discard(future)

    async def originate(self, *, channel_id: str, channel: str, context: str, exten: str,
                        variables: dict[str, str], timeout_ms: int, caller_id: str | None = None,
                        other_channel_id: str | None = None) -> None:
        """Queue an Originate; its outcome comes later as an OriginateResponse event whose
        Uniqueid is ``channel_id``. Returns once Asterisk accepted it (never replayed)."""
        await self.start_originate(self.prepare_originate(
            channel_id=channel_id, channel=channel, context=context, exten=exten, variables=variables,
            timeout_ms=timeout_ms, caller_id=caller_id, other_channel_id=other_channel_id))

    def prepare_originate(self, *, channel_id: str, channel: str, context: str, exten: str,
                          variables: dict[str, str], timeout_ms: int, caller_id: str | None = None,
                          other_channel_id: str | None = None) -> PreparedOriginate:
        """An Originate checked and written out, to be sent later by ``start_originate``: a
        conference's start prepares its dials while its durable intent is being stored, and
        sends them the moment it is. Raises AmiError for anything unsafe, as ``originate``."""
        headers: dict[str, Any] = {
            "Channel": self._check_originate_channel(channel),
            "Context": _check_token(context, "context"),
            "Exten": _check_token(exten, "extension"),
            "Priority": "1",
            "Async": "true",
            "Timeout": str(int(timeout_ms)),
            "ChannelId": self._check_channel_id(channel_id),
            "Variable": [f"{_check_token(k, 'variable')}={self._check_value(v)}"
                         for k, v in variables.items()],
        }
        if other_channel_id:
            headers["OtherChannelId"] = self._check_channel_id(other_channel_id)
        if caller_id:
            headers["CallerID"] = self._check_value(caller_id)
        action_id = f"originate-{next(self._originate_ids)}"
        lines = ["Action: Originate"]
        for key, value in headers.items():
            lines.extend(f"{key}: {item}" for item in (value if isinstance(value, list) else [value]))
        lines.append(f"ActionID: {action_id}")
        return PreparedOriginate(action_id, ("\r\n".join(lines) + "\r\n\r\n").encode())

    def start_originate(self, prepared: PreparedOriginate) -> Awaitable[None]:
        """Send a prepared Originate now (with the rest of this turn's writes), beside panoramisk:
        a conference's start sends a burst of them between its durable intent and its first
        call, and panoramisk's action objects and the wait per action cost several times the
        text itself. ``prepared`` comes from this link's ``prepare_originate``. The returned
        awaitable ends once Asterisk accepted it (AmiError if it refused or did not answer) and
        must be awaited. Like every Originate it is never replayed: a link lost before the answer
        fails it. AmiUnavailable at once when the link is down."""
        manager = self._manager
        protocol = manager.protocol if manager is not None else None
        if not self.connected or protocol is None or protocol.transport is None:
            raise AmiUnavailable("AMI link to %(node)s is down", node=self.node_id)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._originating[prepared.action_id] = future
        self._pending.add(future)
        protocol.transport.write(prepared.data)
        late = loop.call_later(self.action_timeout, self._unanswered, prepared.action_id)
        return self._accepted(prepared.action_id, future, late)

    def send_now(self) -> None:
        """Write what this turn handed the socket now rather than at the start of the next turn:
        a start's burst of Originates leaves before the start's own bookkeeping."""
        manager = self._manager
        protocol = manager.protocol if manager is not None else None
        transport = protocol.transport if protocol is not None else None
        if isinstance(transport, _OneSendPerTurn):
            transport.flush()

    async def _accepted(self, action_id: str, future: asyncio.Future[dict[str, Any]],
                        late: asyncio.TimerHandle) -> None:
        try:
            self._check_accepted("Originate", await future)
        finally:
            late.cancel()
            self._originating.pop(action_id, None)
            self._pending.discard(future)

    def _answered(self, headers: dict[str, Any]) -> bool:
        """Hand a response to the Originate awaiting it; False when it answers something else."""
        future = self._originating.pop(headers.get("ActionID", ""), None)
        if future is None:
            return False
        if not future.done():
            future.set_result(headers)
        return True

    def _unanswered(self, action_id: str) -> None:
        future = self._originating.pop(action_id, None)
        if future is not None and not future.done():
            future.set_exception(AmiError("%(action)s got no answer from %(node)s", action="Originate",
                                          node=self.node_id))

    @staticmethod
    def _check_originate_channel(channel: str) -> str:
        if not isinstance(channel, str) or not _ORIGINATE_CHANNEL.fullmatch(channel):
            raise AmiError("refusing to originate %(channel)r", channel=channel)
        return channel

    @staticmethod
    def _check_channel_id(channel_id: str) -> str:
        if not isinstance(channel_id, str) or not _CHANNEL_ID.fullmatch(channel_id):
            raise AmiError("refusing channel id %(channel)r", channel=channel_id)
        return channel_id

    @staticmethod
    def _check_value(value: str) -> str:
        if not _SAFE_VALUE.match(value):
            raise AmiError("refusing unsafe variable value %(value)r", value=value)
        return value

    async def hangup(self, channel: str, cause: int = 16) -> None:
        await self.action("Hangup", Channel=check_channel(channel), Cause=str(cause))

    async def getvar(self, channel: str, variable: str) -> str:
        response = await self.action("Getvar", Channel=check_channel(channel),
                                     Variable=_check_variable_name(variable))
        return response.get("Value", "") or ""

    async def setvar(self, channel: str, variable: str, value: str) -> None:
        await self.action("Setvar", Channel=check_channel(channel),
                          Variable=_check_token(variable, "variable"),
                          Value=self._check_value(value))

    # ConfBridge ----------------------------------------------------------------

    async def channel_ids(self) -> set[str]:
        """Uniqueids of the channels up on the node (CoreShowChannels)."""
        messages = await self.action_list("CoreShowChannels")
        return {m.get("Uniqueid", "") for m in messages if m.get("Event") == "CoreShowChannel"}

    async def channel_count(self) -> int:
        """Channels up on the node: the operator's measure of Asterisk load."""
        return len(await self.channel_ids())

    async def boot_time(self) -> str:
        """When this Asterisk started (CoreStatus), to tell a restart from a link loss."""
        status = await self.action("CoreStatus")
        return f"{status.get('CoreStartupDate', '')} {status.get('CoreStartupTime', '')}".strip()

    async def confbridge_rooms(self) -> list[AmiEvent]:
        messages = await self.action_list("ConfbridgeListRooms", empty_ok=("No active conferences",))
        return [AmiEvent.from_message(self.node_id, m) for m in messages]

    async def confbridge_members(self, room: str) -> list[AmiEvent]:
        messages = await self.action_list(
            "ConfbridgeList", Conference=_check_token(room, "room"),
            empty_ok=("No active conferences", "No Conference by that name found"))
        return [AmiEvent.from_message(self.node_id, m) for m in messages]

    async def confbridge_kick(self, room: str, channel: str) -> None:
        await self.action("ConfbridgeKick", Conference=_check_token(room, "room"),
                          Channel=check_channel(channel))

    async def confbridge_mute(self, room: str, channel: str, mute: bool = True) -> None:
        await self.action("ConfbridgeMute" if mute else "ConfbridgeUnmute",
                          Conference=_check_token(room, "room"),
                          Channel=check_channel(channel))

    async def confbridge_lock(self, room: str, lock: bool = True) -> None:
        await self.action("ConfbridgeLock" if lock else "ConfbridgeUnlock",
                          Conference=_check_token(room, "room"))

    async def confbridge_rejoin(self, channel: str, profile: str) -> None:
        """Send a channel that is in a room back through ``veche-room`` with another user profile:
        ConfBridge cannot change a member's profile during a call, and a Redirect keeps the call
        up (the member is out of the room for a moment, and its room stays in VECHE_ROOM)."""
        await self.setvar(channel, "VECHE_PROFILE", profile)  # refuses what the channel rule refuses
        await self.action("Redirect", Channel=channel, Context="veche-room", Exten="join", Priority="1")
