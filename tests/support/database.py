"""Databases of their own on the session's PostgreSQL server, for tests whose rows no other
engine may see (node rows, the leader lease, mail state)."""

from __future__ import annotations

import secrets

import asyncpg

from engine.adapters.db.migrations import migrate


async def new_database(database_url: str, prefix: str, *, migrated: bool = True) -> str:
    """Create a database named ``prefix`` plus a random suffix, migrated unless told otherwise;
    its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url.rsplit("/", 1)[0] + "/" + name
    if migrated:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
    return url


async def drop_database(database_url: str, url: str) -> None:
    """Drop the database at ``url`` (made by new_database), even with connections still open."""
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()
