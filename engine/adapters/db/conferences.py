"""Conference repository: all SQL for conferences, their participants, their event log and the
account limits the conference rules need."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any

import asyncpg

from engine.domain.model import (
    Conference,
    ConferenceState,
    FailureReason,
    Origin,
    Participant,
    ParticipantState,
    Role,
)

CONFERENCE_COLUMNS = (
    "id", "owner_id", "subject", "mode", "node_id", "room", "conference_number", "chair_pin",
    "guest_pin", "guest_pin_required", "immediate", "starts_at", "duration_minutes", "ends_at",
    "timezone", "max_participants", "auto_invite", "auto_extend_minutes", "extend_cap_minutes",
    "extended_minutes", "reminder_minutes", "locked", "state", "started_at", "ended_at",
    "cancelled_at", "end_reason", "language", "notify_participants", "recording", "recording_error",
    "version", "series_id", "occurrence_at", "occurrence_changed", "wait_for_chair",
)
PARTICIPANT_COLUMNS = (
    "id", "conference_id", "number", "name", "email", "role", "origin", "state", "failure_reason",
    "hangup_cause", "call_id", "channel", "node_id", "muted", "talking", "attempts", "joined_at",
    "left_at", "connected_seconds",
)
_CONFERENCE_WRITABLE = frozenset(CONFERENCE_COLUMNS) - {"id", "owner_id", "version"} | {"warned_at"}
_PARTICIPANT_WRITABLE = frozenset(PARTICIPANT_COLUMNS) - {"id", "conference_id"}
_CONF_SELECT = ", ".join(CONFERENCE_COLUMNS)
_PART_SELECT = ", ".join(PARTICIPANT_COLUMNS)
LIVE_PARTICIPANT_STATES = ("calling", "ringing", "connected")


class OverLimit(Exception):  # noqa: N818 (a refusal, not a fault)
    """A write refused because a limit checked inside its transaction was reached."""

    def __init__(self, limit: str, allowed: int, current: int) -> None:
        super().__init__(f"{limit}: {current} of {allowed}")
        self.limit = limit
        self.allowed = allowed
        self.current = current


def _conference(row: asyncpg.Record) -> Conference:
    data = {k: row[k] for k in CONFERENCE_COLUMNS}
    data["state"] = ConferenceState(data["state"])
    return Conference(**data)


def participant_from_row(row: asyncpg.Record) -> Participant:
    data = {k: row[k] for k in PARTICIPANT_COLUMNS}
    data["role"] = Role(data["role"])
    data["origin"] = Origin(data["origin"])
    data["state"] = ParticipantState(data["state"])
    data["failure_reason"] = FailureReason(data["failure_reason"]) if data["failure_reason"] else None
    return Participant(**data)


def _sets(changes: dict[str, Any], allowed: frozenset[str], start: int) -> tuple[str, list[Any]]:
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not writable: {sorted(unknown)}")
    parts, values = [], []
    for offset, (key, value) in enumerate(changes.items()):
        parts.append(f"{key} = ${start + offset}")
        values.append(value.value if isinstance(value, Enum) else value)
    return ", ".join(parts), values


class ConferenceRepository:
    """SQL for the conference aggregate. Methods take/return domain objects; owner checks are
    done in SQL (``owner_id`` None = operator/system, no check)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ------------------------------------------------------------------ accounts (limits)

    async def account_limits(self, account_id: int) -> dict[str, Any] | None:
        """The account's phone, blocked flag and limits, or None when there is no such account."""
        row = await self.pool.fetchrow(
            "SELECT id, phone, blocked, max_participants, max_concurrent_conferences, "
            "max_dialouts_per_minute, max_concurrent_calls, language, recording_allowed FROM accounts WHERE id = $1",
            account_id)
        return dict(row) if row else None

    # ------------------------------------------------------------------ conferences

    async def insert_conference(self, fields: dict[str, Any],
                                participants: Iterable[dict[str, Any]] = ()) -> Conference:
        """Insert a conference and its planned participants in one transaction, atomically within
        the owner's limit of concurrent conferences: the owner's account row is locked, the
        conferences overlapping the new one's time are counted and the insert happens only below
        ``max_concurrent_conferences`` (else OverLimit). Raises asyncpg.UniqueViolationError when
        the conference number or room is taken."""
        columns = [k for k in fields if k in _CONFERENCE_WRITABLE or k == "owner_id"]
        placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
        async with self.pool.acquire() as conn, conn.transaction():
            await self._check_overlap(conn, fields["owner_id"], fields["starts_at"], fields["ends_at"], None)
            row = await conn.fetchrow(
                f"INSERT INTO conferences ({', '.join(columns)}) VALUES ({placeholders}) "
                f"RETURNING {_CONF_SELECT}", *[fields[c] for c in columns])
            conference = _conference(row)
            for plan in participants:
                conference.participants.append(
                    await self._insert_participant(conn, conference.id, **plan))
        return conference

    @staticmethod
    async def _check_overlap(conn: asyncpg.Connection, owner_id: int, starts_at: datetime, ends_at: datetime,
                             exclude_id: int | None) -> None:
        """Lock the owner's account row (until the transaction ends, so concurrent plans of one
        account take turns) and raise OverLimit when the conferences overlapping [starts_at,
        ends_at) already reach the account's max_concurrent_conferences."""
        limit = await conn.fetchval(
            "SELECT max_concurrent_conferences FROM accounts WHERE id = $1 FOR NO KEY UPDATE", owner_id)
        if limit is None:
            return  # no such account: the foreign key refuses the insert
        overlapping = await conn.fetchval(
            "SELECT count(*) FROM conferences WHERE owner_id = $1 AND state IN ('scheduled', 'running') "
            "AND starts_at < $3 AND ends_at > $2 AND id IS DISTINCT FROM $4",
            owner_id, starts_at, ends_at, exclude_id)
        if overlapping >= limit:
            raise OverLimit("max_concurrent_conferences", limit, overlapping)

    async def reschedule(self, conference_id: int, owner_id: int, starts_at: datetime,
                         ends_at: datetime, version: int | None = None) -> Conference | None:
        """Move a scheduled conference to [starts_at, ends_at), atomically within the owner's
        limit of concurrent conferences (OverLimit); None when it is not scheduled any more or,
        with ``version``, when its version is not that one any more (someone else changed it)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._check_overlap(conn, owner_id, starts_at, ends_at, conference_id)
            row = await conn.fetchrow(
                "UPDATE conferences SET starts_at = $2, ends_at = $3, updated_at = now() "
                "WHERE id = $1 AND state = 'scheduled' AND ($4::integer IS NULL OR version = $4) "
                f"RETURNING {_CONF_SELECT}",
                conference_id, starts_at, ends_at, version)
        return _conference(row) if row else None

    async def get(self, conference_id: int, owner_id: int | None = None,
                  with_participants: bool = True) -> Conference | None:
        """One conference (None if missing or not the owner's)."""
        row = await self.pool.fetchrow(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE id = $1 AND ($2::bigint IS NULL OR owner_id = $2)",
            conference_id, owner_id)
        if row is None:
            return None
        conference = _conference(row)
        if with_participants:
            conference.participants = await self.participants(conference.id)
        return conference

    async def get_by_room(self, room: str) -> Conference | None:
        """The conference whose ConfBridge room is ``room`` (participants not filled)."""
        row = await self.pool.fetchrow(f"SELECT {_CONF_SELECT} FROM conferences WHERE room = $1", room)
        return _conference(row) if row else None

    async def list(self, owner_id: int | None, states: Iterable[str] | None = None,
                   node_id: str | None = None) -> list[Conference]:
        """Conferences of the owner (all when None), newest start first, participants filled."""
        state_list = [str(s) for s in states] if states is not None else None
        rows = await self.pool.fetch(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE ($1::bigint IS NULL OR owner_id = $1) "
            "AND ($2::text[] IS NULL OR state = ANY($2)) AND ($3::text IS NULL OR node_id = $3) "
            "ORDER BY starts_at DESC, id DESC", owner_id, state_list, node_id)
        return await self._with_participants([_conference(r) for r in rows])

    async def history(self, owner_id: int | None, since: datetime, until: datetime) -> list[Conference]:
        """Finished (ended/cancelled/failed) conferences whose start is in [since, until)."""
        rows = await self.pool.fetch(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE ($1::bigint IS NULL OR owner_id = $1) "
            "AND state IN ('ended', 'cancelled', 'failed') AND starts_at >= $2 AND starts_at < $3 "
            "ORDER BY starts_at DESC, id DESC", owner_id, since, until)
        return await self._with_participants([_conference(r) for r in rows])

    async def _with_participants(self, conferences: list[Conference]) -> list[Conference]:
        if not conferences:
            return conferences
        rows = await self.pool.fetch(
            f"SELECT {_PART_SELECT} FROM participants WHERE conference_id = ANY($1) ORDER BY id",
            [c.id for c in conferences])
        by_id = {c.id: c for c in conferences}
        for row in rows:
            by_id[row["conference_id"]].participants.append(participant_from_row(row))
        return conferences

    async def update(self, conference_id: int, **changes: Any) -> Conference | None:
        """Write the given columns (updated_at follows) and return the conference."""
        sets, values = _sets(changes, _CONFERENCE_WRITABLE, 2)
        row = await self.pool.fetchrow(
            f"UPDATE conferences SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_CONF_SELECT}",
            conference_id, *values)
        return _conference(row) if row else None

    async def transition(self, conference_id: int, from_states: Iterable[str], to_state: str,
                         **changes: Any) -> Conference | None:
        """Compare-and-set the state: returns the updated conference, or None when it was not in
        one of ``from_states`` (so two engines never both start or end a conference)."""
        sets, values = _sets({"state": to_state, **changes}, _CONFERENCE_WRITABLE, 3)
        row = await self.pool.fetchrow(
            f"UPDATE conferences SET {sets}, updated_at = now() WHERE id = $1 AND state = ANY($2) "
            f"RETURNING {_CONF_SELECT}", conference_id, [str(s) for s in from_states], *values)
        return _conference(row) if row else None

    async def transition_if_over(self, conference_id: int, to_state: str, **changes: Any) -> Conference | None:
        """Move a scheduled conference whose planned end has already passed to ``to_state``."""
        sets, values = _sets({"state": to_state, **changes}, _CONFERENCE_WRITABLE, 2)
        row = await self.pool.fetchrow(
            f"UPDATE conferences SET {sets}, updated_at = now() WHERE id = $1 AND state = 'scheduled' "
            f"AND ends_at <= clock_timestamp() RETURNING {_CONF_SELECT}", conference_id, *values)
        return _conference(row) if row else None

    async def extend(self, conference_id: int, seconds: float, minutes: int,
                     count_against_cap: bool) -> Conference | None:
        """Move a running conference's end by ``seconds`` and add ``minutes`` to its extension;
        with ``count_against_cap`` only if the cap still allows. None when not applied."""
        row = await self.pool.fetchrow(
            "UPDATE conferences SET ends_at = ends_at + make_interval(secs => $2), "
            "extended_minutes = extended_minutes + $3, warned_at = NULL, updated_at = now() "
            "WHERE id = $1 AND state = 'running' "
            "AND (NOT $4 OR extended_minutes + $3 <= extend_cap_minutes) "
            f"RETURNING {_CONF_SELECT}", conference_id, float(seconds), minutes, count_against_cap)
        return _conference(row) if row else None

    # ------------------------------------------------------------------ scheduling queries

    async def next_due(self, node_id: str, warning_seconds: float) -> datetime | None:
        """The earliest moment something is due on the node: a start, a warning or an end."""
        return await self.pool.fetchval(
            "SELECT min(t) FROM ("
            " SELECT min(starts_at) AS t FROM conferences WHERE state = 'scheduled' AND node_id = $1"
            " UNION ALL SELECT min(ends_at - make_interval(secs => $2)) FROM conferences"
            "  WHERE state = 'running' AND node_id = $1 AND warned_at IS NULL"
            " UNION ALL SELECT min(ends_at) FROM conferences WHERE state = 'running' AND node_id = $1"
            ") AS due", node_id, float(warning_seconds))

    async def due_starts(self, node_id: str, now: datetime) -> list[Conference]:
        """Scheduled conferences on the node whose start has come."""
        rows = await self.pool.fetch(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE state = 'scheduled' AND node_id = $1 "
            "AND starts_at <= $2 ORDER BY starts_at", node_id, now)
        return [_conference(r) for r in rows]

    async def start_due(self, node_id: str, now: datetime) -> list[Conference]:
        """Compare-and-set to running, in one statement, every scheduled conference of the node
        whose start has come (``started_at`` = ``now``), unless its end has passed or its owner is
        blocked: those stay scheduled for the one-by-one start that fails them."""
        rows = await self.pool.fetch(
            "UPDATE conferences SET state = 'running', started_at = $2, updated_at = now() "
            "WHERE state = 'scheduled' AND node_id = $1 AND starts_at <= $2 AND ends_at > clock_timestamp() "
            "AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = conferences.owner_id AND a.blocked) "
            f"RETURNING {_CONF_SELECT}", node_id, now)
        return [_conference(r) for r in rows]

    async def due_warnings(self, node_id: str, now: datetime, warning_seconds: float) -> list[Conference]:
        """Running conferences on the node that should hear the deadline warning now."""
        rows = await self.pool.fetch(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE state = 'running' AND node_id = $1 "
            "AND warned_at IS NULL AND ends_at - make_interval(secs => $3) <= $2 AND ends_at > $2",
            node_id, now, float(warning_seconds))
        return [_conference(r) for r in rows]

    async def due_ends(self, node_id: str, now: datetime) -> list[Conference]:
        """Running conferences on the node whose deadline has come."""
        rows = await self.pool.fetch(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE state = 'running' AND node_id = $1 "
            "AND ends_at <= $2 ORDER BY ends_at", node_id, now)
        return [_conference(r) for r in rows]

    async def mark_warned(self, conference_id: int) -> bool:
        """Record that the warning was played (True only for the first caller)."""
        result = await self.pool.execute(
            "UPDATE conferences SET warned_at = now() WHERE id = $1 AND warned_at IS NULL", conference_id)
        return result.endswith(" 1")

    # ------------------------------------------------------------------ participants

    @staticmethod
    async def _insert_participant(conn: asyncpg.Connection, conference_id: int, *, number: str,
                                  name: str = "", email: str | None = None, role: str = "guest",
                                  origin: str = "dialout", state: str = "planned",
                                  call_id: str | None = None, node_id: str | None = None,
                                  channel: str | None = None) -> Participant:
        row = await conn.fetchrow(
            "INSERT INTO participants (conference_id, number, name, email, role, origin, state, call_id, "
            f"node_id, channel) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_PART_SELECT}",
            conference_id, number, name or "", email, str(role), str(origin), str(state), call_id,
            node_id, channel)
        return participant_from_row(row)

    async def add_participant(self, conference_id: int, *, number: str, name: str = "",
                              email: str | None = None, role: str = "guest", origin: str = "dialout",
                              state: str = "planned", call_id: str | None = None,
                              node_id: str | None = None, channel: str | None = None,
                              max_active: int | None = None) -> Participant:
        """Insert one participant (dial-in inserts itself with origin 'dialin', state 'calling'
        and call_id = the caller channel's uniqueid before entering ConfBridge). With
        ``max_active`` the conference row is locked and the insert happens only while fewer
        than that many of its participants are not failed (else OverLimit)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if max_active is not None:
                await conn.execute("SELECT 1 FROM conferences WHERE id = $1 FOR NO KEY UPDATE", conference_id)
                active = await conn.fetchval(
                    "SELECT count(*) FROM participants WHERE conference_id = $1 AND state <> 'failed'",
                    conference_id)
                if active >= max_active:
                    raise OverLimit("max_participants", max_active, active)
            return await self._insert_participant(
                conn, conference_id, number=number, name=name, email=email, role=role, origin=origin,
                state=state, call_id=call_id, node_id=node_id, channel=channel)

    async def participants(self, conference_id: int) -> list[Participant]:
        """All participants of a conference, in planning order."""
        rows = await self.pool.fetch(
            f"SELECT {_PART_SELECT} FROM participants WHERE conference_id = $1 ORDER BY id", conference_id)
        return [participant_from_row(r) for r in rows]

    async def get_participant(self, participant_id: int, conference_id: int | None = None) -> Participant | None:
        """One participant (optionally only if it belongs to ``conference_id``)."""
        row = await self.pool.fetchrow(
            f"SELECT {_PART_SELECT} FROM participants WHERE id = $1 "
            "AND ($2::bigint IS NULL OR conference_id = $2)", participant_id, conference_id)
        return participant_from_row(row) if row else None

    async def participant_by_call_id(self, call_id: str) -> Participant | None:
        """The participant whose current call (Asterisk Uniqueid) is ``call_id``."""
        row = await self.pool.fetchrow(f"SELECT {_PART_SELECT} FROM participants WHERE call_id = $1", call_id)
        return participant_from_row(row) if row else None

    async def update_participant(self, participant_id: int, *, only_states: Iterable[str] | None = None,
                                 **changes: Any) -> Participant | None:
        """Write the given columns; with ``only_states`` only when the participant is in one of
        them (None when not applied)."""
        sets, values = _sets(changes, _PARTICIPANT_WRITABLE, 3)
        states = [str(s) for s in only_states] if only_states is not None else None
        row = await self.pool.fetchrow(
            f"UPDATE participants SET {sets}, updated_at = now() WHERE id = $1 "
            f"AND ($2::text[] IS NULL OR state = ANY($2)) RETURNING {_PART_SELECT}",
            participant_id, states, *values)
        return participant_from_row(row) if row else None

    async def mark_left(self, participant_id: int, at: datetime) -> Participant | None:
        """A connected participant left: state left, left_at, connected time added."""
        row = await self.pool.fetchrow(
            "UPDATE participants SET state = 'left', left_at = $2, talking = false, "
            "connected_seconds = connected_seconds + GREATEST(0, floor(extract(epoch FROM "
            "($2 - COALESCE(joined_at, $2)))))::int, updated_at = now() "
            f"WHERE id = $1 AND state = 'connected' RETURNING {_PART_SELECT}", participant_id, at)
        return participant_from_row(row) if row else None

    async def count_participants(self, conference_id: int, states: Iterable[str] | None = None) -> int:
        """How many participants the conference has (optionally only in the given states)."""
        state_list = [str(s) for s in states] if states is not None else None
        return await self.pool.fetchval(
            "SELECT count(*) FROM participants WHERE conference_id = $1 "
            "AND ($2::text[] IS NULL OR state = ANY($2))", conference_id, state_list)

    async def delete_planned_participants(self, conference_id: int) -> None:
        """Remove the planned (never dialled) participants, to replace the list of a scheduled conference."""
        await self.pool.execute(
            "DELETE FROM participants WHERE conference_id = $1 AND state = 'planned'", conference_id)

    # ------------------------------------------------------------------ event log

    async def log_event(self, conference_id: int, kind: str, *, actor: str = "engine",
                        participant_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
        """Append one entry to the conference's event log."""
        await self.pool.execute(
            "INSERT INTO conference_events (conference_id, kind, actor, participant_id, detail) "
            "VALUES ($1, $2, $3, $4, $5::jsonb)", conference_id, kind, actor, participant_id,
            json.dumps(detail or {}, default=str))

    async def events(self, conference_id: int) -> list[dict[str, Any]]:
        """The event log, oldest first: at, kind, actor, participant_id, detail."""
        rows = await self.pool.fetch(
            "SELECT at, kind, actor, participant_id, detail FROM conference_events "
            "WHERE conference_id = $1 ORDER BY at, id", conference_id)
        return [{"at": r["at"], "kind": r["kind"], "actor": r["actor"],
                 "participant_id": r["participant_id"], "detail": json.loads(r["detail"])} for r in rows]
