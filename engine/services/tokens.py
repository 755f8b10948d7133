"""API bearer tokens: issue (the secret is shown once), authenticate a bearer, list and revoke.
Operators' integrations call the JSON API with these instead of a portal session."""

from __future__ import annotations

import re

from engine.adapters.db.tokens import TokenRepository
from engine.domain.accounts import Account, account_phone
from engine.domain.errors import Forbidden, NotFound, Unauthenticated, ValidationError
from engine.domain.tokens import PREFIX_SHOWN, TOKEN_PREFIX, ApiToken, IssuedToken, hash_secret, new_secret
from engine.services.accounts import AccountService

_SECRET_SHAPE = re.compile(rf"^{TOKEN_PREFIX}[A-Za-z0-9_-]{{20,100}}$")
NAME_MAX = 100


class TokenService:
    def __init__(self, repository: TokenRepository, accounts: AccountService) -> None:
        self._tokens = repository
        self._accounts = accounts

    async def issue(self, account_id: int, name: str = "") -> IssuedToken:
        """A new token for the account; the returned secret is the only copy there will be."""
        name = name.strip()
        if len(name) > NAME_MAX or "\x00" in name:
            raise ValidationError(f"token name is at most {NAME_MAX} characters", field="name")
        secret = new_secret()
        token = await self._tokens.insert(account_id, name, hash_secret(secret), secret[:PREFIX_SHOWN])
        return IssuedToken(token=token, secret=secret)

    async def issue_for_phone(self, phone: str, name: str = "") -> IssuedToken:
        """Issue a token for the account with this phone login (the CLI's ``token create``)."""
        account_id = await self._tokens.account_id_by_phone(account_phone(phone))
        if account_id is None:
            raise NotFound(f"no account {phone}")
        return await self.issue(account_id, name)

    async def authenticate(self, secret: str) -> Account:
        """The account a bearer token belongs to.
        Raises Unauthenticated for an unknown or revoked token, Forbidden for a blocked account."""
        if not _SECRET_SHAPE.match(secret):
            raise Unauthenticated("invalid bearer token")
        found = await self._tokens.find_by_hash(hash_secret(secret))
        if found is None or not found[0].active:
            raise Unauthenticated("invalid or revoked bearer token")
        token, blocked = found
        if blocked:
            raise Forbidden("the account is blocked")
        await self._tokens.touch(token.id)
        return await self._accounts.get(token.account_id)

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

