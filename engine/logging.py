"""Log set-up of the engine: plain text for people, or one JSON object per line for log shippers
(VECHE_LOG_JSON=1), carrying the conference, participant and channel ids of whatever was being
handled when the line was written."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# Ids of what the current task is handling: set around an AMI event, a domain event or a FastAGI
# session, and copied into tasks spawned from there (asyncio copies the context).
_context: ContextVar[_Frame | None] = ContextVar("veche_log_context", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _clean(ids: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ids.items() if v not in (None, "")}


class _Frame:
    """The ids of one ``log_context`` block over those of the blocks around it, made into one
    dict on the first line written within it: a node's AMI events pass by the tens of thousands
    a second, each in a block of its own, and almost none of them writes a line."""

    __slots__ = ("_outer", "_source", "_read", "_ids")

    def __init__(self, outer: _Frame | None, source: Any, read: Callable[[Any], dict[str, Any]] | None) -> None:
        self._outer, self._source, self._read = outer, source, read
        self._ids: dict[str, Any] | None = None

    def ids(self) -> dict[str, Any]:
        ids = self._ids
        if ids is None:
            own = _clean(self._read(self._source) if self._read is not None else self._source)
            ids = self._ids = {**self._outer.ids(), **own} if self._outer is not None else own
        return ids


class log_context:  # noqa: N801 - used like the function it stands for: ``with log_context(...)``
    """Within the block, log lines carry ``ids`` (conference_id=..., channel=...; empty values skipped).
    A class rather than a generator: it wraps every AMI event, and this is the cheap form."""

    __slots__ = ("_source", "_read", "_token")

    def __init__(self, **ids: Any) -> None:
        self._source: Any = ids
        self._read: Callable[[Any], dict[str, Any]] | None = None

    @classmethod
    def of(cls, source: Any, read: Callable[[Any], dict[str, Any]]) -> log_context:
        """Within the block, log lines carry ``read(source)``, called on the first line written."""
        context = cls()
        context._source, context._read = source, read
        return context

    def __enter__(self) -> None:
        self._token = _context.set(_Frame(_context.get(), self._source, self._read))

    def __exit__(self, *exc: object) -> None:
        _context.reset(self._token)


def current_context() -> dict[str, Any]:
    frame = _context.get()
    return dict(frame.ids()) if frame is not None else {}


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record (unless the call passed the same ``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_context().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the context ids, any ``extra``
    fields, and the traceback as text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(*, json_output: bool = False, verbose: bool = False, stream: Any = None) -> None:
    """Route every logger to ``stream`` (stderr) as text or JSON lines; quiet panoramisk's chatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_output else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("engine.ami.panoramisk").setLevel(logging.WARNING)
    logging.getLogger("panoramisk").setLevel(logging.WARNING)
