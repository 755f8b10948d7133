"""Rules of conference recordings: the names the engine gives recorder channels and files, which
file a node may report as a recording, and when a recording's retention ends. No I/O."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from pathlib import PurePosixPath

RECORDER_PREFIX = "rc-"  # call id of the recorder channel a room's recording runs on
CONVERTED_SUFFIX = ".ogg"  # Ogg/Opus
_CALL_ID = re.compile(r"rc-[0-9a-f]{16}")
# What a node may report (MixMonitor's MIXMONITOR_FILENAME): the monitor spool of an instance
# directory of the root file system, and the file named after the recorder's call id.
_RAW_PATH = re.compile(r"/var/lib/veche/[A-Za-z0-9_][A-Za-z0-9_.\-]{0,79}/spool/monitor/(rc-[0-9a-f]{16})\.wav")


def new_call_id() -> str:
    """A fresh recorder call id (also the raw file's name)."""
    return f"{RECORDER_PREFIX}{secrets.token_hex(8)}"


def is_recorder(call_id: str) -> bool:
    """True for a recorder channel's Uniqueid (either half of its Local channel)."""
    return bool(_CALL_ID.fullmatch(call_id.removesuffix("-2")))


def raw_path_in_root(reported: str, call_id: str) -> PurePosixPath | None:
    """The raw file a node reported for the recorder ``call_id``, or None when the report names
    anything else (another directory, another file, a relative path or ``..``)."""
    match = _RAW_PATH.fullmatch(reported or "")
    if match is None or match.group(1) != call_id:
        return None
    return PurePosixPath(reported)


def converted_name(recording_id: int, call_id: str) -> str:
    """The converted file's name in the recording directory."""
    return f"{recording_id}-{call_id}{CONVERTED_SUFFIX}"


def expired_before(now: datetime, retention_days: int) -> datetime:
    """Recordings created before this moment are past the retention period."""
    return now - timedelta(days=retention_days)
