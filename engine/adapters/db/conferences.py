"""The conference aggregate's SQL: a conference row, its participants (planned, dialled out, dialled
in) and its event log, with the one row mapper of each and the account limits its transactions
check. A conference and its participants change together, so every change that touches both (a
plan, a new plan of a scheduled conference, a dial-in caller, a claim of dial-out slots) is one
transaction here. A series (``conference_series``) is an aggregate of its own with its own
module; the conferences it materialises are rows of this one and are queried here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from engine.adapters.db import assignments
from engine.adapters.db.accounts import AccountRepository
from engine.adapters.db.lease import Fence
from engine.adapters.db.nodes import NODE_COLUMNS, NODE_LOAD, node_from_row
from engine.domain.model import (
    Conference,
    ConferenceState,
    FailureReason,
    Origin,
    Participant,
    ParticipantState,
    Role,
)
from engine.domain.nodes import Node

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
# The same states as the statements write them, as the partial index participants_live_dialout
# (sql/011_call_limits.sql) names them: with the list as a parameter,
# PostgreSQL cannot use that index in a prepared statement's generic plan, so it plans the
# statement anew on every execution.
_LIVE_STATES_SQL = "(" + ", ".join(f"'{state}'" for state in LIVE_PARTICIPANT_STATES) + ")"
# A dial-in caller who got a room but whose ConfbridgeJoin has not arrived yet still takes a seat.
PENDING_SEAT_SECONDS = 30
_PART_RETURNING = ", ".join(f"p.{column}" for column in PARTICIPANT_COLUMNS)
_PART_PREFIXED = ", ".join(f"p.{column} AS p_{column}" for column in PARTICIPANT_COLUMNS)
# pg_advisory_xact_lock key of the system-wide count of outbound calls ('veche' 11).
SYSTEM_CALLS_LOCK = 0x76656368_0011
# The span in which an account's dial-outs count against its max_dialouts_per_minute.
DIALOUTS_WINDOW_SECONDS = 60.0
# The dial-outs a statement dialled (``{rows}``: the dialled rows, after FROM; ``{owner}``: their account)
# added to the account's bucket of this second, which dialout_grant sums for its per-minute limit
# (sql/029_dialout_counts.sql); no row when it dialled none.
_COUNT_DIALOUTS = (
    "INSERT INTO dialout_counts (owner_id, second, calls) "
    "SELECT {owner}, date_trunc('second', clock_timestamp()), count(*) FROM {rows} HAVING count(*) > 0 "
    "ON CONFLICT (owner_id, second) DO UPDATE SET calls = dialout_counts.calls + excluded.calls")
# dialout_grant's columns (sql/028_dialout_grant.sql), and its call in a claim's transaction
_GRANT_COLUMNS = ("leased", "rules_current", "room", "bound_by", "max_concurrent_conferences", "max_concurrent_calls",
                  "max_dialouts_per_minute", "overlapping")
_GRANT_CALL = f"SELECT {', '.join(_GRANT_COLUMNS)} FROM dialout_grant($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"


@dataclass(frozen=True)
class LogEntry:
    """One conference event-log entry written together with the change it records."""

    kind: str
    actor: str = "engine"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Joined:
    """A call that reached its room, as ``mark_joined`` stores it."""

    at: datetime
    channel: str | None  # None: the stored channel stays
    muted: bool


@dataclass(frozen=True)
class Left:
    """A connected participant's leaving, as ``mark_left`` stores it with its log entry."""

    at: datetime
    call_id: str | None  # the call that left: a participant on another call since (moved, dialled again) stays
    cause: int | None = None  # the hangup cause when known (a stored one stays otherwise)
    detail: dict[str, Any] = field(default_factory=dict)  # the log entry's, beside connected_seconds
    actor: str = "engine"


class StaleRules(Exception):  # noqa: N818 (a refusal, not a fault)
    """A write refused because the account rules it was checked against changed since they were
    read (AccountRules.stamp): read them again and check anew."""

    def __init__(self, account_id: int) -> None:
        super().__init__(f"the rules of account {account_id} changed")
        self.account_id = account_id


class OverLimit(Exception):  # noqa: N818 (a refusal, not a fault)
    """A write refused because a limit checked inside its transaction was reached."""

    def __init__(self, limit: str, allowed: int, current: int) -> None:
        super().__init__(f"{limit}: {current} of {allowed}")
        self.limit = limit
        self.allowed = allowed
        self.current = current


def conference_from_row(row: asyncpg.Record) -> Conference:
    data = {k: row[k] for k in CONFERENCE_COLUMNS}
    data["state"] = ConferenceState(data["state"])
    return Conference(**data)


def participant_from_row(row: asyncpg.Record, prefix: str = "") -> Participant:
    data = {k: row[prefix + k] for k in PARTICIPANT_COLUMNS}
    data["role"] = Role(data["role"])
    data["origin"] = Origin(data["origin"])
    data["state"] = ParticipantState(data["state"])
    data["failure_reason"] = FailureReason(data["failure_reason"]) if data["failure_reason"] else None
    return Participant(**data)


def _inserted(rows: Sequence[asyncpg.Record]) -> Conference:
    """The conference and its participants as ``_insert_statement`` returns them."""
    conference = conference_from_row(rows[0])
    conference.participants = [participant_from_row(r, "p_") for r in rows if r["p_id"] is not None]
    return conference


