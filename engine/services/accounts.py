"""Accounts: creation, login (argon2id, rate limits per account and per address), profile and
password changes, and the server-side web sessions that a login opens and a logout revokes.
Self-service by e-mail (password reset, e-mail change) is engine/services/selfservice.py's."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.adapters.db.accounts import AccountRepository
from engine.adapters.db.sessions import SessionRepository
from engine.config import Settings
from engine.domain import accounts as rules
from engine.domain.accounts import ROLES, Account
from engine.domain.errors import Forbidden, NotFound, RateLimited, ValidationError
from engine.domain.tokens import hash_secret
from engine.services.audit import AuditLog
from engine.services.housekeeping import Housekeeper
from engine.services.tokens import TokenService

log = logging.getLogger(__name__)

SESSION_IDLE_TIMEOUT = timedelta(minutes=30)
SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=12)
ANONYMOUS_SESSION_TIMEOUT = timedelta(hours=1)
HOUSEKEEPING_SECONDS = 600.0  # ended sessions and old login attempts are purged this often
ATTEMPTS_KEPT = timedelta(days=1)  # login attempts outlive the limits' window by far (the audit log keeps history)


@dataclass
class WebSession:
    """A live portal session as the web layer sees it."""

    token: str
    account_id: int | None
    data: dict[str, Any]
    created_at: datetime


class AccountService:
    """Accounts, their passwords and their portal sessions."""

    def __init__(self, settings: Settings, repository: AccountRepository, sessions: SessionRepository,
                 audit: AuditLog, tokens: TokenService) -> None:
        self.settings = settings
        self.repository = repository
        self.sessions = sessions
        self.audit = audit
        self.tokens = tokens
        self.hasher = PasswordHasher()  # argon2id with the library's recommended parameters
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        self._housekeeper = Housekeeper("accounts-housekeeping", HOUSEKEEPING_SECONDS, self.purge_sessions)

    async def _audit(self, action: str, account_id: int | None, address: str | None = None, **detail: Any) -> None:
        """Logins and account changes go to the audit log (engine/services/audit.py)."""
        await self.audit.record(action, account_id=account_id, address=address, detail=detail)

    async def _hash(self, plain: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, plain)

    async def _verify(self, password_hash: str, plain: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash, plain)
        except (VerificationError, InvalidHashError):
            return False

    # accounts
    async def create(self, phone: str, password: str, *, name: str = "", email: str | None = None,
                     language: str = "ru", role: str = "customer", admin: bool = False, **limits: Any) -> Account:
        phone = rules.account_phone(phone)
        rules.password(password, phone=phone)
        values: dict[str, Any] = {
            "name": rules.person_name(name), "email": rules.email(email), "language": rules.language(language)}
        if role not in ROLES:
            raise ValidationError("The role is customer or operator", "role")
        values["role"] = role
        if admin and role != "operator":
            raise ValidationError("Only an operator account can be an admin", "admin")
        if admin:
            values["admin"] = True
        for key, value in limits.items():
            if key not in ("max_participants", "max_concurrent_conferences", "max_dialouts_per_minute",
                           "max_concurrent_calls", "timezone"):
                raise ValidationError("Unknown account setting %(name)s", key, name=key)
            values[key] = value
        account = await self.repository.insert(phone, await self._hash(password), **values)
        if account is None:
            raise ValidationError("This account already exists", "phone")
        log.info("account %s created", account.id)
        return account

    async def authenticate(self, phone: str, password: str, *, address: str | None = None) -> Account:
        phone = rules.account_phone(phone)
        since = datetime.now(UTC) - rules.LOGIN_WINDOW
        if address is not None and await self.repository.failures_since(
                since, address=address) >= rules.LOGIN_FAILURES_PER_ADDRESS:
            raise RateLimited("Too many failed logins from this address; try again in 15 minutes")
        if await self.repository.failures_since(since, phone=phone) >= rules.LOGIN_FAILURES_PER_ACCOUNT:
            raise RateLimited("Too many failed logins for this account; try again in 15 minutes")
        found = await self.repository.by_phone(phone)
        if found is None:
            await self._verify(self._dummy_hash, password)  # same work whether or not the account exists
            await self.repository.record_attempt(phone, address, False)
            await self._audit("login.failed", None, address, phone=phone, why="unknown account")
            raise ValidationError("Wrong account or password", "password")
        account, password_hash = found
        if not await self._verify(password_hash, password or ""):
            await self.repository.record_attempt(phone, address, False)
            await self._audit("login.failed", account.id, address, why="wrong password")
            raise ValidationError("Wrong account or password", "password")
        if account.blocked:
            await self._audit("login.failed", account.id, address, why="blocked")
            raise Forbidden("This account is blocked; contact the operator")
        await self.repository.record_attempt(phone, address, True)
        await self._audit("login", account.id, address)
        if self.hasher.check_needs_rehash(password_hash):
            await self.repository.set_password_hash(account.id, await self._hash(password))
        return account

    async def get(self, account_id: int) -> Account:
        account = await self.repository.get(account_id)
        if account is None:
            raise NotFound("No such account")
        return account

    async def update_profile(self, account_id: int, **fields: Any) -> Account:
        values: dict[str, Any] = {key: rules.profile_value(key, value) for key, value in fields.items()}
        account = await self.repository.update(account_id, values)
        if account is None:
            raise NotFound("No such account")
        await self._audit("account.profile_updated", account_id, changed=sorted(values))
        return account

    async def set_admin(self, phone: str, admin: bool) -> Account:
        """Give or take an operator's admin flag (the CLI only: no web page or API sets it)."""
        account = await self.repository.set_admin(rules.account_phone(phone), admin)
        if account is None:
            raise NotFound("No operator account %(phone)s", phone=phone)
        await self._audit("account.admin_granted" if admin else "account.admin_revoked", account.id)
        return account

    async def set_limits(self, account_id: int, **limits: Any) -> Account:
        """Operator's knob: participant/conference/dial-out limits and blocking."""
        account = await self.repository.update(account_id, limits)
        if account is None:
            raise NotFound("No such account")
        return account

    async def change_password(self, account_id: int, old: str, new: str, *,
                              keep_session: str | None = None) -> None:
        """Changes the password and revokes every other session of the account."""
        password_hash = await self.repository.password_hash(account_id)
        if password_hash is None:
            raise NotFound("No such account")
        if not await self._verify(password_hash, old or ""):
            raise ValidationError("The current password is wrong", "old_password")
        rules.password(new, "new_password", phone=(await self.get(account_id)).phone)
        if new == old:
            raise ValidationError("The new password is the same as the current one", "new_password")
        await self.replace_password(account_id, new, keep_session=keep_session)
        await self._audit("account.password_changed", account_id)

    async def replace_password(self, account_id: int, new: str, *, keep_session: str | None = None) -> None:
        """Store a new (already checked) password and end every session but ``keep_session`` and
        every API token of the account."""
        await self.repository.set_password_hash(account_id, await self._hash(new))
        await self.sessions.revoke_account(account_id, keep=hash_secret(keep_session) if keep_session else None)
        await self.revoke_tokens(account_id)

    # web sessions
    async def load_session(self, token: str) -> WebSession | None:
        """The live session of a cookie value, or None when unknown, revoked, idle or expired."""
        if not token or len(token) > 100:
            return None
        stored = await self.sessions.get_live(hash_secret(token), datetime.now(UTC) - SESSION_IDLE_TIMEOUT)
        if stored is None:
            return None
        return WebSession(token, stored.account_id, stored.data, stored.created_at)

    async def save_session(self, token: str | None, account_id: int | None, data: dict[str, Any]) -> str:
        """Stores the session's data; a None token opens a new session. Returns the token."""
        if token is None:
            token = secrets.token_urlsafe(32)
        lifetime = SESSION_ABSOLUTE_TIMEOUT if account_id else ANONYMOUS_SESSION_TIMEOUT
        await self.sessions.upsert(hash_secret(token), account_id, data, datetime.now(UTC) + lifetime)
        return token

    async def revoke_session(self, token: str) -> None:
        await self.sessions.revoke(hash_secret(token))

    async def revoke_sessions(self, account_id: int) -> int:
        return await self.sessions.revoke_account(account_id)

    async def revoke_tokens(self, account_id: int) -> int:
        """Revoke the account's API tokens (a changed or reset password ends them all)."""
        return await self.tokens.revoke_all(account_id)

    async def purge_sessions(self) -> None:
        """Drop sessions ended a week ago and login attempts older than ATTEMPTS_KEPT."""
        now = datetime.now(UTC)
        await self.sessions.purge(now - timedelta(days=7))
        await self.repository.purge_attempts(now - ATTEMPTS_KEPT)

    async def start(self) -> None:
        await self._housekeeper.start()

    async def stop(self) -> None:
        await self._housekeeper.stop()

