"""Accounts: creation, login (argon2id, rate limits per account and per address), profile and
password changes, self-service by e-mail (password reset, confirmed e-mail change: one-time links
stored as hashes), and the server-side web sessions that a login opens and a logout revokes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.adapters.db.accounts import AccountLinkRepository, AccountRepository
from engine.adapters.db.sessions import SessionRepository
from engine.adapters.mail import SmtpMailer
from engine.config import Settings
from engine.domain import accounts as rules
from engine.domain.accounts import ROLES, Account
from engine.domain.errors import Forbidden, NotFound, RateLimited, ValidationError
from engine.domain.notifications import Recipient, RecipientRole, SmtpOutcome
from engine.services.audit import AuditLog
from engine.services.mail_messages import AccountLinkFacts, MailComposer, compose_account_link
from engine.services.tokens import TokenService

log = logging.getLogger(__name__)

SESSION_IDLE_TIMEOUT = timedelta(minutes=30)
SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=12)
ANONYMOUS_SESSION_TIMEOUT = timedelta(hours=1)
HOUSEKEEPING_SECONDS = 600.0  # ended sessions and old login attempts are purged this often
ATTEMPTS_KEPT = timedelta(days=1)  # login attempts outlive the limits' window by far (the audit log keeps history)
RESET_LINK_LIFETIME = timedelta(minutes=30)
EMAIL_LINK_LIFETIME = timedelta(minutes=30)
RESET_WINDOW = timedelta(hours=1)
RESET_REQUESTS_PER_ACCOUNT = 3  # more within the window send nothing (the answer stays the same)
RESET_REQUESTS_PER_ADDRESS = 10  # more within the window are refused (429), account or not
EMAIL_CHANGES_PER_ACCOUNT = 5
PASSWORD_RESET = "password_reset"
EMAIL_CHANGE = "email_change"


@dataclass
class WebSession:
    """A live portal session as the web layer sees it."""

    token: str
    account_id: int | None
    data: dict[str, Any]
    created_at: datetime


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _link_shape(secret: str) -> bool:
    """A link secret as issued: 43 URL-safe characters (anything else is not looked up)."""
    return isinstance(secret, str) and 20 <= len(secret) <= 100 and all(
        char.isascii() and (char.isalnum() or char in "-_") for char in secret)


class AccountService:
    def __init__(self, settings: Settings, repository: AccountRepository, sessions: SessionRepository,
                 links: AccountLinkRepository, audit: AuditLog, tokens: TokenService) -> None:
        self.settings = settings
        self.repository = repository
        self.links = links
        self.sessions = sessions
        self.audit = audit
        self.tokens = tokens
        self.hasher = PasswordHasher()  # argon2id with the library's recommended parameters
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        self._housekeeper: asyncio.Task[None] | None = None
        self._mail_tasks: set[asyncio.Task[None]] = set()

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
        await self.repository.set_password_hash(account_id, await self._hash(new))
        await self.sessions.revoke_account(account_id, keep=_token_hash(keep_session) if keep_session else None)
        await self.revoke_tokens(account_id)
        await self._audit("account.password_changed", account_id)

    # self-service by e-mail
    async def request_password_reset(self, phone: str, address: str | None) -> None:
        """Mail a one-time reset link to the account's address. The caller learns nothing about
        the account: the same return whether it exists, has an address or hit its own limit; only
        the per-address limit is visible (RateLimited), and it counts every request alike."""
        phone = rules.account_phone(phone)
        now = datetime.now(UTC)
        address = address or ""
        if await self.links.reset_requests_since(now - RESET_WINDOW, address=address) >= RESET_REQUESTS_PER_ADDRESS:
            raise RateLimited("Too many password reset requests from this address; try again later")
        found = await self.repository.by_phone(phone)
        account = found[0] if found is not None else None
        account_id = account.id if account is not None else None
        over = account_id is not None and await self.links.reset_requests_since(
            now - RESET_WINDOW, account_id=account_id) >= RESET_REQUESTS_PER_ACCOUNT
        await self.links.record_reset_request(account_id, address)
        if account is None or account.blocked or not account.email or over:
            await self._audit("password.reset_requested", account_id, address,
                              sent=False, why="unknown account" if account is None else
                              "blocked" if account.blocked else "no e-mail" if not account.email else "limit")
            return
        await self._audit("password.reset_requested", account.id, address, sent=True)
        secret = secrets.token_urlsafe(32)
        # The link is stored and mailed in the background: the answer takes as long as for an unknown account.
        self._send_link(account, account.email, PASSWORD_RESET, f"/password/reset/{secret}", RESET_LINK_LIFETIME,
                        store=(PASSWORD_RESET, _token_hash(secret), now + RESET_LINK_LIFETIME, None))

    async def reset_link_usable(self, secret: str) -> bool:
        """Whether the reset link still works (the page shows the form or says it does not)."""
        if not _link_shape(secret):
            return False
        return await self.links.usable(PASSWORD_RESET, _token_hash(secret), datetime.now(UTC)) is not None

    async def reset_password(self, secret: str, new: str, *, address: str | None = None) -> int:
        """Set a new password through a reset link, once; every session and API token of the
        account is revoked. Returns the account id."""
        rules.password(new, "new_password")  # a refused password leaves the link usable
        used = await self.links.consume(PASSWORD_RESET, _token_hash(secret), datetime.now(UTC)) \
            if _link_shape(secret) else None
        if used is None:
            raise ValidationError("This link is not valid: it was used already, it expired or it is wrong; "
                                  "ask for a new one", "link")
        account_id = used["account_id"]
        await self.repository.set_password_hash(account_id, await self._hash(new))
        await self.sessions.revoke_account(account_id)
        await self.revoke_tokens(account_id)
        await self._audit("account.password_reset", account_id, address)
        return account_id

    async def request_email_change(self, account_id: int, new_email: str) -> str:
        """Mail a one-time confirmation link to the new address; the account keeps its current
        address until the link is opened. Returns the checked address."""
        checked = rules.email(new_email)
        if checked is None:
            raise ValidationError("Enter a valid e-mail address", "email")
        account = await self.get(account_id)
        now = datetime.now(UTC)
        if await self.links.created_since(account.id, EMAIL_CHANGE, now - RESET_WINDOW) >= EMAIL_CHANGES_PER_ACCOUNT:
            raise RateLimited("Too many e-mail address changes; try again in an hour")
        secret = secrets.token_urlsafe(32)
        await self.links.create(account.id, EMAIL_CHANGE, _token_hash(secret), now + EMAIL_LINK_LIFETIME,
                                new_email=checked)
        await self._audit("account.email_change_requested", account.id)
        self._send_link(account, checked, EMAIL_CHANGE, f"/settings/email/{secret}", EMAIL_LINK_LIFETIME)
        return checked

    async def email_change_pending(self, secret: str) -> str | None:
        """The address a still-usable confirmation link would set, else None."""
        if not _link_shape(secret):
            return None
        found = await self.links.usable(EMAIL_CHANGE, _token_hash(secret), datetime.now(UTC))
        return found["new_email"] if found else None

    async def confirm_email_change(self, secret: str) -> Account:
        """Set the confirmed address, once."""
        used = await self.links.consume(EMAIL_CHANGE, _token_hash(secret), datetime.now(UTC), set_email=True) \
            if _link_shape(secret) else None
        if used is None:
            raise ValidationError("This link is not valid: it was used already, it expired or it is wrong", "link")
        await self._audit("account.email_changed", used["account_id"])
        return await self.get(used["account_id"])

    def _send_link(self, account: Account, to: str, purpose: str, path: str, lifetime: timedelta,
                   store: tuple[str, str, datetime, str | None] | None = None) -> None:
        """Send in the background (storing the link's hash first when ``store`` is given), so the
        answer takes as long whether or not mail goes out. The message is never stored: it holds
        the link's secret."""
        settings = self.settings
        facts = AccountLinkFacts(purpose=purpose, phone=account.phone, link=settings.portal_url + path,
                                 minutes=int(lifetime.total_seconds() // 60), language=account.language)

        async def send() -> None:
            try:
                if store is not None:
                    link_purpose, token_hash, expires_at, new_email = store
                    await self.links.create(account.id, link_purpose, token_hash, expires_at, new_email=new_email)
                composed = compose_account_link(MailComposer(settings.mail_from), facts,
                                                Recipient(to, RecipientRole.CHAIR, account.name))
                async with SmtpMailer(settings) as mailer:
                    result = await mailer.send(settings.mail_from, to, composed.raw)
            except Exception:  # noqa: BLE001 - a failed send is logged; the user can ask again
                log.exception("%s mail for account %s failed", purpose, account.id)
                return
            if result.outcome is SmtpOutcome.SENT:
                log.info("%s mail for account %s sent", purpose, account.id)
            else:
                log.warning("%s mail for account %s not sent: %s", purpose, account.id, result.reply)

        task = asyncio.create_task(send(), name=f"account-mail-{purpose}")
        self._mail_tasks.add(task)
        task.add_done_callback(self._mail_tasks.discard)

    # web sessions
    async def load_session(self, token: str) -> WebSession | None:
        """The live session of a cookie value, or None when unknown, revoked, idle or expired."""
        if not token or len(token) > 100:
            return None
        stored = await self.sessions.get_live(_token_hash(token), datetime.now(UTC) - SESSION_IDLE_TIMEOUT)
        if stored is None:
            return None
        return WebSession(token, stored.account_id, stored.data, stored.created_at)

    async def save_session(self, token: str | None, account_id: int | None, data: dict[str, Any]) -> str:
        """Stores the session's data; a None token opens a new session. Returns the token."""
        if token is None:
            token = secrets.token_urlsafe(32)
        lifetime = SESSION_ABSOLUTE_TIMEOUT if account_id else ANONYMOUS_SESSION_TIMEOUT
        await self.sessions.upsert(_token_hash(token), account_id, data, datetime.now(UTC) + lifetime)
        return token

    async def revoke_session(self, token: str) -> None:
        await self.sessions.revoke(_token_hash(token))

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
        await self.links.purge(now - ATTEMPTS_KEPT)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                await self.purge_sessions()
            except Exception:  # a database hiccup: try again next round
                log.exception("session purge failed")

    async def start(self) -> None:
        await self.purge_sessions()
        self._housekeeper = asyncio.create_task(self._housekeeping(), name="accounts-housekeeping")

    async def stop(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeper
            self._housekeeper = None
        if self._mail_tasks:  # let a link being sent reach the server
            await asyncio.wait(list(self._mail_tasks), timeout=self.settings.smtp_timeout + 5)

