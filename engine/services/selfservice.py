"""Account self-service by e-mail: password reset and confirmed e-mail change, each through a
one-time link stored as a hash and mailed in the background, so an answer never tells whether
an account exists."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.adapters.db.accounts import AccountLinkRepository, AccountRepository
from engine.adapters.mail import SmtpMailer
from engine.config import Settings
from engine.domain import accounts as rules
from engine.domain.accounts import Account
from engine.domain.errors import RateLimited, ValidationError
from engine.domain.notifications import Recipient, RecipientRole, SmtpOutcome
from engine.domain.tokens import hash_secret
from engine.services.accounts import ATTEMPTS_KEPT, HOUSEKEEPING_SECONDS, AccountService
from engine.services.audit import AuditLog
from engine.services.housekeeping import Housekeeper
from engine.services.mail_messages import AccountLinkFacts, MailComposer, compose_account_link

log = logging.getLogger(__name__)

RESET_LINK_LIFETIME = timedelta(minutes=30)
EMAIL_LINK_LIFETIME = timedelta(minutes=30)
RESET_WINDOW = timedelta(hours=1)
RESET_REQUESTS_PER_ACCOUNT = 3  # more within the window send nothing (the answer stays the same)
RESET_REQUESTS_PER_ADDRESS = 10  # more within the window are refused (429), account or not
EMAIL_CHANGES_PER_ACCOUNT = 5
PASSWORD_RESET = "password_reset"
EMAIL_CHANGE = "email_change"


def _link_shape(secret: str) -> bool:
    """A link secret as issued: 43 URL-safe characters (anything else is not looked up)."""
    return isinstance(secret, str) and 20 <= len(secret) <= 100 and all(
        char.isascii() and (char.isalnum() or char in "-_") for char in secret)


class AccountSelfService:
    """What an account holder does by e-mail; the passwords and accounts themselves are the
    account service's."""

    def __init__(self, settings: Settings, repository: AccountRepository, links: AccountLinkRepository,
                 accounts: AccountService, audit: AuditLog) -> None:
        self.settings = settings
        self.repository = repository
        self.links = links
        self.accounts = accounts
        self.audit = audit
        self._housekeeper = Housekeeper("selfservice-housekeeping", HOUSEKEEPING_SECONDS, self.purge_links)
        self._mail_tasks: set[asyncio.Task[None]] = set()

    async def _audit(self, action: str, account_id: int | None, address: str | None = None, **detail: Any) -> None:
        await self.audit.record(action, account_id=account_id, address=address, detail=detail)

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
                        store=(PASSWORD_RESET, hash_secret(secret), now + RESET_LINK_LIFETIME, None))

    async def reset_link_usable(self, secret: str) -> bool:
        """Whether the reset link still works (the page shows the form or says it does not)."""
        if not _link_shape(secret):
            return False
        return await self.links.usable(PASSWORD_RESET, hash_secret(secret), datetime.now(UTC)) is not None

    async def reset_password(self, secret: str, new: str, *, address: str | None = None) -> int:
        """Set a new password through a reset link, once; every session and API token of the
        account is revoked. Returns the account id."""
        rules.password(new, "new_password")  # a refused password leaves the link usable
        used = await self.links.consume(PASSWORD_RESET, hash_secret(secret), datetime.now(UTC)) \
            if _link_shape(secret) else None
        if used is None:
            raise ValidationError("This link is not valid: it was used already, it expired or it is wrong; "
                                  "ask for a new one", "link")
        account_id = used["account_id"]
        await self.accounts.replace_password(account_id, new)
        await self._audit("account.password_reset", account_id, address)
        return account_id

    async def request_email_change(self, account_id: int, new_email: str) -> str:
        """Mail a one-time confirmation link to the new address; the account keeps its current
        address until the link is opened. Returns the checked address."""
        checked = rules.email(new_email)
        if checked is None:
            raise ValidationError("Enter a valid e-mail address", "email")
        account = await self.accounts.get(account_id)
        now = datetime.now(UTC)
        if await self.links.created_since(account.id, EMAIL_CHANGE, now - RESET_WINDOW) >= EMAIL_CHANGES_PER_ACCOUNT:
            raise RateLimited("Too many e-mail address changes; try again in an hour")
        secret = secrets.token_urlsafe(32)
        await self.links.create(account.id, EMAIL_CHANGE, hash_secret(secret), now + EMAIL_LINK_LIFETIME,
                                new_email=checked)
        await self._audit("account.email_change_requested", account.id)
        self._send_link(account, checked, EMAIL_CHANGE, f"/settings/email/{secret}", EMAIL_LINK_LIFETIME)
        return checked

    async def email_change_pending(self, secret: str) -> str | None:
        """The address a still-usable confirmation link would set, else None."""
        if not _link_shape(secret):
            return None
        found = await self.links.usable(EMAIL_CHANGE, hash_secret(secret), datetime.now(UTC))
        return found["new_email"] if found else None

    async def confirm_email_change(self, secret: str) -> Account:
        """Set the confirmed address, once."""
        used = await self.links.consume(EMAIL_CHANGE, hash_secret(secret), datetime.now(UTC), set_email=True) \
            if _link_shape(secret) else None
        if used is None:
            raise ValidationError("This link is not valid: it was used already, it expired or it is wrong", "link")
        await self._audit("account.email_changed", used["account_id"])
        return await self.accounts.get(used["account_id"])

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

    async def purge_links(self) -> None:
        """Drop links that ended longer ago than ATTEMPTS_KEPT."""
        await self.links.purge(datetime.now(UTC) - ATTEMPTS_KEPT)

    async def start(self) -> None:
        await self._housekeeper.start()

    async def stop(self) -> None:
        await self._housekeeper.stop()
        if self._mail_tasks:  # let a link being sent reach the server
            await asyncio.wait(list(self._mail_tasks), timeout=self.settings.smtp_timeout + 5)
