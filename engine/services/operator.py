"""The operator's service: customer accounts (create, limits, number-plan group, block, delete,
password reset), every running conference with the load of its Asterisk node, and the audit log.
Number-plan groups are engine/services/numberplans.py's, the toll-fraud guard's alerts
engine/services/limit_guard.py's. Every method takes the acting operator's account id and refuses
anybody else; another operator's account is managed only by an operator with the admin flag (set
with ``python -m engine account``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from engine.adapters.asterisk import MediaNode
from engine.adapters.db.operator import OperatorRepository
from engine.domain import accounts as account_rules
from engine.domain.errors import AmiError, Forbidden, NotFound, StateConflict, ValidationError
from engine.domain.model import Conference
from engine.services.accounts import AccountService
from engine.services.audit import AuditLog, acting
from engine.services.operator_access import OperatorAccess

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class NodeLoad:
    """One Asterisk node as the operator's dashboard shows it."""

    node_id: str
    connected: bool
    channels: int | None  # None when the node cannot be asked
    conferences: int
    participants: int


def _int_in(value: Any, name: str) -> int:
    low, high = account_rules.LIMIT_RANGES[name]
    if isinstance(value, bool):
        raise ValidationError("Enter a number from %(low)d to %(high)d", name, low=low, high=high)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError("Enter a number from %(low)d to %(high)d", name, low=low, high=high) from None
    if not low <= number <= high:
        raise ValidationError("Enter a number from %(low)d to %(high)d", name, low=low, high=high)
    return number


class ConferenceEnder(Protocol):
    """What the operator needs of the conference service (which itself reports to the guard)."""

    async def end(self, owner_id: int | None, conference_id: int) -> Conference: ...


