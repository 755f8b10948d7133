"""Idempotency keys: a create sent twice with the same Idempotency-Key (a retry after a lost
answer, a double-submitted form) acts once; the second gets the first answer again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from engine.adapters.db.idempotency import IdempotencyRepository
from engine.domain.errors import IdempotencyInProgress, IdempotencyKeyReused
from engine.domain.idempotency import check_key, fingerprint


@dataclass(frozen=True)
class Answer:
    """What a request was answered: HTTP-free enough for any entry point to replay."""

    status: int
    body: str
    headers: dict[str, str]
    replayed: bool = False


class IdempotencyService:
    def __init__(self, repository: IdempotencyRepository, retention: timedelta) -> None:
        self.repository = repository
        self.retention = retention

    async def once(self, account_id: int, key: str, operation: str, body: Any,
                   act: Callable[[], Awaitable[Answer]]) -> Answer:
        """Run ``act`` for the first request with this key; for a later request with the same
        key and body, the stored answer. The same key with another operation or body is
        IdempotencyKeyReused; while the first is still running, IdempotencyInProgress. An
        exception in ``act`` forgets the key (nothing was answered, so a retry acts again)."""
        key = check_key(key)
        request_hash = fingerprint(operation, body)
        stored = await self.repository.claim(account_id, key, operation, request_hash, self.retention)
        if stored is not None:
            if stored.request_hash != request_hash:
                raise IdempotencyKeyReused("this Idempotency-Key was used with another request")
            if stored.status is None:
                raise IdempotencyInProgress("a request with this Idempotency-Key is still being answered")
            return Answer(stored.status, stored.body or "", stored.headers, replayed=True)
        try:
            answer = await act()
        except BaseException:
            await self.repository.release(account_id, key)
            raise
        await self.repository.store(account_id, key, answer.status, answer.body, answer.headers)
        return answer

