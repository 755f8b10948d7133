"""PostgreSQL access: the asyncpg pool and the migration runner. All SQL of the engine lives
in this package (one repository module per aggregate) and in sql/."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from engine.domain.errors import ConfigError


def describe_url(url: str) -> str:
    """host:port/database of a DSN, without the password, for error messages."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or ''}"


async def _release(conn: asyncpg.Connection) -> None:
    """The pool's reset of a released connection, after asyncpg's own (an open transaction rolled
    back, listeners dropped). The engine leaves no session state behind (no SET, LISTEN, WITH HOLD
    cursor or session advisory lock outlives the code that took it), so asyncpg's default reset
    query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL), one more round trip after every pooled
    query, is not sent."""


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 20, timeout: float = 10.0,
                      name: str = "veche", settings: dict[str, str] | None = None) -> asyncpg.Pool:
    """Open the pool, or raise ConfigError naming what and where in one line. ``name`` is its
    connections' ``application_name``: what they serve, in ``pg_stat_activity``; ``settings``
    are further server settings of its sessions."""
    try:
        return await asyncio.wait_for(
            asyncpg.create_pool(url, min_size=min_size, max_size=max_size, command_timeout=30, reset=_release,
                                server_settings={"application_name": name, **(settings or {})}),
            timeout)
    except (TimeoutError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"cannot reach PostgreSQL at {describe_url(url)}: {reason}") from None
    except asyncpg.PostgresError as exc:
        raise ConfigError(f"PostgreSQL at {describe_url(url)} refused the connection: {exc}") from None


def assignments(changes: dict[str, Any], allowed: Collection[str], start: int) -> tuple[str, list[Any]]:
    """The ``SET`` list of an UPDATE: ``col = $start, col = $start+1, ...`` for the given columns
    (each must be in ``allowed``, else KeyError) and their values in that order, enums as their
    values. The one way every repository writes a chosen set of columns."""
    unknown = set(changes) - set(allowed)
    if unknown or not changes:
        raise KeyError(f"not writable: {sorted(unknown) or 'nothing'}")
    values = [value.value if isinstance(value, Enum) else value for value in changes.values()]
    return ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=start)), values
