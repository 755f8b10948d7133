"""The operator's service: customer accounts (create, limits, number-plan group, block, delete,
password reset), number-plan groups, every running conference with the load of its Asterisk node,
the audit log, and the toll-fraud guard that alerts when an account keeps hitting its limits.
Every method takes the acting operator's account id and refuses anybody else; another operator's
account is managed only by an operator with the admin flag (set with ``python -m engine account``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from engine.adapters.ami import AmiAdapter
from engine.adapters.db.operator import OperatorRepository
from engine.domain import accounts as account_rules
from engine.domain import text
from engine.domain.errors import AmiError, Forbidden, NotFound, StateConflict, ValidationError
from engine.domain.model import Conference
from engine.domain.numberplan import NumberPlan, validate_pattern
from engine.metrics import VecheMetrics
from engine.services.accounts import AccountService
from engine.services.audit import AuditLog, acting
from engine.services.dialplan import DialplanService

log = logging.getLogger(__name__)

MAX_PATTERNS = 50
# Toll-fraud guard: this many refused actions of one account and kind within the window raise an alert.
ALERT_THRESHOLD = 5
ALERT_WINDOW_SECONDS = 600.0


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


class NumberPlans:
    """The dial-out plan of each account: its number-plan group's, else the engine's default."""

    def __init__(self, repo: OperatorRepository, default: NumberPlan) -> None:
        self.repo = repo
        self.default = default

    async def for_account(self, account_id: int | None) -> NumberPlan:
        """The plan of the account's group (the default plan when the group has no patterns and
        allows nothing extra, or for the operator's own actions)."""
        if account_id is None:
            return self.default
        group = await self.repo.group_of_account(account_id)
        if group is None:
            return self.default
        return self.default.for_group(tuple(group["patterns"] or ()),
                                      allow_international=group["allow_international"],
                                      allow_premium=group["allow_premium"])


class LimitGuard:
    """Counts refused actions per account and kind of limit (number plan, dial-outs per minute,
    participants, concurrent conferences) in a sliding window; the ALERT_THRESHOLD-th hit within
    ALERT_WINDOW_SECONDS logs a warning, counts veche_account_limit_alerts and is audited, once per
    window. Synchronous, so any service can report a hit where it refuses."""

    def __init__(self, metrics: VecheMetrics, audit: AuditLog, threshold: int = ALERT_THRESHOLD,
                 window: float = ALERT_WINDOW_SECONDS) -> None:
        self.metrics = metrics
        self.audit = audit
        self.threshold = threshold
        self.window = window
        self._hits: dict[tuple[int, str], deque[float]] = defaultdict(deque)
        self._alerted_at: dict[tuple[int, str], float] = {}
        self.alerts: list[dict[str, Any]] = []  # the latest alerts, newest last (kept short)

    def hit(self, account_id: int | None, limit: str, detail: str = "") -> bool:
        """Record one refusal; True when it raised an alert."""
        if account_id is None:
            return False
        self.metrics.limit_hits.labels(limit).inc()
        now = time.monotonic()
        key = (account_id, limit)
        hits = self._hits[key]
        hits.append(now)
        while hits and hits[0] < now - self.window:
            hits.popleft()
        last_alert = self._alerted_at.get(key)
        if len(hits) < self.threshold or (last_alert is not None and last_alert > now - self.window):
            return False
        self._alerted_at[key] = now
        log.warning("toll-fraud guard: account %s hit its %s limit %d times within %d s (last: %s)",
                    account_id, limit, len(hits), int(self.window), detail or "-")
        self.alert(account_id, limit, detail, hits=len(hits))
        return True

    def alert(self, account_id: int, limit: str, detail: str, hits: int = 1) -> None:
        """Show an alert on the operator's dashboard, count it and audit it."""
        self.metrics.limit_alerts.labels(limit).inc()
        alert = {"account_id": account_id, "limit": limit, "hits": hits, "window_seconds": int(self.window),
                 "last": detail}
        self.alerts = [*self.alerts[-99:], alert]
        self.audit.record_soon("guard.alert", actor="engine", account_id=account_id, detail=alert)