def _insert_statement(fields: dict[str, Any], participants: Sequence[dict[str, Any]], events: Sequence[LogEntry],
                      call_ids: Sequence[str], actor: str,
                      grant_args: Sequence[Any] | None = None) -> tuple[str, list[Any]]:
    """The statement of ``insert_with_participants`` and its arguments; the participant columns
    come back prefixed ``p_``, beside the conference's. With ``grant_args`` (dialout_grant's
    arguments but the first, sql/028_dialout_grant.sql) it asks dialout_grant first, stores the
    conference only when the lease is held, the account rules are current and the account is
    below its concurrent conferences, dials only the first ``room`` of ``call_ids``, and returns
    the grant's columns prefixed ``g_`` (a row without the conference when it stored nothing).
    The participants it dials are added to the account's dial-outs of this second."""
    columns = [k for k in fields if k in _CONFERENCE_WRITABLE or k == "owner_id"]
    values = ", ".join(f"${i + 1}" for i in range(len(columns)))
    n = len(columns)
    dialled = [*call_ids, *[None] * (len(participants) - len(call_ids))]
    args: list[Any] = [
        *[fields[c] for c in columns],
        [p["number"] for p in participants], [p.get("name") or "" for p in participants],
        [p.get("email") for p in participants], [str(p.get("role", "guest")) for p in participants],
        [p.get("node_id") for p in participants], dialled,
        [e.kind for e in events], [e.actor for e in events],
        [json.dumps(e.detail, default=str) for e in events], actor]
    if grant_args is None:
        grant, source, call_id = "", f"VALUES ({values})", "u.call_id"
        result = f"c.*, {_PART_PREFIXED} FROM c LEFT JOIN p ON true"
    else:
        params = ", ".join(f"${len(args) + i + 1}" for i in range(len(grant_args) + 1))
        grant = f"g AS MATERIALIZED (SELECT * FROM dialout_grant({params})), "
        source = (f"SELECT {values} FROM g WHERE g.leased AND g.rules_current "
                  "AND (g.max_concurrent_conferences IS NULL OR g.overlapping < g.max_concurrent_conferences)")
        call_id = "CASE WHEN u.position <= (SELECT g.room FROM g) THEN u.call_id END"
        result = (f"{', '.join(f'g.{c} AS g_{c}' for c in _GRANT_COLUMNS)}, c.*, {_PART_PREFIXED} "
                  "FROM g LEFT JOIN c ON true LEFT JOIN p ON true")
        args += [fields["owner_id"], *grant_args]
    counted = ""
    if call_ids:  # planned participants alone dial nobody
        rows = "p WHERE p.call_id IS NOT NULL"
        counted = f", counted AS ({_COUNT_DIALOUTS.format(owner='(SELECT c.owner_id FROM c)', rows=rows)})"
    query = (
        f"WITH {grant}c AS (INSERT INTO conferences ({', '.join(columns)}) {source} RETURNING {_CONF_SELECT}), "
        "p AS (INSERT INTO participants (conference_id, number, name, email, role, origin, state, "
        "           node_id, attempts, call_id) "
        "           SELECT c.id, p.number, p.name, p.email, p.role, 'dialout', "
        "                  CASE WHEN p.call_id IS NULL THEN 'planned' ELSE 'calling' END, p.node_id, "
        "                  CASE WHEN p.call_id IS NULL THEN 0 ELSE 1 END, p.call_id "
        f"           FROM c, (SELECT u.number, u.name, u.email, u.role, u.node_id, {call_id} AS call_id, u.position "
        f"                    FROM unnest(${n + 1}::text[], ${n + 2}::text[], ${n + 3}::text[], ${n + 4}::text[], "
        f"                                ${n + 5}::text[], ${n + 6}::text[]) "
        "                    WITH ORDINALITY AS u(number, name, email, role, node_id, call_id, position)) p "
        f"           ORDER BY p.position RETURNING {_PART_SELECT}), "
        "logged AS (INSERT INTO conference_events (conference_id, kind, actor, participant_id, detail) "
        "           SELECT c.id, l.kind, l.actor, l.participant_id, l.detail FROM c, ("
        "               SELECT 0 AS part, e.n, e.kind, e.actor, NULL::bigint AS participant_id, "
        "                      e.detail::jsonb AS detail "
        f"               FROM unnest(${n + 7}::text[], ${n + 8}::text[], ${n + 9}::text[]) "
        "               WITH ORDINALITY AS e(kind, actor, detail, n) "
        "               UNION ALL "
        f"               SELECT 1, p.id, 'participant.dialing', ${n + 10}, p.id, "
        "                      jsonb_build_object('number', p.number, 'attempt', p.attempts) "
        "               FROM p WHERE p.call_id IS NOT NULL) l "
        f"           ORDER BY l.part, l.n){counted} "
        f"SELECT {result} ORDER BY p.id"
    )
    return query, args


