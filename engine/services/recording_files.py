"""A recording's files: the raw file converted to Ogg/Opus (ffmpeg) and measured (ffprobe), and
a recording removed with its file (by its owner, or past the retention period)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from engine.adapters.db.conferences import ConferenceRepository
from engine.adapters.db.recordings import RecordingRepository
from engine.adapters.tools import run_tool

CONVERT_TIMEOUT_SECONDS = 600.0


async def to_ogg(raw: Path, target: Path) -> float:
    """Convert ``raw`` to Ogg/Opus at ``target``; its duration in seconds. OSError, ValueError,
    RuntimeError or TimeoutError when a converter fails."""
    await _run("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(raw), "-c:a", "libopus",
               "-b:a", "24k", "-f", "ogg", str(target))
    return float(await _run("ffprobe", "-v", "error", "-show_entries", "format=duration",
                            "-of", "default=noprint_wrappers=1:nokey=1", str(target)))


async def settled_raw_file(repo: RecordingRepository, recording_id: int, host_path: Callable[[str], Path],
                           settle_seconds: float) -> Path:
    """The raw file on the host, once MixMonitor has closed it (its size settles)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_seconds
    last = -1
    while True:
        row = await repo.get(recording_id, None)
        raw = host_path(row["raw_path"]) if row and row["raw_path"] else None
        size = raw.stat().st_size if raw is not None and raw.exists() else -1
        if raw is not None and size > 44 and size == last:
            return raw
        if loop.time() > deadline:
            raise RuntimeError("the node wrote no recording file")
        last = size
        await asyncio.sleep(0.5)


async def remove(repo: RecordingRepository, directory: Path, row: dict, owner_id: int | None) -> None:
    """Delete a recording's row (the owner's, or any with ``owner_id`` None) and its file."""
    if await repo.delete(row["id"], owner_id) is not None and row["file_name"]:
        (directory / row["file_name"]).unlink(missing_ok=True)


async def purge_expired(repo: RecordingRepository, conferences: ConferenceRepository, directory: Path,
                        before: datetime) -> int:
    """Delete the recordings that ended before ``before``; how many were deleted."""
    removed = 0
    for row in await repo.expired(before):
        await remove(repo, directory, row, None)
        await conferences.log_event(row["conference_id"], "recording.deleted", actor="engine",
                                    detail={"recording_id": row["id"], "why": "retention"})
        removed += 1
    return removed


async def _run(*argv: str) -> str:
    return await run_tool(*argv, timeout=CONVERT_TIMEOUT_SECONDS)
