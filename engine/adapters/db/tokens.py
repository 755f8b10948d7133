"""SQL of the api_tokens table (JSON API bearer tokens): issue, look up by hash, touch, revoke
(one token or all of an account's)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from engine.domain.tokens import ApiToken

_COLUMNS = "id, account_id, name, prefix, created_at, last_used_at, revoked_at, expires_at"


def _token(row: asyncpg.Record) -> ApiToken:
    return ApiToken(id=row["id"], account_id=row["account_id"], name=row["name"], prefix=row["prefix"],
                    created_at=row["created_at"], last_used_at=row["last_used_at"],
                    revoked_at=row["revoked_at"], expires_at=row["expires_at"])


class TokenRepository:
    """api_tokens rows; the token secret never reaches this module, only its hash."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, account_id: int, name: str, token_hash: str, prefix: str,
                     expires_at: datetime | None = None) -> ApiToken:
        row = await self._pool.fetchrow(
            f"INSERT INTO api_tokens (account_id, name, token_hash, prefix, expires_at) VALUES ($1, $2, $3, $4, $5) "
            f"RETURNING {_COLUMNS}", account_id, name, token_hash, prefix, expires_at)
        return _token(row)

    async def find_by_hash(self, token_hash: str) -> tuple[ApiToken, bool] | None:
        """The token with this hash and whether its account is blocked, or None."""
        row = await self._pool.fetchrow(
            f"SELECT t.{_COLUMNS.replace(', ', ', t.')}, a.blocked FROM api_tokens t "
            "JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = $1", token_hash)
        return None if row is None else (_token(row), row["blocked"])

    async def touch(self, token_id: int, min_interval_seconds: int = 60) -> None:
        """Record a use, at most once per interval so busy clients do not write on every call."""
        await self._pool.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = $1 AND (last_used_at IS NULL "
            "OR last_used_at < now() - make_interval(secs => $2))", token_id, float(min_interval_seconds))

    async def list(self, account_id: int) -> list[ApiToken]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE account_id = $1 ORDER BY id", account_id)
        return [_token(row) for row in rows]

    async def get(self, token_id: int) -> ApiToken | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = $1", token_id)
        return None if row is None else _token(row)

    async def revoke_account(self, account_id: int) -> int:
        """Revoke every live token of the account; how many."""
        status = await self._pool.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL", account_id)
        return int(status.split()[-1])

    async def revoke(self, token_id: int) -> ApiToken | None:
        row = await self._pool.fetchrow(
            f"UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {_COLUMNS}",
            token_id)
        return None if row is None else _token(row)
