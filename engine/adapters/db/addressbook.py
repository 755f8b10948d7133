"""SQL of each account's address book: contacts, conference rooms and planning templates.
Every query is scoped by owner_id, so one account never reads another's entries."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from engine.adapters.db import assignments
from engine.domain.accounts import Contact, Room, Template, TemplateParticipant

TEMPLATE_COLUMNS = ("id, owner_id, name, subject, duration_minutes, max_participants, auto_invite, "
                    "auto_extend_minutes, guest_pin_required, reminder_minutes, participants, is_default, language, "
                    "recording")

_TEMPLATE_WRITABLE = frozenset(c.strip() for c in TEMPLATE_COLUMNS.split(",")) - {"id", "owner_id"}
CONTACT_COLUMNS = "id, owner_id, name, number, email"
ROOM_COLUMNS = "id, owner_id, name, number, location"


class DuplicateName(Exception):  # noqa: N818 (a refusal, not a fault)
    """The account already has a template of that name (unique index templates_owner_name)."""


def _template(row: asyncpg.Record) -> Template:
    values = dict(row)
    values["participants"] = [TemplateParticipant(**p) for p in json.loads(values["participants"])]
    return Template(**values)


def _contact(row: asyncpg.Record) -> Contact:
    return Contact(**dict(row))


def _room(row: asyncpg.Record) -> Room:
    return Room(**dict(row))


def _like(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class AddressBookRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # contacts
    async def contacts(self, owner_id: int, search: str = "") -> list[Contact]:
        rows = await self.pool.fetch(
            f"""SELECT {CONTACT_COLUMNS} FROM contacts
               WHERE owner_id = $1 AND ($2 = '' OR name ILIKE $3 OR number LIKE $3 OR email ILIKE $3)
               ORDER BY lower(name), id""", owner_id, search, _like(search))
        return [_contact(r) for r in rows]

    async def contact(self, owner_id: int, contact_id: int) -> Contact | None:
        row = await self.pool.fetchrow(
            f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE owner_id = $1 AND id = $2",
            owner_id, contact_id)
        return _contact(row) if row else None

    async def insert_contact(self, owner_id: int, name: str, number: str, email: str | None) -> Contact:
        row = await self.pool.fetchrow(
            f"""INSERT INTO contacts (owner_id, name, number, email) VALUES ($1, $2, $3, $4)
               RETURNING {CONTACT_COLUMNS}""", owner_id, name, number, email)
        return _contact(row)

    async def update_contact(self, owner_id: int, contact_id: int, name: str, number: str,
                             email: str | None) -> Contact | None:
        row = await self.pool.fetchrow(
            f"""UPDATE contacts SET name = $3, number = $4, email = $5, updated_at = now()
               WHERE owner_id = $1 AND id = $2 RETURNING {CONTACT_COLUMNS}""",
            owner_id, contact_id, name, number, email)
        return _contact(row) if row else None

    async def delete_contact(self, owner_id: int, contact_id: int) -> bool:
        status = await self.pool.execute("DELETE FROM contacts WHERE owner_id = $1 AND id = $2", owner_id, contact_id)
        return status.endswith(" 1")

    # rooms
    async def rooms(self, owner_id: int, search: str = "") -> list[Room]:
        rows = await self.pool.fetch(
            f"""SELECT {ROOM_COLUMNS} FROM rooms
               WHERE owner_id = $1 AND ($2 = '' OR name ILIKE $3 OR number LIKE $3 OR location ILIKE $3)
               ORDER BY lower(name), id""", owner_id, search, _like(search))
        return [_room(r) for r in rows]

    async def room(self, owner_id: int, room_id: int) -> Room | None:
        row = await self.pool.fetchrow(
            f"SELECT {ROOM_COLUMNS} FROM rooms WHERE owner_id = $1 AND id = $2",
            owner_id, room_id)
        return _room(row) if row else None

    async def insert_room(self, owner_id: int, name: str, number: str, location: str) -> Room:
        row = await self.pool.fetchrow(
            f"""INSERT INTO rooms (owner_id, name, number, location) VALUES ($1, $2, $3, $4)
               RETURNING {ROOM_COLUMNS}""", owner_id, name, number, location)
        return _room(row)

    async def update_room(self, owner_id: int, room_id: int, name: str, number: str, location: str) -> Room | None:
        row = await self.pool.fetchrow(
            f"""UPDATE rooms SET name = $3, number = $4, location = $5, updated_at = now()
               WHERE owner_id = $1 AND id = $2 RETURNING {ROOM_COLUMNS}""",
            owner_id, room_id, name, number, location)
        return _room(row) if row else None

    async def delete_room(self, owner_id: int, room_id: int) -> bool:
        status = await self.pool.execute("DELETE FROM rooms WHERE owner_id = $1 AND id = $2", owner_id, room_id)
        return status.endswith(" 1")

    # templates
    async def templates(self, owner_id: int) -> list[Template]:
        rows = await self.pool.fetch(
            f"SELECT {TEMPLATE_COLUMNS} FROM templates WHERE owner_id = $1 ORDER BY is_default DESC, lower(name), id",
            owner_id)
        return [_template(r) for r in rows]

    async def template(self, owner_id: int, template_id: int) -> Template | None:
        row = await self.pool.fetchrow(
            f"SELECT {TEMPLATE_COLUMNS} FROM templates WHERE owner_id = $1 AND id = $2", owner_id, template_id)
        return _template(row) if row else None

    async def default_template(self, owner_id: int) -> Template | None:
        row = await self.pool.fetchrow(
            f"SELECT {TEMPLATE_COLUMNS} FROM templates WHERE owner_id = $1 AND is_default", owner_id)
        return _template(row) if row else None

    async def insert_template(self, owner_id: int, values: dict[str, Any]) -> Template:
        values = _encode(values)
        async with self.pool.acquire() as conn, conn.transaction():
            if values.get("is_default"):
                await conn.execute("UPDATE templates SET is_default = false WHERE owner_id = $1", owner_id)
            columns = ["owner_id", *values]
            placeholders = ", ".join(
                f"${i}::jsonb" if name == "participants" else f"${i}" for i, name in enumerate(columns, start=1))
            try:
                row = await conn.fetchrow(
                    f"INSERT INTO templates ({', '.join(columns)}) VALUES ({placeholders}) "
                    f"RETURNING {TEMPLATE_COLUMNS}", owner_id, *values.values())
            except asyncpg.UniqueViolationError:
                raise DuplicateName() from None
        return _template(row)

    async def update_template(self, owner_id: int, template_id: int, values: dict[str, Any]) -> Template | None:
        values = _encode(values)
        async with self.pool.acquire() as conn, conn.transaction():
            if values.get("is_default"):
                await conn.execute(
                    "UPDATE templates SET is_default = false WHERE owner_id = $1 AND id <> $2", owner_id, template_id)
            sets, args = assignments(values, _TEMPLATE_WRITABLE, 3) if values else ("", [])
            try:
                row = await conn.fetchrow(
                    f"UPDATE templates SET {sets + ', ' if sets else ''}updated_at = now() "
                    f"WHERE owner_id = $1 AND id = $2 RETURNING {TEMPLATE_COLUMNS}",
                    owner_id, template_id, *args)
            except asyncpg.UniqueViolationError:
                raise DuplicateName() from None
        return _template(row) if row else None

    async def delete_template(self, owner_id: int, template_id: int) -> bool:
        status = await self.pool.execute(
            "DELETE FROM templates WHERE owner_id = $1 AND id = $2", owner_id, template_id)
        return status.endswith(" 1")


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "participants" in out:
        out["participants"] = json.dumps(
            [{"number": p.number, "name": p.name, "email": p.email, "role": p.role} for p in out["participants"]])
    return out
