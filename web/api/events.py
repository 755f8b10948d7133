"""GET /api/v1/conferences/{id}/events: a Server-Sent Events stream of one conference for its
owner — first a ``snapshot`` event with the whole conference, then every engine.bus DomainEvent
of that conference as it happens, with heartbeat comments. The bus subscription ends when the
client goes away or the server shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

from engine.services.bus import DomainEvent
from web.api import parse, render
from web.api.common import account
from web.context import services

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = web.AppKey("sse_heartbeat_seconds", float)
STOPPING = web.AppKey("sse_stopping", asyncio.Event)
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
        conference = await services(request).conferences.get(owner_id, conference_id)  # 404 if not the owner's
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
    stopping = request.config_dict[STOPPING]
    loop = asyncio.get_running_loop()
    next_beat = loop.time() + heartbeat
    with contextlib.suppress(ConnectionResetError):
        while not stopping.is_set() and not _client_gone(request):
            try:
                event = await asyncio.wait_for(queue.get(), min(POLL_SECONDS, heartbeat))
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
