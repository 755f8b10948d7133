"""Rows for dial-in, quality and recovery tests: an account and a conference in a given state,
written straight to the database (the conference service has its own tests)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.support.factories import create_account


def random_digits(length: int) -> str:
    return str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10)) for _ in range(length - 1))


def random_caller() -> str:
    return "37529" + random_digits(7)


@dataclass(frozen=True)
class ConferenceRow:
    id: int
    owner_id: int
    room: str
    conference_number: str
    chair_pin: str
    guest_pin: str


async def create_conference(pool: asyncpg.Pool, *, node_id: str, state: str = "running",
                            owner_id: int | None = None, starts_in: timedelta = timedelta(minutes=-1),
                            duration_minutes: int = 30, max_participants: int = 10, locked: bool = False,
                            guest_pin_required: bool = True) -> ConferenceRow:
    owner_id = owner_id or await create_account(pool, max_participants=max(50, max_participants))
    number = random_digits(9)  # the service makes 6-digit numbers; 9 digits never collide with them
    chair_pin, guest_pin = random_digits(6), random_digits(6)
    while guest_pin == chair_pin:
        guest_pin = random_digits(6)
    room = f"veche-t{secrets.token_hex(6)}"
    starts_at = datetime.now(UTC) + starts_in
    row = await pool.fetchrow(
        "INSERT INTO conferences (owner_id, subject, node_id, room, conference_number, chair_pin, guest_pin, "
        "guest_pin_required, starts_at, duration_minutes, ends_at, max_participants, locked, state, started_at) "
        "VALUES ($1, 'test', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
        "CASE WHEN $13 = 'running' THEN now() END) RETURNING id",
        owner_id, node_id, room, number, chair_pin, guest_pin, guest_pin_required, starts_at,
        duration_minutes, starts_at + timedelta(minutes=duration_minutes), max_participants, locked, state)
    return ConferenceRow(row["id"], owner_id, room, number, chair_pin, guest_pin)
