"""Token buckets: how many requests a key (an account, a token) may make per minute, with a burst
of the same size; pure (the caller passes the clock)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

MAX_KEYS = 10000  # buckets kept in memory; full (idle) buckets are dropped first


@dataclass
class TokenBuckets:
    per_minute: int
    burst: int | None = None
    _buckets: dict[Hashable, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    @property
    def capacity(self) -> float:
        return float(self.burst if self.burst is not None else self.per_minute)

    def take(self, key: Hashable, now: float) -> float:
        """0.0 when ``key`` may go ahead now (one token taken), else the seconds until it may."""
        rate = self.per_minute / 60.0
        tokens, at = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate if rate > 0 else 60.0
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > MAX_KEYS:
            self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        rate = self.per_minute / 60.0
        for key, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * rate >= self.capacity:
                del self._buckets[key]
