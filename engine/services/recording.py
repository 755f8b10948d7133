"""Conference recording: a recorder channel joins the room on its node and MixMonitor writes
the room's mix; after the recording stops the file is converted to Ogg/Opus (ffmpeg), measured
(ffprobe) and kept in the recording directory for the operator's retention period. A failure to
record never touches the conference: it is logged, stored for the console card and published."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.adapters.asterisk import CallHungUp, CallPlaced, MediaNodes, NodeEvent, ParticipantJoined, RecordingWritten
from engine.adapters.asterisk.contract import ROOM_EXTRA_MEMBERS
from engine.adapters.db.conferences import ConferenceRepository
from engine.adapters.db.recordings import RecordingRepository
from engine.config import Settings
from engine.domain import recording as rules
from engine.domain.errors import AmiError, Forbidden, NotFound, StateConflict
from engine.domain.model import Conference, ConferenceState, state_refusal
from engine.services.bus import Bus, DomainEvent
from engine.services.calls import CallService, now_utc
from engine.services.recording_files import purge_expired, remove, settled_raw_file, to_ogg

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 3600.0
FILE_SETTLE_SECONDS = 15.0  # MixMonitor closes the file shortly after its channel hangs up


class RecordingService:
    def __init__(self, settings: Settings, repo: RecordingRepository, conferences: ConferenceRepository, *,
                 nodes: MediaNodes, bus: Bus, calls: CallService) -> None:
        self.settings = settings
        self.repo = repo
        self.conferences = conferences
        self.nodes = nodes
        self.bus = bus
        self.calls = calls
        self._tasks: set[asyncio.Task] = set()
        self._stopped = False  # a delivery under way may still call the listeners after stop()
        # room -> conference id of the conferences recorded since this engine started (and those
        # being recorded when it started), until they end: every join asks, and most rooms are not
        self._recorded_rooms: dict[str, int] = {}

    @property
    def directory(self) -> Path:
        return self.settings.recordings

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        self._stopped = False
        self.directory.mkdir(parents=True, exist_ok=True)
        self._recorded_rooms.update(await self.repo.recorded_rooms())
        self.nodes.subscribe(self.on_node_event)
        self.bus.subscribe(self.on_domain_event, kinds=("conference.started", "conference.ended"))
        self._spawn(self._purge_loop(), "recording-purge")

    async def stop(self) -> None:
        self._stopped = True
        self.bus.unsubscribe(self.on_domain_event)
        self.nodes.unsubscribe(self.on_node_event)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


    def _spawn(self, coro: Any, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _publish(self, kind: str, conference_id: int, owner_id: int | None, **data: Any) -> None:
        await self.bus.publish(DomainEvent(kind=kind, conference_id=conference_id, owner_id=owner_id, data=data))

    # ----------------------------------------------------------------- start / stop

    async def _running(self, owner_id: int | None, conference_id: int) -> Conference:
        conference = await self.conferences.get(conference_id, owner_id, with_participants=False)
        if conference is None:
            raise NotFound("no such conference")
        if conference.state != ConferenceState.RUNNING:
            raise StateConflict(state_refusal(conference.state))
        return conference

    async def start_recording(self, owner_id: int | None, conference_id: int, actor: str | None = None) -> dict:
        """Start recording a running conference (Forbidden when the operator does not allow
        recording for its account; StateConflict when it is recorded already)."""
        conference = await self._running(owner_id, conference_id)
        if not await self.repo.recording_allowed(conference.owner_id):
            raise Forbidden("recording is not allowed for this account; ask the operator")
        call_id = rules.new_call_id()
        row = await self.repo.insert(conference.id, conference.owner_id, call_id, conference.node_id)
        if row is None:
            raise StateConflict("the conference is being recorded already")
        self._recorded_rooms[conference.room] = conference.id
        actor = actor or _actor(owner_id)
        try:
            await self.nodes.node(conference.node_id).record(
                call_id, conference.room, max_members=conference.max_participants + ROOM_EXTRA_MEMBERS)
        except AmiError as exc:
            await self._failed(row, "Asterisk did not start the recorder", str(exc))
            raise StateConflict("the recording could not start; try again") from exc
        await self.repo.set_conference_error(conference.id, None)
        await self.conferences.log_event(conference.id, "recording.started", actor=actor,
                                         detail={"recording_id": row["id"]})
        await self._publish("recording.started", conference.id, conference.owner_id, recording_id=row["id"],
                            actor=actor)
        return row

    async def stop_recording(self, owner_id: int | None, conference_id: int, actor: str | None = None) -> dict:
        """Stop the running recording of a conference. The recording is stopped in the database
        before this returns, so a start right after it begins a new one; the file is converted
        afterwards."""
        conference = await self._running(owner_id, conference_id)
        row = await self.repo.running(conference.id)
        stopped = await self._claim(row) if row is not None else None
        if stopped is None:
            raise StateConflict("the conference is not being recorded")
        actor = actor or _actor(owner_id)
        try:
            await self.nodes.node(stopped["node_id"]).hangup_channel(stopped["call_id"])
        except AmiError as exc:
            log.warning("recording %s: hang-up of the recorder failed: %s", stopped["id"], exc)
        self._spawn(self._convert(stopped), f"recording-{stopped['id']}")
        await self.conferences.log_event(conference.id, "recording.stopped", actor=actor,
                                         detail={"recording_id": stopped["id"]})
        await self._publish("recording.stopped", conference.id, conference.owner_id, recording_id=stopped["id"],
                            actor=actor)
        return stopped

    async def toggle(self, owner_id: int | None, conference_id: int, actor: str | None = None) -> bool:
        """Start the recording, or stop the running one; True when it now records."""
        if await self.repo.running(conference_id) is not None:
            await self.stop_recording(owner_id, conference_id, actor)
            return False
        await self.start_recording(owner_id, conference_id, actor)
        return True

    async def _failed(self, row: dict, error: str, technical: str = "") -> None:
        """Record a failed recording: ``error`` is the catalogue sentence the portal shows,
        ``technical`` the detail for the log and the event log."""
        log.error("recording %s of conference %s failed: %s (%s)", row["id"], row["conference_id"], error, technical)
        await self.repo.update(row["id"], state="failed", error=error, stopped_at=now_utc())
        await self.repo.set_conference_error(row["conference_id"], error)
        await self.conferences.log_event(row["conference_id"], "recording.failed",
                                         detail={"recording_id": row["id"], "error": error, "technical": technical})
        await self._publish("recording.failed", row["conference_id"], row["owner_id"], recording_id=row["id"],
                            error=error)

    # ----------------------------------------------------------------- events

    async def on_domain_event(self, event: DomainEvent) -> None:
        if self._stopped:
            return
        if event.kind == "conference.ended":
            self._recorded_rooms = {room: cid for room, cid in self._recorded_rooms.items()
                                    if cid != event.conference_id}
        if event.kind == "conference.started" and event.conference_id is not None:
            self._spawn(self._auto_start(event.conference_id), f"recording-auto-{event.conference_id}")

    async def _auto_start(self, conference_id: int) -> None:
        conference = await self.conferences.get(conference_id, with_participants=False)
        if conference is None or not conference.recording:
            return
        try:
            await self.start_recording(None, conference_id, actor="engine")
        except (Forbidden, StateConflict, NotFound) as exc:
            log.error("conference %s: recording did not start: %s", conference_id, exc)
            await self.repo.set_conference_error(conference_id, str(exc))
            await self.conferences.log_event(conference_id, "recording.failed", detail={"error": str(exc)})
            await self._publish("recording.failed", conference_id, conference.owner_id, error=str(exc))

    async def on_node_event(self, event: NodeEvent) -> None:
        if self._stopped:
            return
        if isinstance(event, RecordingWritten):
            await self._on_file(event)
        elif isinstance(event, ParticipantJoined) and not event.announcer and event.room in self._recorded_rooms:
            # in a task: its look-ups must not hold up the node's events for everyone else
            self._spawn(self._on_join(event, event.call_id), f"recording-join-{event.call_id}")
        elif isinstance(event, CallHungUp) and rules.is_recorder(event.call_id):
            row = await self.repo.by_call_id(event.call_id)
            if row is not None and row["state"] == "recording":
                self._spawn(self._recorder_gone(row, event), f"recording-{row['id']}")
        elif isinstance(event, CallPlaced) and rules.is_recorder(event.call_id) and not event.answered:
            row = await self.repo.by_call_id(event.call_id)
            if row is not None and row["state"] == "recording":
                await self._failed(row, "the recorder did not join the room", f"reason {event.reason or '?'}")

    async def _on_file(self, event: RecordingWritten) -> None:
        call_id = event.call_id
        row = await self.repo.by_call_id(call_id) if rules.is_recorder(call_id) else None
        if row is None or row["node_id"] != event.node_id:
            return
        in_root = rules.raw_path_in_root(event.path, call_id)
        if in_root is None:
            log.warning("recording %s: node reported an unexpected file %r", row["id"], event.path)
            return
        await self.repo.update(row["id"], raw_path=str(in_root))

    async def _on_join(self, event: ParticipantJoined, uid: str) -> None:
        """Whoever joins a recorded room hears that it is recorded; when the recorder itself
        joins, the whole room hears it."""
        conference = await self.conferences.get_by_room(event.room)
        if conference is None or conference.node_id != event.node_id or conference.state != ConferenceState.RUNNING:
            return
        running = await self.repo.running(conference.id)
        if running is None or (rules.is_recorder(uid) and uid != running["call_id"]):
            return
        try:
            announcer = await self.calls.announce(conference, "recording")
        except (AmiError, KeyError) as exc:
            log.warning("conference %s: the recording notice was not played: %s", conference.id, exc)
            return
        await self.conferences.log_event(conference.id, "recording.announced",
                                         detail={"announcer": announcer, "for": "room" if rules.is_recorder(uid)
                                                 else "joiner", "recording_id": running["id"]})

    # ----------------------------------------------------------------- conversion

    async def _claim(self, row: dict) -> dict | None:
        """Mark a recording stopped (converting), unless a stop or the recorder's hang-up did so
        first; the claimed row, or None."""
        return await self.repo.update(row["id"], only_state="recording", state="converting", stopped_at=now_utc())

    async def _recorder_gone(self, row: dict, event: CallHungUp) -> None:
        """The recorder hung up without a stop: in a running conference that is a failure the
        console shows; at the conference's end it is the normal end. Either way its file is kept."""
        claimed = await self._claim(row)
        if claimed is None:
            return
        conference = await self.conferences.get(row["conference_id"], with_participants=False)
        if conference is not None and conference.state == ConferenceState.RUNNING:
            error = "the recorder left the room"
            log.error("conference %s: %s (cause %s)", row["conference_id"], error, event.cause)
            await self.repo.set_conference_error(row["conference_id"], error)
            await self.conferences.log_event(row["conference_id"], "recording.failed",
                                             detail={"recording_id": row["id"], "error": error})
            await self._publish("recording.failed", row["conference_id"], row["owner_id"],
                                recording_id=row["id"], error=error)
        await self._convert(claimed)

    async def _convert(self, row: dict) -> None:
        """Convert a stopped recording's file, or mark the recording failed."""
        try:
            raw = await settled_raw_file(self.repo, row["id"], self.host_path, FILE_SETTLE_SECONDS)
            name = rules.converted_name(row["id"], row["call_id"])
            target = self.directory / name
            duration = await to_ogg(raw, target)
        except (OSError, ValueError, RuntimeError, TimeoutError) as exc:
            await self._failed(row, "the recording could not be converted", str(exc))
            return
        raw.unlink(missing_ok=True)
        ready = await self.repo.update(row["id"], state="ready", file_name=name, duration_seconds=duration,
                                       size_bytes=target.stat().st_size)
        await self.conferences.log_event(row["conference_id"], "recording.ready",
                                         detail={"recording_id": row["id"], "duration_seconds": round(duration, 1),
                                                 "size_bytes": ready["size_bytes"] if ready else None})
        await self._publish("recording.ready", row["conference_id"], row["owner_id"], recording_id=row["id"])

    def host_path(self, in_root: str) -> Path:
        """Where a file the node names by its path in the Asterisk root lies on this host."""
        return self.settings.rootfs / in_root.lstrip("/")

    # ----------------------------------------------------------------- owner's access

    async def list_for(self, owner_id: int | None, conference_ids: list[int]) -> list[dict]:
        return await self.repo.of_conferences(conference_ids, owner_id) if conference_ids else []

    async def file(self, owner_id: int | None, recording_id: int) -> tuple[dict, Path]:
        """A ready recording of the owner and its file (NotFound for anyone else's)."""
        row = await self.repo.get(recording_id, owner_id)
        if row is None or row["state"] != "ready" or not row["file_name"]:
            raise NotFound("no such recording")
        path = self.directory / row["file_name"]
        if not path.is_file():
            raise NotFound("no such recording")
        return row, path

    async def delete(self, owner_id: int | None, recording_id: int) -> None:
        row = await self.repo.get(recording_id, owner_id)
        if row is None:
            raise NotFound("no such recording")
        if row["state"] in ("recording", "converting"):
            raise StateConflict("the recording is still being written")
        await remove(self.repo, self.directory, row, owner_id)
        await self.conferences.log_event(row["conference_id"], "recording.deleted", actor=_actor(owner_id),
                                         detail={"recording_id": row["id"]})

    async def purge(self, now: datetime | None = None) -> int:
        """Delete the recordings past the retention period; how many were deleted."""
        before = rules.expired_before(now or now_utc(), self.settings.recording_retention_days)
        removed = await purge_expired(self.repo, self.conferences, self.directory, before)
        if removed:
            log.info("deleted %d recordings past the %d-day retention", removed,
                     self.settings.recording_retention_days)
        return removed

    async def _purge_loop(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("recording purge failed")
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)

    # ----------------------------------------------------------------- operator

    async def set_allowed(self, account_id: int, allowed: bool) -> None:
        """The operator allows or forbids recording for an account."""
        if not await self.repo.set_allowed(account_id, allowed):
            raise NotFound("no such account")


def _actor(owner_id: int | None) -> str:
    return "operator" if owner_id is None else f"account:{owner_id}"
