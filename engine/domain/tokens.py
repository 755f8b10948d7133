"""API bearer tokens as the domain sees them: what a token is and how its secret is hashed."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

TOKEN_PREFIX = "veche_"
PREFIX_SHOWN = 12  # characters of the token kept in clear so a customer can tell tokens apart
MAX_LIFETIME_DAYS = 3650  # the longest expiry a token may be given


@dataclass(frozen=True)
class ApiToken:
    """A stored token: never its secret, only a hash and a recognisable prefix."""

    id: int
    account_id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Not revoked (whether it has expired is ``usable_at``'s question)."""
        return self.revoked_at is None

    def usable_at(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: the secret is shown once and then only its hash exists."""

    token: ApiToken
    secret: str


def new_secret() -> str:
    """A fresh bearer token with 256 bits from ``secrets``."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a token; the secret has full entropy, so a fast unsalted hash suffices."""
    return hashlib.sha256(secret.encode()).hexdigest()
