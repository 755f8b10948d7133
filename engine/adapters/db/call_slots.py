"""Dial-out slots: the SQL that lets a participant be dialled only within its account's limits
(dial-outs per minute, concurrent outbound calls) and the system's cap on concurrent outbound
calls, checked and taken in one transaction so parallel requests cannot both pass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from engine.adapters.db.conferences import LIVE_PARTICIPANT_STATES, PARTICIPANT_COLUMNS, participant_from_row
from engine.adapters.db.lease import Fence
from engine.domain.model import Participant

_PART_RETURNING = ", ".join(f"p.{column}" for column in PARTICIPANT_COLUMNS)
# pg_advisory_xact_lock key of the system-wide count of outbound calls ('veche' 11).
SYSTEM_CALLS_LOCK = 0x76656368_0011


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
    """Counts and takes dial-out slots. A slot is a dial-out participant in state calling,
    ringing or connected of a running conference, so every state change that ends a call (and
    the end of its conference) releases it, and recovery's corrections re-count it."""

    def __init__(self, pool: asyncpg.Pool, fence: Fence | None = None) -> None:
        self.pool = pool
        self.fence = fence or Fence(enabled=False)  # the leader lease's token (engine/adapters/db/lease.py)

    async def claim(self, owner_id: int, conference_id: int, requests: Sequence[SlotRequest], *,
                    system_cap: int, from_states: Sequence[str], actor: str,
                    all_or_nothing: bool, window_seconds: float = 60.0) -> SlotGrant:
        """Take up to ``len(requests)`` slots for the owner, in order: the account row and the
        system-wide count are locked, the live calls and the last minute's dial-outs counted, and
        as many participants as the limits leave room for move to 'calling' with their
        'participant.dialing' event written, all in this one transaction. With
        ``all_or_nothing`` nothing is taken unless every request fits. An engine that does not
        hold the leader lease's live token takes nothing (NotActiveEngine)."""
        grant = SlotGrant()
        async with self.pool.acquire() as conn, conn.transaction():
            await self.fence.check(conn)
            account = await conn.fetchrow(
                "SELECT max_concurrent_calls, max_dialouts_per_minute FROM accounts WHERE id = $1 "
                "FOR NO KEY UPDATE", owner_id)
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SYSTEM_CALLS_LOCK)
            system_live = await conn.fetchval(
                "SELECT count(*) FROM participants p JOIN conferences c ON c.id = p.conference_id "
                "WHERE c.state = 'running' AND p.origin = 'dialout' AND p.state = ANY($1)",
                list(LIVE_PARTICIPANT_STATES))
            rooms = {"system_concurrent_calls": system_cap - system_live}
            grant.limits["system_concurrent_calls"] = system_cap
            if account is not None:
                account_live = await conn.fetchval(
                    "SELECT count(*) FROM participants p JOIN conferences c ON c.id = p.conference_id "
                    "WHERE c.owner_id = $1 AND c.state = 'running' AND p.origin = 'dialout' "
                    "AND p.state = ANY($2)", owner_id, list(LIVE_PARTICIPANT_STATES))
                recent = await conn.fetchval(
                    "SELECT count(*) FROM conference_events e JOIN conferences c ON c.id = e.conference_id "
                    "WHERE c.owner_id = $1 AND e.kind = 'participant.dialing' "
                    "AND e.at > clock_timestamp() - make_interval(secs => $2)", owner_id, float(window_seconds))
                rooms["max_dialouts_per_minute"] = account["max_dialouts_per_minute"] - recent
                rooms["max_concurrent_calls"] = account["max_concurrent_calls"] - account_live
                grant.limits["max_dialouts_per_minute"] = account["max_dialouts_per_minute"]
                grant.limits["max_concurrent_calls"] = account["max_concurrent_calls"]
            # the tightest limit binds; on a tie the account's own limit is named
            order = ("max_dialouts_per_minute", "max_concurrent_calls", "system_concurrent_calls")
            bound_by = min(rooms, key=lambda k: (rooms[k], order.index(k)))
            grant.room = max(0, rooms[bound_by])
            if grant.room < len(requests):
                grant.bound_by = bound_by
                if all_or_nothing:
                    return grant
            taken = list(requests[:grant.room])
            if not taken:
                return grant
            rows = await conn.fetch(
                "UPDATE participants p SET state = 'calling', call_id = r.call_id, channel = NULL, "
                "failure_reason = NULL, hangup_cause = NULL, attempts = r.attempts, node_id = r.node_id, "
                "talking = false, muted = false, updated_at = now() "
                "FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[]) AS r(id, call_id, attempts, node_id) "
                f"WHERE p.id = r.id AND p.state = ANY($5) RETURNING {_PART_RETURNING}",
                [r.participant_id for r in taken], [r.call_id for r in taken], [r.attempts for r in taken],
                [r.node_id for r in taken], list(from_states))
            by_id = {row["id"]: participant_from_row(row) for row in rows}  # some may have moved on meanwhile
            dialled = [r for r in taken if r.participant_id in by_id]
            grant.claimed = [by_id[r.participant_id] for r in dialled]
            await conn.execute(
                "INSERT INTO conference_events (conference_id, kind, actor, participant_id, detail) "
                "SELECT $1, 'participant.dialing', $2, r.id, "
                "jsonb_build_object('number', r.number, 'attempt', r.attempt) "
                "FROM unnest($3::bigint[], $4::text[], $5::int[]) WITH ORDINALITY AS r(id, number, attempt, n) "
                "ORDER BY r.n", conference_id, actor, [r.participant_id for r in dialled],
                [r.number for r in dialled], [r.attempts for r in dialled])
        return grant

    async def live_calls(self, owner_id: int | None = None) -> int:
        """Dial-outs calling, ringing or connected now (of one account, or of the whole system)."""
        return await self.pool.fetchval(
            "SELECT count(*) FROM participants p JOIN conferences c ON c.id = p.conference_id "
            "WHERE c.state = 'running' AND p.origin = 'dialout' AND p.state = ANY($2) "
            "AND ($1::bigint IS NULL OR c.owner_id = $1)",
            owner_id, list(LIVE_PARTICIPANT_STATES))
