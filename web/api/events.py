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
from engine.services.bus import DomainEvent
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
QUEUE_LIMIT = 1000  # a client this far behind is disconnected; it reconnects to a fresh snapshot
RETRY_MS = 2000


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


async def _stream(request: web.Request, owner_id: int, conference_id: int) -> web.StreamResponse:
    bus = services(request).bus
    queue: asyncio.Queue[DomainEvent | None] = asyncio.Queue()

    def forward(event: DomainEvent) -> None:
        if event.conference_id != conference_id:
            return
        if queue.qsize() >= QUEUE_LIMIT:
            queue.put_nowait(None)  # too far behind: end the stream
            return
        queue.put_nowait(event)

    bus.subscribe(forward)  # before the snapshot, so nothing falls between the two
    try:
        conference = await services(request).planning.get(owner_id, conference_id)  # 404 if not the owner's
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode() + sse_message(
            render.conference(conference, services(request).settings.access_number), "snapshot"))
        await _pump(request, response, queue, conference_id)
        return response
    finally:
        bus.unsubscribe(forward)


async def _pump(request: web.Request, response: web.StreamResponse,
                queue: asyncio.Queue[DomainEvent | None], conference_id: int) -> None:
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
            try:
                event = await asyncio.wait_for(queue.get(), min(POLL_SECONDS, heartbeat, recheck))
            except TimeoutError:
                if loop.time() >= next_beat:
                    await response.write(b": heartbeat\n\n")
                    next_beat = loop.time() + heartbeat
                continue
            if event is None:
                log.warning("SSE client of conference %s fell behind; closing its stream", conference_id)
                break
            await response.write(sse_message(render.event(event)))


async def stop_streams(app: web.Application) -> None:
    """on_shutdown: end every open stream so the server can stop at once."""
    app[STOPPING].set()