class ConferenceRepository:
    """SQL for the conference aggregate. Methods take/return domain objects; owner checks are
    done in SQL (``owner_id`` None = operator/system, no check)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.accounts = AccountRepository(pool)

    async def account_limits(self, account_id: int) -> dict[str, Any] | None:
        """The owner's phone, blocked flag and limits, or None when there is no such account."""
        return await self.accounts.limits(account_id)

    # ------------------------------------------------------------------ conferences

    async def insert_conference(self, fields: dict[str, Any], participants: Sequence[dict[str, Any]] = (),
                                events: Sequence[LogEntry] = ()) -> Conference:
        """Insert a conference, its planned participants and its first event-log ``events`` in one
        transaction, atomically within the owner's limit of concurrent conferences: the owner's
        account row is locked, the conferences overlapping the new one's time are counted and the
        insert happens only below ``max_concurrent_conferences`` (else OverLimit). Raises
        asyncpg.UniqueViolationError when the conference number or room is taken."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await self.insert_rows(conn, fields, participants, events)

    @classmethod
    async def insert_rows(cls, conn: asyncpg.Connection, fields: dict[str, Any],
                          participants: Sequence[dict[str, Any]] = (), events: Sequence[LogEntry] = ()) -> Conference:
        """``insert_conference`` inside the caller's transaction."""
        await cls._check_overlap(conn, fields["owner_id"], fields["starts_at"], fields["ends_at"], None)
        return await cls.insert_with_participants(conn, fields, participants, events)

    @staticmethod
    async def insert_with_participants(conn: asyncpg.Connection, fields: dict[str, Any],
                                       participants: Sequence[dict[str, Any]], events: Sequence[LogEntry] = (), *,
                                       call_ids: Sequence[str] = (), actor: str = "engine") -> Conference:
        """The conference row, its participants (number, name, email, role, node_id) and its log
        ``events``, in order, in one statement (the number's trigger checks the number is free).
        The first ``len(call_ids)`` participants are stored already dialled (``calling`` under
        those call ids, attempt 1, each with its 'participant.dialing' entry by ``actor``); the
        rest are planned."""
        query, args = _insert_statement(fields, participants, events, call_ids, actor)
        return _inserted(await conn.fetch(query, *args))

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
        overlapping = await conn.fetchval(  # sql/028_dialout_grant.sql
            "SELECT conferences_overlapping($1, $2, $3, $4)", owner_id, starts_at, ends_at, exclude_id)
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
        return conference_from_row(row) if row else None

    async def replan(self, conference_id: int, owner_id: int, fields: dict[str, Any], *,
                     participants: Iterable[dict[str, Any]] | None = None, version: int | None = None,
                     event: str | None = None, actor: str = "engine",
                     detail: dict[str, Any] | None = None) -> Conference | None:
        """Give a scheduled conference a new plan in one transaction: ``fields`` (which carry
        ``starts_at`` and ``ends_at``) are written within the owner's limit of concurrent
        conferences (OverLimit), the planned participants are replaced by ``participants`` when
        given, and ``event`` is logged. None when it is not scheduled any more or, with
        ``version``, when its version is not that one any more. When any statement fails (an
        invalid participant, a limit) nothing of the conference has changed."""
        sets, values = assignments(fields, _CONFERENCE_WRITABLE, 3)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._check_overlap(conn, owner_id, fields["starts_at"], fields["ends_at"], conference_id)
            row = await conn.fetchrow(
                f"UPDATE conferences SET {sets}, updated_at = now() WHERE id = $1 AND state = 'scheduled' "
                f"AND ($2::integer IS NULL OR version = $2) RETURNING {_CONF_SELECT}",
                conference_id, version, *values)
            if row is None:
                return None
            conference = conference_from_row(row)
            if participants is not None:
                await conn.execute(
                    "DELETE FROM participants WHERE conference_id = $1 AND state = 'planned'", conference_id)
                for plan in participants:
                    await self._insert_participant(conn, conference_id, **plan)
            if event is not None:
                await self._log(conn, conference_id, event, actor=actor, detail=detail)
        return conference

    async def get(self, conference_id: int, owner_id: int | None = None,
                  with_participants: bool = True) -> Conference | None:
        """One conference (None if missing or not the owner's)."""
        row = await self.pool.fetchrow(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE id = $1 AND ($2::bigint IS NULL OR owner_id = $2)",
            conference_id, owner_id)
        if row is None:
            return None
        conference = conference_from_row(row)
        if with_participants:
            conference.participants = await self.participants(conference.id)
        return conference

    async def get_by_room(self, room: str) -> Conference | None:
        """The conference whose ConfBridge room is ``room`` (participants not filled)."""
        row = await self.pool.fetchrow(f"SELECT {_CONF_SELECT} FROM conferences WHERE room = $1", room)
        return conference_from_row(row) if row else None

    async def list(self, owner_id: int | None, states: Iterable[str] | None = None,
                   node_id: str | None = None) -> list[Conference]:
        """Conferences of the owner (all when None), newest start first, participants filled."""
        state_list = [str(s) for s in states] if states is not None else None
        rows = await self.pool.fetch(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE ($1::bigint IS NULL OR owner_id = $1) "
            "AND ($2::text[] IS NULL OR state = ANY($2)) AND ($3::text IS NULL OR node_id = $3) "
            "ORDER BY starts_at DESC, id DESC", owner_id, state_list, node_id)
        return await self._with_participants([conference_from_row(r) for r in rows])

    async def history(self, owner_id: int | None, since: datetime, until: datetime) -> list[Conference]:
        """Finished (ended/cancelled/failed) conferences whose start is in [since, until)."""
        rows = await self.pool.fetch(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE ($1::bigint IS NULL OR owner_id = $1) "
            "AND state IN ('ended', 'cancelled', 'failed') AND starts_at >= $2 AND starts_at < $3 "
            "ORDER BY starts_at DESC, id DESC", owner_id, since, until)
        return await self._with_participants([conference_from_row(r) for r in rows])

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
        sets, values = assignments(changes, _CONFERENCE_WRITABLE, 2)
        row = await self.pool.fetchrow(
            f"UPDATE conferences SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_CONF_SELECT}",
            conference_id, *values)
        return conference_from_row(row) if row else None

    async def transition(self, conference_id: int, from_states: Iterable[str], to_state: str,
                         **changes: Any) -> Conference | None:
        """Compare-and-set the state: returns the updated conference, or None when it was not in
        one of ``from_states`` (so two engines never both start or end a conference)."""
        sets, values = assignments({"state": to_state, **changes}, _CONFERENCE_WRITABLE, 3)
        row = await self.pool.fetchrow(
            f"UPDATE conferences SET {sets}, updated_at = now() WHERE id = $1 AND state = ANY($2) "
            f"RETURNING {_CONF_SELECT}", conference_id, [str(s) for s in from_states], *values)
        return conference_from_row(row) if row else None

    async def transition_if_over(self, conference_id: int, to_state: str, **changes: Any) -> Conference | None:
        """Move a scheduled conference whose planned end has already passed to ``to_state``."""
        sets, values = assignments({"state": to_state, **changes}, _CONFERENCE_WRITABLE, 2)
        row = await self.pool.fetchrow(
            f"UPDATE conferences SET {sets}, updated_at = now() WHERE id = $1 AND state = 'scheduled' "
            f"AND ends_at <= clock_timestamp() RETURNING {_CONF_SELECT}", conference_id, *values)
        return conference_from_row(row) if row else None

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
        return conference_from_row(row) if row else None

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
        return [conference_from_row(r) for r in rows]

    async def start_due(self, node_id: str, now: datetime) -> list[Conference]:
        """Compare-and-set to running, in one statement, every scheduled conference of the node
        whose start has come (``started_at`` = ``now``), unless its end has passed or its owner is
        blocked: those stay scheduled for the one-by-one start that fails them."""
        rows = await self.pool.fetch(
            "UPDATE conferences SET state = 'running', started_at = $2, updated_at = now() "
            "WHERE state = 'scheduled' AND node_id = $1 AND starts_at <= $2 AND ends_at > clock_timestamp() "
            "AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = conferences.owner_id AND a.blocked) "
            f"RETURNING {_CONF_SELECT}", node_id, now)
        return [conference_from_row(r) for r in rows]

    async def due_warnings(self, node_id: str, now: datetime, warning_seconds: float) -> list[Conference]:
        """Running conferences on the node that should hear the deadline warning now."""
        rows = await self.pool.fetch(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE state = 'running' AND node_id = $1 "
            "AND warned_at IS NULL AND ends_at - make_interval(secs => $3) <= $2 AND ends_at > $2",
            node_id, now, float(warning_seconds))
        return [conference_from_row(r) for r in rows]

    async def due_ends(self, node_id: str, now: datetime) -> list[Conference]:
        """Running conferences on the node whose deadline has come."""
        rows = await self.pool.fetch(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE state = 'running' AND node_id = $1 "
            "AND ends_at <= $2 ORDER BY ends_at", node_id, now)
        return [conference_from_row(r) for r in rows]

    async def mark_warned(self, conference_id: int) -> bool:
        """Record that the warning was played (True only for the first caller)."""
        result = await self.pool.execute(
            "UPDATE conferences SET warned_at = now() WHERE id = $1 AND warned_at IS NULL", conference_id)
        return result.endswith(" 1")

    async def set_recording_error(self, conference_id: int, error: str | None) -> None:
        """What went wrong with the conference's recording (None: nothing)."""
        await self.pool.execute("UPDATE conferences SET recording_error = $2 WHERE id = $1", conference_id, error)

    async def mark_occurrence_changed(self, conference_id: int) -> None:
        """A series occurrence was changed on its own (it no longer follows the series' plan)."""
        await self.pool.execute(
            "UPDATE conferences SET occurrence_changed = true, updated_at = now() WHERE id = $1", conference_id)

    # ------------------------------------------------------------------ look-ups by number, series, owner, node

    async def conference_by_number(self, number: str) -> Conference | None:
        """The live conference with this number (running, else the next scheduled occurrence of
        a series), else the latest one that is over, so its callers hear that it ended. A blocked
        account's conferences are unknown to callers."""
        row = await self.pool.fetchrow(
            f"SELECT {_CONF_SELECT} FROM conferences WHERE conference_number = $1 "
            "AND owner_id NOT IN (SELECT id FROM accounts WHERE blocked) "
            "ORDER BY (state = 'running') DESC, (state = 'scheduled') DESC, "
            "CASE WHEN state = 'scheduled' THEN starts_at END, starts_at DESC LIMIT 1", number)
        return conference_from_row(row) if row else None

    async def series_conference_ids(self, series_id: int, states: Iterable[str] | None = None) -> list[int]:
        """The series' conferences (occurrences or sessions), earliest start first."""
        rows = await self.pool.fetch(
            "SELECT id FROM conferences WHERE series_id = $1 AND ($2::text[] IS NULL OR state = ANY($2)) "
            "ORDER BY starts_at, id", series_id, list(states) if states else None)
        return [row["id"] for row in rows]

    async def occurrence_starts(self, series_id: int) -> dict[datetime, str]:
        """Every materialised occurrence of a series: the rule's start -> the occurrence's state."""
        rows = await self.pool.fetch(
            "SELECT occurrence_at, state FROM conferences WHERE series_id = $1 AND occurrence_at IS NOT NULL",
            series_id)
        return {row["occurrence_at"]: row["state"] for row in rows}

    async def owner_conference_ids(self, owner_id: int, states: Iterable[str]) -> list[int]:
        """The owner's conferences in the given states."""
        rows = await self.pool.fetch(
            "SELECT id FROM conferences WHERE owner_id = $1 AND state = ANY($2::text[]) ORDER BY id",
            owner_id, [str(s) for s in states])
        return [r["id"] for r in rows]

    async def running_overview(self) -> list[dict[str, Any]]:
        """Every running conference with its owner and participant counts (the operator's page)."""
        rows = await self.pool.fetch(
            "SELECT c.id, c.subject, c.node_id, c.room, c.conference_number, c.started_at, c.ends_at, "
            "c.max_participants, c.locked, c.owner_id, a.phone AS owner_phone, a.name AS owner_name, "
            "count(p.id) FILTER (WHERE p.state = 'connected') AS connected, "
            "count(p.id) FILTER (WHERE p.state IN ('calling', 'ringing')) AS dialling, "
            "count(p.id) AS participants "
            "FROM conferences c JOIN accounts a ON a.id = c.owner_id "
            "LEFT JOIN participants p ON p.conference_id = c.id "
            "WHERE c.state = 'running' GROUP BY c.id, a.id ORDER BY c.started_at")
        return [dict(r) for r in rows]

    async def place(self, conference_id: int, node_ids: Sequence[str],
                    choose: Callable[[list[Node]], Node | None]) -> tuple[str | None, bool]:
        """Put a scheduled conference with nobody in a call yet on the node ``choose`` picks from
        these nodes with their live load, it and all its participants; one placement at a time
        (a transaction-scoped advisory lock), so two starts never both take the last seats.
        Returns (node id, moved): the chosen node, or the node it stays on when it is no longer
        scheduled or someone is in a call (already placed); (None, False) when nothing fits."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('veche.placement'))")
            row = await conn.fetchrow(
                "SELECT c.node_id, c.state = 'scheduled' AND NOT EXISTS (SELECT 1 FROM participants p "
                "  WHERE p.conference_id = c.id AND p.state IN ('calling', 'ringing', 'connected')) AS open "
                "FROM conferences c WHERE c.id = $1 FOR NO KEY UPDATE", conference_id)
            if row is None or not row["open"]:
                return (row["node_id"] if row else None), False
            rows = await conn.fetch(
                f"SELECT {NODE_COLUMNS} FROM asterisk_nodes n {NODE_LOAD} "
                "WHERE n.node_id = ANY($1::text[]) ORDER BY n.node_id", list(node_ids))
            node = choose([node_from_row(r) for r in rows])
            if node is None:
                return None, False
            await conn.execute("UPDATE conferences SET node_id = $2 WHERE id = $1", conference_id, node.node_id)
            await conn.execute("UPDATE participants SET node_id = $2 WHERE conference_id = $1",
                               conference_id, node.node_id)
            return node.node_id, True

    async def rehome(self, conference_id: int, dead: str, node_ids: Sequence[str],
                     choose: Callable[[list[Node]], Node | None]) -> str | None:
        """Move a running conference off the failed node ``dead`` to the node ``choose`` picks, it
        and all its participants, under the placement lock; None when it is no longer running
        there or nothing fits."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('veche.placement'))")
            on_dead = await conn.fetchval(
                "SELECT true FROM conferences WHERE id = $1 AND node_id = $2 AND state = 'running' "
                "FOR NO KEY UPDATE", conference_id, dead)
            if not on_dead:
                return None
            rows = await conn.fetch(
                f"SELECT {NODE_COLUMNS} FROM asterisk_nodes n {NODE_LOAD} "
                "WHERE n.node_id = ANY($1::text[]) AND n.node_id <> $2 ORDER BY n.node_id", list(node_ids), dead)
            node = choose([node_from_row(r) for r in rows])
            if node is None:
                return None
            await conn.execute("UPDATE conferences SET node_id = $2 WHERE id = $1", conference_id, node.node_id)
            await conn.execute("UPDATE participants SET node_id = $2 WHERE conference_id = $1",
                               conference_id, node.node_id)
            return node.node_id

    async def finished_rooms(self, node_id: str, rooms: list[str]) -> list[tuple[int, str]]:
        """(conference id, room) of the conferences whose room is in ``rooms`` on this node but
        which are over, or live on another node now (moved off this node while it was down)."""
        rows = await self.pool.fetch(
            "SELECT id, room FROM conferences WHERE room = ANY($2::text[]) "
            "AND (state IN ('ended', 'cancelled', 'failed') OR node_id <> $1)", node_id, rooms)
        return [(r["id"], r["room"]) for r in rows]

    # ------------------------------------------------------------------ participants

    @staticmethod
    async def _insert_participant(conn: asyncpg.Connection, conference_id: int, *, number: str,
                                  name: str = "", email: str | None = None, role: str = "guest",
                                  origin: str = "dialout", state: str = "planned",
                                  call_id: str | None = None, node_id: str | None = None,
                                  channel: str | None = None, attempts: int = 0) -> Participant:
        row = await conn.fetchrow(
            "INSERT INTO participants (conference_id, number, name, email, role, origin, state, call_id, "
            "node_id, channel, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
            f"RETURNING {_PART_SELECT}",
            conference_id, number, name or "", email, str(role), str(origin), str(state), call_id,
            node_id, channel, attempts)
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

    async def live_call_ids(self) -> list[str]:
        """The call ids of the participants calling, ringing or in a room."""
        rows = await self.pool.fetch(
            f"SELECT call_id FROM participants WHERE call_id IS NOT NULL AND state IN {_LIVE_STATES_SQL}")
        return [row["call_id"] for row in rows]

    async def update_participant(self, participant_id: int, *, only_states: Iterable[str] | None = None,
                                 **changes: Any) -> Participant | None:
        """Write the given columns; with ``only_states`` only when the participant is in one of
        them (None when not applied)."""
        sets, values = assignments(changes, _PARTICIPANT_WRITABLE, 3)
        states = [str(s) for s in only_states] if only_states is not None else None
        row = await self.pool.fetchrow(
            f"UPDATE participants SET {sets}, updated_at = now() WHERE id = $1 "
            f"AND ($2::text[] IS NULL OR state = ANY($2)) RETURNING {_PART_SELECT}",
            participant_id, states, *values)
        return participant_from_row(row) if row else None

    async def mark_ringing(self, participant_ids: Sequence[int]) -> set[int]:
        """Move the given participants that are still calling to ringing, in one statement; the
        ids of those moved (ids bound as text[], whose codec asyncpg has without asking)."""
        rows = await self.pool.fetch(
            "UPDATE participants SET state = 'ringing', updated_at = now() "
            "WHERE id = ANY($1::text[]::bigint[]) AND state = 'calling' RETURNING id",
            [str(i) for i in participant_ids])
        return {row["id"] for row in rows}

    async def mark_joined(self, joins: Mapping[int, Joined]) -> dict[int, Participant]:
        """Calls that reached their rooms: each participant connected (joined_at, channel unless
        None, muted) with its ``participant.joined`` log entry (number, origin, role), all in one
        statement (bound as text[], whose codec asyncpg has without asking); the participants
        stored, by id."""
        ids = list(joins)
        rows = await self.pool.fetch(
            "WITH j AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
            "AS j(j_id, j_at, j_channel, j_muted)), "
            "joined AS (UPDATE participants SET state = 'connected', joined_at = j.j_at::timestamptz, "
            "left_at = NULL, channel = COALESCE(j.j_channel, channel), failure_reason = NULL, "
            "muted = j.j_muted::boolean, updated_at = now() "
            f"FROM j WHERE id = j.j_id::bigint RETURNING {_PART_SELECT}), "
            "logged AS (INSERT INTO conference_events (conference_id, kind, actor, participant_id, detail) "
            "SELECT conference_id, 'participant.joined', 'engine', id, "
            "jsonb_build_object('number', number, 'origin', origin, 'role', role) FROM joined) "
            f"SELECT {_PART_SELECT} FROM joined",
            [str(i) for i in ids], [joins[i].at.isoformat() for i in ids], [joins[i].channel for i in ids],
            [str(joins[i].muted).lower() for i in ids])
        return {row["id"]: participant_from_row(row) for row in rows}

    async def mark_left(self, leaves: Mapping[int, Left]) -> dict[int, Participant]:
        """Connected participants that left: each moves to left (left_at, its connected time
        added, its hangup cause when given) with its ``participant.left`` log entry
        (connected_seconds and the leave's detail), all in one statement (bound as text[], whose
        codec asyncpg has without asking); the participants stored, by id. One that is no longer
        connected, or no longer on the call that left, is left out."""
        ids = list(leaves)
        rows = await self.pool.fetch(
            "WITH l AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
            "$6::text[]) AS l(l_id, l_at, l_cause, l_detail, l_actor, l_call)), "
            "gone AS (UPDATE participants SET state = 'left', left_at = l.l_at::timestamptz, talking = false, "
            "connected_seconds = connected_seconds + GREATEST(0, floor(extract(epoch FROM "
            "(l.l_at::timestamptz - COALESCE(joined_at, l.l_at::timestamptz)))))::int, "
            "hangup_cause = COALESCE(l.l_cause::int, hangup_cause), updated_at = now() "
            "FROM l WHERE id = l.l_id::bigint AND state = 'connected' AND call_id IS NOT DISTINCT FROM l.l_call "
            f"RETURNING {_PART_SELECT}, l.l_detail, l.l_actor), "
            "logged AS (INSERT INTO conference_events (conference_id, kind, actor, participant_id, detail) "
            "SELECT conference_id, 'participant.left', l_actor, id, "
            "jsonb_build_object('connected_seconds', connected_seconds) || l_detail::jsonb FROM gone ORDER BY id) "
            f"SELECT {_PART_SELECT} FROM gone",
            [str(i) for i in ids], [leaves[i].at.isoformat() for i in ids],
            [None if leaves[i].cause is None else str(leaves[i].cause) for i in ids],
            [json.dumps(leaves[i].detail, default=str) for i in ids], [leaves[i].actor for i in ids],
            [leaves[i].call_id for i in ids])
        return {row["id"]: participant_from_row(row) for row in rows}

    async def store_hangup_causes(self, causes: Mapping[int, int]) -> set[int]:
        """The hang-up causes of participants stored left without one, in one statement; the ids
        written."""
        ids = list(causes)
        rows = await self.pool.fetch(
            "UPDATE participants p SET hangup_cause = c.cause::int, updated_at = now() "
            "FROM unnest($1::text[], $2::text[]) AS c(id, cause) "
            "WHERE p.id = c.id::bigint AND p.state = 'left' AND p.hangup_cause IS NULL RETURNING p.id",
            [str(i) for i in ids], [str(causes[i]) for i in ids])
        return {row["id"] for row in rows}

    async def count_participants(self, conference_id: int, states: Iterable[str] | None = None) -> int:
        """How many participants the conference has (optionally only in the given states)."""
        state_list = [str(s) for s in states] if states is not None else None
        return await self.pool.fetchval(
            "SELECT count(*) FROM participants WHERE conference_id = $1 "
            "AND ($2::text[] IS NULL OR state = ANY($2))", conference_id, state_list)

    async def add_caller(self, conference_id: int, *, number: str, role: Role, call_id: str,
                         channel: str | None, node_id: str) -> Participant:
        """A dial-in caller as a participant (origin dialin, state calling, call_id = the caller
        channel's uniqueid) and its log entry, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            participant = await self._insert_participant(
                conn, conference_id, number=number, role=str(role), origin="dialin", state="calling",
                call_id=call_id, channel=channel, node_id=node_id, attempts=1)
            await self._log(conn, conference_id, "participant.dialin", actor="caller",
                            participant_id=participant.id, detail={"number": number, "role": str(role)})
        return participant

    async def seats_taken(self, conference_id: int) -> int:
        """Connected participants, plus dial-in callers admitted moments ago and still joining."""
        return await self.pool.fetchval(
            "SELECT count(*) FROM participants WHERE conference_id = $1 AND (state = 'connected' "
            "OR (origin = 'dialin' AND state = 'calling' "
            f"AND created_at > now() - interval '{PENDING_SEAT_SECONDS} seconds'))", conference_id)

    async def present(self, conference_id: int) -> int:
        """Participants in the room or on their way in: dialled out and not answered yet, or a
        dial-in caller admitted moments ago."""
        return await self.pool.fetchval(
            "SELECT count(*) FROM participants WHERE conference_id = $1 AND (state = 'connected' "
            "OR (state IN ('calling', 'ringing') AND (origin = 'dialout' "
            f"OR created_at > now() - interval '{PENDING_SEAT_SECONDS} seconds')))", conference_id)

    async def changed_recently(self, participant_ids: list[int], seconds: float) -> set[int]:
        """Those of the participants whose row changed during the last ``seconds``."""
        rows = await self.pool.fetch(
            "SELECT id FROM participants WHERE id = ANY($1::bigint[]) "
            "AND updated_at > now() - make_interval(secs => $2)", participant_ids, float(seconds))
        return {r["id"] for r in rows}

    # ------------------------------------------------------------------ event log

    @staticmethod
    async def _log(conn: asyncpg.Connection | asyncpg.Pool, conference_id: int, kind: str, *,
                   actor: str = "engine", participant_id: int | None = None,
                   detail: dict[str, Any] | None = None) -> None:
        await conn.execute(
            "INSERT INTO conference_events (conference_id, kind, actor, participant_id, detail) "
            "VALUES ($1, $2, $3, $4, $5::jsonb)", conference_id, kind, actor, participant_id,
            json.dumps(detail or {}, default=str))

    async def log_event(self, conference_id: int, kind: str, *, actor: str = "engine",
                        participant_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
        """Append one entry to the conference's event log."""
        await self._log(self.pool, conference_id, kind, actor=actor, participant_id=participant_id, detail=detail)

    async def events(self, conference_id: int) -> list[dict[str, Any]]:
        """The event log, oldest first: at, kind, actor, participant_id, detail."""
        rows = await self.pool.fetch(
            "SELECT at, kind, actor, participant_id, detail FROM conference_events "
            "WHERE conference_id = $1 ORDER BY at, id", conference_id)
        return [{"at": r["at"], "kind": r["kind"], "actor": r["actor"],
                 "participant_id": r["participant_id"], "detail": json.loads(r["detail"])} for r in rows]


