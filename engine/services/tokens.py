"""API bearer tokens: issue (the secret is shown once, an optional expiry), authenticate a bearer,
list and revoke. Operators' integrations call the JSON API with these instead of a portal session.
Only a portal session or the CLI may issue a token (a token never mints another), and a password
change or reset revokes every token of the account."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from engine.adapters.db.accounts import AccountRepository
from engine.adapters.db.tokens import TokenRepository
from engine.domain import text
from engine.domain.accounts import Account, account_phone
from engine.domain.errors import Forbidden, NotFound, Unauthenticated, ValidationError
from engine.domain.tokens import (
    MAX_LIFETIME_DAYS,
    PREFIX_SHOWN,
    TOKEN_PREFIX,
    ApiToken,
    IssuedToken,
    hash_secret,
    new_secret,
)

_SECRET_SHAPE = re.compile(rf"^{TOKEN_PREFIX}[A-Za-z0-9_-]{{20,100}}$")


class TokenService:
    def __init__(self, repository: TokenRepository, accounts: AccountRepository) -> None:
        self._tokens = repository
        self._accounts = accounts

    async def issue(self, account_id: int, name: str = "", *, expires_in_days: int | None = None,
                    by_token: bool = False) -> IssuedToken:
        """A new token for the account; the returned secret is the only copy there will be.
        ``by_token``: the request itself came with a bearer token, which may not mint tokens."""
        if by_token:
            raise Forbidden("an API token cannot create tokens: use the portal or python -m engine token create")
        name = text.name(name)
        expires_at = None
        if expires_in_days is not None:
            if isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int) \
                    or not 1 <= expires_in_days <= MAX_LIFETIME_DAYS:
                raise ValidationError("a token expires in 1 to %(days)d days", "expires_in_days",
                                      days=MAX_LIFETIME_DAYS)
            expires_at = datetime.now(UTC) + timedelta(days=expires_in_days)
        secret = new_secret()
        token = await self._tokens.insert(account_id, name, hash_secret(secret), secret[:PREFIX_SHOWN], expires_at)
        return IssuedToken(token=token, secret=secret)

    async def issue_for_phone(self, phone: str, name: str = "", *, expires_in_days: int | None = None) -> IssuedToken:
        """Issue a token for the account with this phone login (the CLI's ``token create``)."""
        account_id = await self._accounts.id_by_phone(account_phone(phone))
        if account_id is None:
            raise NotFound("no account %(phone)s", phone=phone)
        return await self.issue(account_id, name, expires_in_days=expires_in_days)

    async def revoke_all(self, account_id: int) -> int:
        """Revoke every token of the account (after a password change or reset); how many."""
        return await self._tokens.revoke_account(account_id)

    async def authenticate(self, secret: str) -> Account:
        """The account a bearer token belongs to.
        Raises Unauthenticated for an unknown, revoked or expired token, Forbidden for a blocked account."""
        if not _SECRET_SHAPE.match(secret):
            raise Unauthenticated("invalid bearer token")
        found = await self._tokens.find_by_hash(hash_secret(secret))
        if found is None or not found[0].active:
            raise Unauthenticated("invalid or revoked bearer token")
        if not found[0].usable_at(datetime.now(UTC)):
            raise Unauthenticated("the bearer token has expired")
        token, blocked = found
        if blocked:
            raise Forbidden("the account is blocked")
        await self._tokens.touch(token.id)
        account = await self._accounts.get(token.account_id)
        if account is None:
            raise NotFound("No such account")
        return account

    async def list(self, owner_id: int) -> list[ApiToken]:
        return await self._tokens.list(owner_id)

    async def revoke(self, owner_id: int | None, token_id: int) -> ApiToken:
        """Revoke a token (idempotent); NotFound when it is not the owner's."""
        token = await self._tokens.get(token_id)
        if token is None or (owner_id is not None and token.account_id != owner_id):
            raise NotFound("no such token")
        revoked = await self._tokens.revoke(token_id)
        assert revoked is not None
        return revoked