class OperatorService:
    """What an operator (accounts.role = 'operator') may do; see the module docstring."""

    def __init__(self, repo: OperatorRepository, *, nodes: Mapping[str, AmiAdapter], accounts: AccountService,
                 conferences: ConferenceEnder, audit: AuditLog, guard: LimitGuard, plans: NumberPlans,
                 dialplan: DialplanService) -> None:
        self.dialplan = dialplan
        self.repo = repo
        self.nodes = nodes
        self.accounts = accounts
        self.conferences = conferences
        self.audit = audit
        self.guard = guard
        self.plans = plans
        self.default_plan = plans.default

    # ----------------------------------------------------------------- helpers

    async def _operator(self, operator_id: int) -> dict[str, Any]:
        """The acting operator's account; Forbidden for anybody else (or a blocked operator)."""
        account = await self.repo.get_account(operator_id)
        if account is None or account["role"] != "operator" or account["blocked"]:
            raise Forbidden("only an operator may do this")
        return account

    async def _record(self, operator_id: int, action: str, account_id: int | None = None,
                      conference_id: int | None = None, **detail: Any) -> None:
        await self.audit.record(action, actor=f"operator:{operator_id}", actor_id=operator_id,
                                account_id=account_id, conference_id=conference_id, detail=detail)

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
        await self._operator(operator_id)
        return await self.repo.list_accounts((search or "").strip()[:100], max(1, min(limit, 1000)),
                                             max(0, offset))

    async def get_account(self, operator_id: int, account_id: int) -> dict[str, Any]:
        await self._operator(operator_id)
        return await self._customer(account_id)

    async def create_account(self, operator_id: int, phone: str, password: str, **fields: Any) -> dict[str, Any]:
        """A customer account with its initial password, limits and number-plan group."""
        await self._operator(operator_id)
        values = await self._account_values(fields)
        later = {key: values.pop(key) for key in ("plan_group", "recording_allowed") if key in values}
        profile = {key: values.pop(key) for key in ("name", "email", "language") if key in values}
        account = await self.accounts.create(phone, password, role="customer", **profile, **values)
        if later:
            await self.repo.update_account(account.id, later)
        created = await self._customer(account.id)
        await self._record(operator_id, "account.created", account.id, phone=created["phone"],
                           **{k: created[k] for k in (*account_rules.LIMIT_RANGES, "plan_group", "recording_allowed")})
        return created

    async def update_account(self, operator_id: int, account_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a customer's profile fields, limits or number-plan group."""
        actor = await self._operator(operator_id)
        self._may_manage(actor, await self._customer(account_id))
        values = await self._account_values(changes)
        updated = await self.repo.update_account(account_id, values)
        if updated is None:
            raise NotFound("no such account")
        await self._record(operator_id, "account.updated", account_id, changed=sorted(values),
                           **{k: updated[k] for k in values
                              if k in (*account_rules.LIMIT_RANGES, "plan_group", "recording_allowed")})
        return updated

    async def set_blocked(self, operator_id: int, account_id: int, blocked: bool) -> dict[str, Any]:
        """Block (no login, no API token, no conference starts, running ones end) or unblock."""
        actor = await self._operator(operator_id)
        if account_id == operator_id:
            raise StateConflict("an operator cannot block their own account")
        self._may_manage(actor, await self._customer(account_id))
        updated = await self.repo.update_account(account_id, {"blocked": blocked})
        assert updated is not None
        ended: list[int] = []
        if blocked:
            await self.accounts.revoke_sessions(account_id)
            ended = await self._end_running(operator_id, account_id)
        await self._record(operator_id, "account.blocked" if blocked else "account.unblocked", account_id,
                           ended_conferences=ended)
        return updated

    async def reset_password(self, operator_id: int, account_id: int, password: str) -> None:
        """Set a new password (checked like any other) and end the account's sessions."""
        actor = await self._operator(operator_id)
        target = await self._customer(account_id)
        self._may_manage(actor, target)
        account_rules.password(password, "password", phone=target.get("phone"))
        accounts = self.accounts
        await self.repo.set_password_hash(account_id, await asyncio.to_thread(accounts.hasher.hash, password))
        await accounts.revoke_sessions(account_id)
        await accounts.revoke_tokens(account_id)
        await self._record(operator_id, "account.password_reset", account_id)

    async def delete_account(self, operator_id: int, account_id: int) -> None:
        """Delete a customer account with its conferences, address book and tokens (running
        conferences are ended first, so nobody stays on the line)."""
        actor = await self._operator(operator_id)
        if account_id == operator_id:
            raise StateConflict("an operator cannot delete their own account")
        account = await self._customer(account_id)
        self._may_manage(actor, account)
        ended = await self._end_running(operator_id, account_id)
        if not await self.repo.delete_account(account_id):
            raise NotFound("no such account")
        await self._record(operator_id, "account.deleted", account_id, phone=account["phone"],
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
        await self._operator(operator_id)
        return await self.repo.running_conferences()

    async def node_load(self, operator_id: int) -> list[NodeLoad]:
        """Per Asterisk node: AMI link, channels up (CoreShowChannels), running conferences and
        connected participants."""
        await self._operator(operator_id)
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
        await self._operator(operator_id)
        with acting(actor=f"operator:{operator_id}", actor_id=operator_id):
            return await self.conferences.end(None, conference_id)

    # ----------------------------------------------------------------- number-plan groups

    async def list_groups(self, operator_id: int) -> list[dict[str, Any]]:
        await self._operator(operator_id)
        return await self.repo.list_groups()

    async def get_group(self, operator_id: int, name: str) -> dict[str, Any]:
        await self._operator(operator_id)
        group = await self.repo.get_group(name)
        if group is None:
            raise NotFound("no such number-plan group")
        return group

    async def save_group(self, operator_id: int, name: str, *, description: str = "",
                         patterns: list[str] | tuple[str, ...] = (), allow_international: bool = False,
                         allow_premium: bool = False) -> dict[str, Any]:
        """Create or replace a number-plan group: its dial patterns (empty: the default plan) and
        whether international and premium-rate destinations are allowed."""
        await self._operator(operator_id)
        if not isinstance(name, str) or not name or len(name) > 40 or not all(
                ch.isascii() and (ch.islower() or ch.isdigit() or ch in "-_") for ch in name) or name[0] in "-_":
            raise ValidationError("the group name is 1 to 40 lower-case letters, digits, - or _", "name")
        description = text.one_line(description, "description", limit=200)
        if isinstance(patterns, str) or len(patterns) > MAX_PATTERNS:
            raise ValidationError("at most %(most)d patterns", "patterns", most=MAX_PATTERNS)
        checked = [validate_pattern(p, f"patterns[{i}]") for i, p in enumerate(patterns)]
        group = await self.repo.save_group(name, description, list(dict.fromkeys(checked)),
                                           bool(allow_international), bool(allow_premium))
        await self._record(operator_id, "plan_group.saved", group=name, patterns=group["patterns"],
                           allow_international=group["allow_international"], allow_premium=group["allow_premium"])
        await self._plan_changed(f"group {name} saved")
        return group

    async def delete_group(self, operator_id: int, name: str) -> None:
        await self._operator(operator_id)
        if name == "default":
            raise StateConflict("the default group cannot be deleted")
        try:
            deleted = await self.repo.delete_group(name)
        except asyncpg.ForeignKeyViolationError:
            raise StateConflict("accounts still use this group; move them to another group first") from None
        if not deleted:
            raise NotFound("no such number-plan group")
        await self._record(operator_id, "plan_group.deleted", group=name)
        await self._plan_changed(f"group {name} deleted")

    async def _plan_changed(self, reason: str) -> None:
        """Bring Asterisk's veche-dialout context in line with the groups (engine/services/dialplan.py)."""
        try:
            await self.dialplan.sync(reason)
        except Exception:  # noqa: BLE001 - the group is saved; Asterisk keeps the narrower old plan
            log.exception("could not install the dialplan after %s", reason)

    async def number_plan_for(self, account_id: int | None) -> NumberPlan:
        """The dial-out plan of the account's group (the engine's default plan when the group has
        no patterns and allows nothing extra)."""
        return await self.plans.for_account(account_id)

    async def check_number(self, operator_id: int, group: str, number: str) -> dict[str, Any]:
        """Would the group let an account dial ``number``? (the operator's test field)"""
        found = await self.get_group(operator_id, group)
        plan = self.default_plan.for_group(tuple(found["patterns"] or ()),
                                           allow_international=found["allow_international"],
                                           allow_premium=found["allow_premium"])
        try:
            number = plan.validate(number)
        except ValidationError as exc:
            return {"number": number, "allowed": False, "reason": str(exc), "refusal": exc,
                    "kind": plan.classify(number) if number.isdigit() else "unknown"}
        return {"number": number, "allowed": True, "reason": "", "refusal": None, "kind": plan.classify(number)}

    # ----------------------------------------------------------------- audit

    async def audit_log(self, operator_id: int, *, account_id: int | None = None, action: str = "",
                        limit: int = 200, before_id: int | None = None) -> list[dict[str, Any]]:
        await self._operator(operator_id)
        return await self.audit.entries(account_id=account_id, action=(action or "").strip()[:64], limit=limit,
                                        before_id=before_id)

