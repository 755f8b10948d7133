"""Who was connected and who talked when: spans per participant built from a conference's
event log and stored talking spans, clipped to the conference; no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

Span = tuple[datetime, datetime]


def connected_spans(events: Iterable[Mapping[str, Any]], participants: Iterable[Any],
                    end: datetime) -> dict[int, list[Span]]:
    """Per participant id, the spans from each ``participant.joined`` to the next
    ``participant.left`` (or ``end`` while still connected). A participant with no such events
    falls back to its joined_at/left_at."""
    spans: dict[int, list[Span]] = {}
    open_since: dict[int, datetime] = {}
    for event in sorted(events, key=lambda e: e["at"]):
        pid = event.get("participant_id")
        if pid is None:
            continue
        if event["kind"] == "participant.joined":
            open_since.setdefault(pid, event["at"])
        elif event["kind"] in ("participant.left", "participant.failed") and pid in open_since:
            spans.setdefault(pid, []).append((open_since.pop(pid), event["at"]))
    for pid, since in open_since.items():
        spans.setdefault(pid, []).append((since, max(since, end)))
    for participant in participants:
        if participant.id not in spans and participant.joined_at is not None:
            left = participant.left_at or end
            spans[participant.id] = [(participant.joined_at, max(participant.joined_at, left))]
    return spans


def talk_spans(rows: Iterable[Mapping[str, Any]], end: datetime) -> dict[int, list[Span]]:
    """Stored talking spans by participant id; a span still open ends at ``end``."""
    spans: dict[int, list[Span]] = {}
    for row in rows:
        started = row["started_at"]
        ended = row["ended_at"] or max(started, end)
        spans.setdefault(row["participant_id"], []).append((started, ended))
    return spans


def series_by_participant(samples: Iterable[Mapping[str, Any]], field: str) -> dict[int, list[tuple[datetime, float]]]:
    """``field`` of each sample as (at, value) points per participant id, in time order."""
    series: dict[int, list[tuple[datetime, float]]] = {}
    for sample in sorted(samples, key=lambda s: s["at"]):
        value = sample.get(field)
        if value is not None:
            series.setdefault(sample["participant_id"], []).append((sample["at"], float(value)))
    return series
