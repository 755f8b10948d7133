"""GET /api/v1/conferences/{id}/events: a Server-Sent Events stream of one conference for its
owner — first a ``snapshot`` event with the whole conference, then every engine.bus DomainEvent
of that conference as it happens, with heartbeat comments. An account has at most
VECHE_SSE_STREAMS streams open (the next is refused with 429); a stream ends when the client goes
away, the server shuts down, or the credential it was opened with stops standing (token revoked
or expired, session logged out or ended by a password change, account blocked)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from typing import Any

from aiohttp import web

from engine.domain.errors import RateLimited
from engine.services.bus import Bus, DomainEvent
from web.api import parse, render
from web.api.common import account
from web.auth import still_authorized
from web.context import services

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = web.AppKey("sse_heartbeat_seconds", float)
STOPPING = web.AppKey("sse_stopping", asyncio.Event)
OPEN_STREAMS = web.AppKey("sse_open_streams", Counter)  # account id -> streams open now
RECHECK_SECONDS = web.AppKey("sse_recheck_seconds", float)
DEFAULT_RECHECK_SECONDS = 5.0  # how often a stream asks whether its token or session still stands
DEFAULT_HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 1.0  # how often a quiet stream checks that its client is still there
QUEUE_LIMIT = 1000  # a client this many messages behind is disconnected; it reconnects to a fresh snapshot
RETRY_MS = 2000
FLUSH_SECONDS = 0.05  # a stream's events are written together at most this long after the first


def sse_message(data: Any, event: str | None = None) -> bytes:
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in json.dumps(data, separators=(",", ":")).splitlines()]
    return ("\n".join(lines) + "\n\n").encode()


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def conference_events(request: web.Request) -> web.StreamResponse:
    owner_id = account(request).id
    conference_id = parse.path_id(request)
    open_streams = request.config_dict[OPEN_STREAMS]
    limit = services(request).settings.sse_streams_per_account
    if open_streams[owner_id] >= limit:
        error = RateLimited(f"at most {limit} live event streams may be open per account; close one first")
        error.retry_after = 5  # type: ignore[attr-defined]
        raise error
    open_streams[owner_id] += 1  # no await since the check, so parallel requests cannot both pass
    try:
        return await _stream(request, owner_id, conference_id)
    finally:
        open_streams[owner_id] -= 1
        if open_streams[owner_id] <= 0:
            del open_streams[owner_id]


class Viewer:
    """One open stream's outbox: the encoded messages not written yet, and its wake-up."""

    __slots__ = ("conference_id", "pending", "ready", "behind")

    def __init__(self, conference_id: int) -> None:
        self.conference_id = conference_id
        self.pending: list[bytes] = []
        self.ready = asyncio.Event()
        self.behind = False  # QUEUE_LIMIT messages waiting: the stream ends, the client reconnects

    def push(self, message: bytes) -> None:
        if len(self.pending) >= QUEUE_LIMIT:
            self.behind = True
        else:
            self.pending.append(message)


class Fanout:
    """The streams' one bus subscription (held while any stream is open): an event of a watched
    conference is encoded once and appended to the outbox of each stream of that conference, so a
    publish costs one callback whatever the number of streams. The streams are woken at most
    every FLUSH_SECONDS and each writes what gathered in one go: with many viewers and a busy
    conference, one write per stream per flush instead of one per event."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._viewers: dict[int, set[Viewer]] = {}
        self._dirty: set[Viewer] = set()
        self._flush_due: asyncio.TimerHandle | None = None

    def open(self, conference_id: int) -> Viewer:
        if not self._viewers:
            self._bus.subscribe(self._on_event)
        viewer = Viewer(conference_id)
        self._viewers.setdefault(conference_id, set()).add(viewer)
        return viewer

    def close(self, viewer: Viewer) -> None:
        watching = self._viewers.get(viewer.conference_id)
        if watching is not None:
            watching.discard(viewer)
            if not watching:
                del self._viewers[viewer.conference_id]
                if not self._viewers:
                    self._bus.unsubscribe(self._on_event)

    def _on_event(self, event: DomainEvent) -> None:
        watching = self._viewers.get(event.conference_id)
        if watching:
            message = sse_message(render.event(event))
            for viewer in watching:
                viewer.push(message)
            self._dirty |= watching
            if self._flush_due is None:
                self._flush_due = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)

    def _flush(self) -> None:
        self._flush_due = None
        dirty, self._dirty = self._dirty, set()
        for viewer in dirty:
            viewer.ready.set()


FANOUT = web.AppKey("sse_fanout", Fanout)


async def _stream(request: web.Request, owner_id: int, conference_id: int) -> web.StreamResponse:
    fanout = request.config_dict[FANOUT]
    viewer = fanout.open(conference_id)  # before the snapshot, so nothing falls between the two
    try:
        conference = await services(request).planning.get(owner_id, conference_id)  # 404 if not the owner's
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode() + sse_message(
            render.conference(conference, services(request).settings.access_number), "snapshot"))
        await _pump(request, response, viewer, conference_id)
        return response
    finally:
        fanout.close(viewer)


async def _pump(request: web.Request, response: web.StreamResponse, viewer: Viewer, conference_id: int) -> None:
    heartbeat = request.config_dict.get(HEARTBEAT_SECONDS, DEFAULT_HEARTBEAT_SECONDS)
    recheck = request.config_dict.get(RECHECK_SECONDS, DEFAULT_RECHECK_SECONDS)
    stopping = request.config_dict[STOPPING]
    loop = asyncio.get_running_loop()
    next_beat = loop.time() + heartbeat
    next_check = loop.time() + recheck
    with contextlib.suppress(ConnectionResetError):
        while not stopping.is_set() and not _client_gone(request):
            if loop.time() >= next_check:
                if not await still_authorized(request):
                    log.info("SSE stream of conference %s closed: its credential was revoked", conference_id)
                    break
                next_check = loop.time() + recheck
            if not viewer.ready.is_set():
                try:
                    async with asyncio.timeout(min(POLL_SECONDS, heartbeat, recheck)):
                        await viewer.ready.wait()
                except TimeoutError:
                    if loop.time() >= next_beat:
                        await response.write(b": heartbeat\n\n")
                        next_beat = loop.time() + heartbeat
                    continue
            viewer.ready.clear()
            if viewer.behind:
                log.warning("SSE client of conference %s fell behind; closing its stream", conference_id)
                break
            if viewer.pending:
                chunk = b"".join(viewer.pending)
                viewer.pending.clear()
                await response.write(chunk)


async def stop_streams(app: web.Application) -> None:
    """on_shutdown: end every open stream so the server can stop at once."""
    app[STOPPING].set()
