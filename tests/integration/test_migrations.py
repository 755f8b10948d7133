"""Migrations against a real PostgreSQL: applied once, and a broken file changes nothing."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from engine.adapters.db.migrations import SQL_DIR, discover, migrate
from engine.domain.errors import MigrationError


@pytest.fixture
async def fresh_db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a database of its own, created on the session's server and dropped after."""
    name = f"veche_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/" + name)
    try:
        yield conn
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}"')
        await admin.close()


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_migrations_applied_twice_are_a_no_op(fresh_db: asyncpg.Connection) -> None:
    first = await migrate(fresh_db)
    assert [m.version for m in first] == [m.version for m in discover(SQL_DIR)]
    schema_after_first = await tables(fresh_db)
    recorded = await fresh_db.fetch("SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version")

    second = await migrate(fresh_db)

    assert second == []
    assert await tables(fresh_db) == schema_after_first
    assert await fresh_db.fetch(
        "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version") == recorded
    assert {"accounts", "conferences", "participants", "conference_events"} <= schema_after_first


async def test_broken_migration_stops_and_changes_nothing(fresh_db: asyncpg.Connection,
                                                          tmp_path: Path) -> None:
    (tmp_path / "001_good.sql").write_text("CREATE TABLE good_thing (id integer PRIMARY KEY);\n")
    (tmp_path / "002_broken.sql").write_text(
        "CREATE TABLE broken_thing (id integer PRIMARY KEY);\n"
        "INSERT INTO good_thing VALUES (1);\n"
        "ALTER TABLE no_such_table ADD COLUMN x integer;\n")

    with pytest.raises(MigrationError) as failure:
        await migrate(fresh_db, tmp_path)

    message = str(failure.value)
    assert "002_broken.sql" in message and "no_such_table" in message
    assert "\n" not in message
    assert "broken_thing" not in await tables(fresh_db)
    assert await fresh_db.fetchval("SELECT count(*) FROM good_thing") == 0
    versions = [r["version"] for r in await fresh_db.fetch("SELECT version FROM schema_migrations")]
    assert versions == [1]

    # Fixed, the same directory then applies only what is missing.
    (tmp_path / "002_broken.sql").write_text("CREATE TABLE broken_thing (id integer PRIMARY KEY);\n")
    applied = await migrate(fresh_db, tmp_path)
    assert [m.name for m in applied] == ["broken"]
    assert {"good_thing", "broken_thing"} <= await tables(fresh_db)


async def test_badly_named_migration_is_refused_before_anything_runs(fresh_db: asyncpg.Connection,
                                                                     tmp_path: Path) -> None:
    (tmp_path / "001_good.sql").write_text("CREATE TABLE good_thing (id integer);\n")
    (tmp_path / "2-oops.sql").write_text("CREATE TABLE oops (id integer);\n")

    with pytest.raises(MigrationError, match="NNN_name.sql"):
        await migrate(fresh_db, tmp_path)

    assert await tables(fresh_db) == set()