# ---------------------------------------------------------------------- dial-out slots

@dataclass(frozen=True)
class SlotRequest:
    """One participant to dial: its row, the call id chosen for the attempt and where it runs."""

    participant_id: int
    call_id: str
    attempts: int
    node_id: str
    number: str


@dataclass
class SlotGrant:
    """What a claim took: the participants now 'calling', and what bound the rest."""

    claimed: list[Participant] = field(default_factory=list)
    room: int = 0  # how many more dial-outs the limits allowed at the time of the claim
    bound_by: str | None = None  # the limit that left no room for the rest (None: all claimed)
    limits: dict[str, int] = field(default_factory=dict)  # the limits as read under the lock


class CallSlotRepository:
    """Counts and takes dial-out slots: the call service's limit rules see only this part of the
    aggregate. A slot is a dial-out participant in state calling, ringing or connected of a
    running conference, so every state change that ends a call (and the end of its conference)
    releases it, and recovery's corrections re-count it. The account row and the system-wide
    count are locked, the limits read, and the participants moved with their events written, in
    one transaction, so parallel requests cannot both pass."""

    def __init__(self, pool: asyncpg.Pool, fence: Fence | None = None) -> None:
        self.pool = pool
        self.fence = fence or Fence(enabled=False)  # the leader lease's token (engine/adapters/db/lease.py)

    async def claim(self, owner_id: int, conference_id: int, requests: Sequence[SlotRequest], *,
                    system_cap: int, from_states: Sequence[str], actor: str,
                    all_or_nothing: bool) -> SlotGrant:
        """Take up to ``len(requests)`` slots for the owner, in order: the account row and the
        system-wide count are locked, the live calls and the last minute's dial-outs counted, and
        as many participants as the limits leave room for move to 'calling' with their
        'participant.dialing' event written, all in this one transaction. With
        ``all_or_nothing`` nothing is taken unless every request fits. An engine that does not
        hold the leader lease's live token takes nothing (NotActiveEngine)."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._claim(conn, owner_id, conference_id, requests, system_cap=system_cap,
                                     from_states=from_states, actor=actor, all_or_nothing=all_or_nothing)

    async def open_and_claim(self, fields: dict[str, Any], participants: Sequence[dict[str, Any]],
                             events: Sequence[LogEntry], *, call_ids: Sequence[str], system_cap: int,
                             actor: str, rules_stamp: str | None = None) -> tuple[Conference, SlotGrant]:
        """Insert a conference (as ConferenceRepository.insert_conference: within the owner's
        concurrent conferences) with a slot for each of its participants, the i-th dialled as
        ``call_ids[i]``, in order as far as the limits allow (``claim`` without all or
        nothing), in one statement: a dial-out's whole durable intent in one commit and one
        round trip. With ``rules_stamp`` (AccountRules.stamp) nothing is stored unless the
        account rules are still those (else StaleRules). The conference is returned with its
        participants as stored (the claimed ones calling); OverLimit, NotActiveEngine or
        StaleRules when nothing was stored."""
        query, args = _insert_statement(fields, participants, events, call_ids, actor,
                                        grant_args=self._grant_args(len(participants), system_cap,
                                                                    (fields["starts_at"], fields["ends_at"]),
                                                                    rules_stamp))
        rows = await self.pool.fetch(query, *args)
        grant = self._granted(rows[0], "g_", system_cap)
        if rows[0]["id"] is None:  # dialout_grant refused the conference itself
            if not rows[0]["g_leased"]:
                raise self.fence.refusal()
            if not rows[0]["g_rules_current"]:
                raise StaleRules(fields["owner_id"])
            raise OverLimit("max_concurrent_conferences", rows[0]["g_max_concurrent_conferences"],
                            rows[0]["g_overlapping"])
        conference = _inserted(rows)
        grant.claimed = [p for p in conference.participants if p.call_id is not None]
        return conference, grant

    async def _claim(self, conn: asyncpg.Connection, owner_id: int, conference_id: int,
                     requests: Sequence[SlotRequest], *, system_cap: int, from_states: Sequence[str], actor: str,
                     all_or_nothing: bool) -> SlotGrant:
        row = await conn.fetchrow(_GRANT_CALL, owner_id, *self._grant_args(len(requests), system_cap))
        if not row["leased"]:
            raise self.fence.refusal()
        grant = self._granted(row, "", system_cap)
        if grant.bound_by is not None and all_or_nothing:
            return grant
        taken = list(requests[:grant.room])
        if not taken:
            return grant
        # The participants move, their 'participant.dialing' entries are written and their
        # number is added to the account's dial-outs of this second, in one statement. Ids and
        # attempts travel as text[]: asyncpg knows that codec without asking the server, while
        # its first bigint[] or int[] on a pooled connection costs a catalogue query of its own
        # (5-20 ms), and this statement stands between a start and its first Originate.
        rows = await conn.fetch(
            "WITH r AS (SELECT r.id::bigint AS id, r.call_id, r.attempts::int AS attempts, r.node_id, r.n "
            "           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY "
            "           AS r(id, call_id, attempts, node_id, n)), "
            "moved AS (UPDATE participants p SET state = 'calling', call_id = r.call_id, channel = NULL, "
            "          failure_reason = NULL, hangup_cause = NULL, attempts = r.attempts, node_id = r.node_id, "
            "          talking = false, muted = false, updated_at = now() "
            f"          FROM r WHERE p.id = r.id AND p.state = ANY($5) RETURNING {_PART_RETURNING}, r.n), "
            "logged AS (INSERT INTO conference_events (conference_id, kind, actor, participant_id, detail) "
            "           SELECT $6, 'participant.dialing', $7, m.id, "
            "           jsonb_build_object('number', m.number, 'attempt', m.attempts) FROM moved m ORDER BY m.n), "
            f"counted AS ({_COUNT_DIALOUTS.format(owner='$8::bigint', rows='moved')}) "
            "SELECT * FROM moved ORDER BY n",
            [str(r.participant_id) for r in taken], [r.call_id for r in taken],
            [str(r.attempts) for r in taken], [r.node_id for r in taken], list(from_states),
            conference_id, actor, owner_id)
        by_id = {row["id"]: participant_from_row(row) for row in rows}  # some may have moved on meanwhile
        grant.claimed = [by_id[r.participant_id] for r in taken if r.participant_id in by_id]
        return grant

    def _grant_args(self, wanted: int, system_cap: int, overlap: tuple[datetime, datetime] | None = None,
                    rules_stamp: str | None = None) -> list[Any]:
        """dialout_grant's arguments after the owner (sql/028_dialout_grant.sql)."""
        starts_at, ends_at = overlap or (None, None)
        lease_name, lease_token = self.fence.lease()
        return [wanted, system_cap, SYSTEM_CALLS_LOCK, DIALOUTS_WINDOW_SECONDS, starts_at, ends_at,
                lease_name, lease_token, rules_stamp]

    @staticmethod
    def _granted(row: asyncpg.Record, prefix: str, system_cap: int) -> SlotGrant:
        """The SlotGrant of dialout_grant's row (its columns named with ``prefix``)."""
        grant = SlotGrant(room=row[prefix + "room"] or 0, bound_by=row[prefix + "bound_by"])
        grant.limits["system_concurrent_calls"] = system_cap
        if row[prefix + "max_concurrent_calls"] is not None:
            grant.limits["max_dialouts_per_minute"] = row[prefix + "max_dialouts_per_minute"]
            grant.limits["max_concurrent_calls"] = row[prefix + "max_concurrent_calls"]
        return grant

    async def purge_counts(self) -> int:
        """Delete the dial-out counts older than twice the per-minute window; the number deleted."""
        # by the database's clock, the one that stamped the buckets
        status = await self.pool.execute(
            "DELETE FROM dialout_counts WHERE second < clock_timestamp() - make_interval(secs => $1)",
            2 * DIALOUTS_WINDOW_SECONDS)
        return int(status.split()[-1])

    async def live_calls(self, owner_id: int | None = None) -> int:
        """Dial-outs calling, ringing or connected now (of one account, or of the whole system)."""
        return await self.pool.fetchval(
            "SELECT count(*) FROM participants p JOIN conferences c ON c.id = p.conference_id "
            f"WHERE c.state = 'running' AND p.origin = 'dialout' AND p.state IN {_LIVE_STATES_SQL} "
            "AND ($1::bigint IS NULL OR c.owner_id = $1)",
            owner_id)