class OperatorService:
    """What an operator (accounts.role = 'operator') may do; see the module docstring."""

    def __init__(self, repo: OperatorRepository, access: OperatorAccess, *, nodes: Mapping[str, MediaNode],
                 accounts: AccountService, conferences: ConferenceEnder, audit: AuditLog) -> None:
        self.repo = repo
        self.access = access
        self.nodes = nodes
        self.accounts = accounts
        self.conferences = conferences
        self.audit = audit

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _may_manage(actor: dict[str, Any], target: dict[str, Any]) -> None:
        """Another operator's account is managed only by an operator with the admin flag."""
        if target["role"] == "operator" and target["id"] != actor["id"] and not actor.get("admin"):
            raise Forbidden("only an admin operator may block, reset or delete another operator")

    async def _customer(self, account_id: int) -> dict[str, Any]:
        account = await self.repo.get_account(account_id)
        if account is None:
            raise NotFound("no such account")
        return account

    async def _account_values(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Operator-editable account fields, checked."""
        values: dict[str, Any] = {}
        for key, value in changes.items():
            if key in account_rules.LIMIT_RANGES:
                values[key] = _int_in(value, key)
            elif key in ("name", "email", "language"):
                values[key] = account_rules.profile_value(key, value)
            elif key == "recording_allowed":
                if not isinstance(value, bool):
                    raise ValidationError("recording_allowed must be true or false", key)
                values[key] = value
            elif key == "plan_group":
                if not isinstance(value, str) or await self.repo.get_group(value) is None:
                    raise ValidationError("no such number-plan group", "plan_group")
                values[key] = value
            else:
                raise ValidationError("the operator cannot change %(name)s", key, name=key)
        return values

    # ----------------------------------------------------------------- accounts

    async def list_accounts(self, operator_id: int, search: str = "", limit: int = 200,
                            offset: int = 0) -> list[dict[str, Any]]:
        await self.access.require(operator_id)
        return await self.repo.list_accounts((search or "").strip()[:100], max(1, min(limit, 1000)),
                                             max(0, offset))

    async def get_account(self, operator_id: int, account_id: int) -> dict[str, Any]:
        await self.access.require(operator_id)
        return await self._customer(account_id)

    async def create_account(self, operator_id: int, phone: str, password: str, **fields: Any) -> dict[str, Any]:
        """A customer account with its initial password, limits and number-plan group."""
        await self.access.require(operator_id)
        values = await self._account_values(fields)
        later = {key: values.pop(key) for key in ("plan_group", "recording_allowed") if key in values}
        profile = {key: values.pop(key) for key in ("name", "email", "language") if key in values}
        account = await self.accounts.create(phone, password, role="customer", **profile, **values)
        if later:
            await self.repo.update_account(account.id, later)
        created = await self._customer(account.id)
        await self.access.record(operator_id, "account.created", account.id, phone=created["phone"],
                           **{k: created[k] for k in (*account_rules.LIMIT_RANGES, "plan_group", "recording_allowed")})
        return created

    async def update_account(self, operator_id: int, account_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a customer's profile fields, limits or number-plan group."""
        actor = await self.access.require(operator_id)
        self._may_manage(actor, await self._customer(account_id))
        values = await self._account_values(changes)
        updated = await self.repo.update_account(account_id, values)
        if updated is None:
            raise NotFound("no such account")
        await self.access.record(operator_id, "account.updated", account_id, changed=sorted(values),
                           **{k: updated[k] for k in values
                              if k in (*account_rules.LIMIT_RANGES, "plan_group", "recording_allowed")})
        return updated

    async def set_blocked(self, operator_id: int, account_id: int, blocked: bool) -> dict[str, Any]:
        """Block (no login, no API token, no conference starts, running ones end) or unblock."""
        actor = await self.access.require(operator_id)
        if account_id == operator_id:
            raise StateConflict("an operator cannot block their own account")
        self._may_manage(actor, await self._customer(account_id))
        updated = await self.repo.update_account(account_id, {"blocked": blocked})
        assert updated is not None
        ended: list[int] = []
        if blocked:
            await self.accounts.revoke_sessions(account_id)
            ended = await self._end_running(operator_id, account_id)
        await self.access.record(operator_id, "account.blocked" if blocked else "account.unblocked", account_id,
                           ended_conferences=ended)
        return updated

    async def reset_password(self, operator_id: int, account_id: int, password: str) -> None:
        """Set a new password (checked like any other) and end the account's sessions."""
        actor = await self.access.require(operator_id)
        target = await self._customer(account_id)
        self._may_manage(actor, target)
        account_rules.password(password, "password", phone=target.get("phone"))
        await self.accounts.replace_password(account_id, password)
        await self.access.record(operator_id, "account.password_reset", account_id)

    async def delete_account(self, operator_id: int, account_id: int) -> None:
        """Delete a customer account with its conferences, address book and tokens (running
        conferences are ended first, so nobody stays on the line)."""
        actor = await self.access.require(operator_id)
        if account_id == operator_id:
            raise StateConflict("an operator cannot delete their own account")
        account = await self._customer(account_id)
        self._may_manage(actor, account)
        ended = await self._end_running(operator_id, account_id)
        if not await self.repo.delete_account(account_id):
            raise NotFound("no such account")
        await self.access.record(operator_id, "account.deleted", account_id, phone=account["phone"],
                           ended_conferences=ended)

    async def _end_running(self, operator_id: int, account_id: int) -> list[int]:
        ended: list[int] = []
        with acting(actor=f"operator:{operator_id}", actor_id=operator_id):
            for conference_id in await self.repo.account_conferences(account_id, ("running",)):
                with contextlib.suppress(StateConflict, NotFound):
                    await self.conferences.end(None, conference_id)
                    ended.append(conference_id)
        return ended

    # ----------------------------------------------------------------- running conferences

    async def running_conferences(self, operator_id: int) -> list[dict[str, Any]]:
        """Every running conference of every account, with owner and participant counts."""
        await self.access.require(operator_id)
        return await self.repo.running_conferences()

    async def node_load(self, operator_id: int) -> list[NodeLoad]:
        """Per Asterisk node: AMI link, channels up (CoreShowChannels), running conferences and
        connected participants."""
        await self.access.require(operator_id)
        running = await self.repo.running_conferences()
        loads = []
        for node_id, adapter in sorted(self.nodes.items()):
            channels: int | None = None
            if adapter.connected:
                try:
                    channels = await asyncio.wait_for(adapter.channel_count(), 5.0)
                except (AmiError, TimeoutError) as exc:
                    log.info("node %s: no channel count: %s", node_id, exc)
            mine = [c for c in running if c["node_id"] == node_id]
            loads.append(NodeLoad(node_id, adapter.connected, channels, len(mine),
                                  sum(c["connected"] for c in mine)))
        return loads

    async def end_conference(self, operator_id: int, conference_id: int) -> Conference:
        """End any running conference (conferences service ``end(None, id)``)."""
        await self.access.require(operator_id)
        with acting(actor=f"operator:{operator_id}", actor_id=operator_id):
            return await self.conferences.end(None, conference_id)

    # ----------------------------------------------------------------- audit

    async def audit_log(self, operator_id: int, *, account_id: int | None = None, action: str = "",
                        limit: int = 200, before_id: int | None = None) -> list[dict[str, Any]]:
        await self.access.require(operator_id)
        return await self.audit.entries(account_id=account_id, action=(action or "").strip()[:64], limit=limit,
                                        before_id=before_id)

