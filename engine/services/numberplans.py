"""The dial-out number plan of each account (its number-plan group's, else the engine's default)
and the operator's management of the groups, which installs the matching dialplan in Asterisk."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from engine.adapters.db.operator import OperatorRepository
from engine.domain import text
from engine.domain.errors import NotFound, StateConflict, ValidationError
from engine.domain.numberplan import NumberPlan, validate_pattern
from engine.services.dialplan import DialplanService
from engine.services.operator_access import OperatorAccess

log = logging.getLogger(__name__)

MAX_PATTERNS = 50


class NumberPlans:
    """The dial-out plan of each account: its number-plan group's, else the engine's default."""

    def __init__(self, default: NumberPlan) -> None:
        self.default = default

    def of_account(self, limits: dict[str, Any] | None) -> NumberPlan:
        """The plan of the group an account's limits name (AccountRepository.limits; None: no
        such account, the default plan)."""
        if limits is None:
            return self.default
        return self.of_group({"patterns": limits["plan_patterns"],
                              "allow_international": limits["plan_allow_international"],
                              "allow_premium": limits["plan_allow_premium"]})

    def of_group(self, group: dict[str, Any]) -> NumberPlan:
        """The plan a number-plan group's row describes."""
        return self.default.for_group(tuple(group["patterns"] or ()),
                                      allow_international=group["allow_international"],
                                      allow_premium=group["allow_premium"])


class PlanGroupService:
    """The operator's number-plan groups: list, save, delete, and a test of one number."""

    def __init__(self, repo: OperatorRepository, access: OperatorAccess, plans: NumberPlans,
                 dialplan: DialplanService) -> None:
        self.repo = repo
        self.access = access
        self.plans = plans
        self.dialplan = dialplan

    async def list_groups(self, operator_id: int) -> list[dict[str, Any]]:
        await self.access.require(operator_id)
        return await self.repo.list_groups()

    async def get_group(self, operator_id: int, name: str) -> dict[str, Any]:
        await self.access.require(operator_id)
        group = await self.repo.get_group(name)
        if group is None:
            raise NotFound("no such number-plan group")
        return group

    async def save_group(self, operator_id: int, name: str, *, description: str = "",
                         patterns: list[str] | tuple[str, ...] = (), allow_international: bool = False,
                         allow_premium: bool = False) -> dict[str, Any]:
        """Create or replace a number-plan group: its dial patterns (empty: the default plan) and
        whether international and premium-rate destinations are allowed."""
        await self.access.require(operator_id)
        if not isinstance(name, str) or not name or len(name) > 40 or not all(
                ch.isascii() and (ch.islower() or ch.isdigit() or ch in "-_") for ch in name) or name[0] in "-_":
            raise ValidationError("the group name is 1 to 40 lower-case letters, digits, - or _", "name")
        description = text.one_line(description, "description", limit=200)
        if isinstance(patterns, str) or len(patterns) > MAX_PATTERNS:
            raise ValidationError("at most %(most)d patterns", "patterns", most=MAX_PATTERNS)
        checked = [validate_pattern(p, f"patterns[{i}]") for i, p in enumerate(patterns)]
        group = await self.repo.save_group(name, description, list(dict.fromkeys(checked)),
                                           bool(allow_international), bool(allow_premium))
        await self.access.record(operator_id, "plan_group.saved", group=name, patterns=group["patterns"],
                           allow_international=group["allow_international"], allow_premium=group["allow_premium"])
        await self._plan_changed(f"group {name} saved")
        return group

    async def delete_group(self, operator_id: int, name: str) -> None:
        await self.access.require(operator_id)
        if name == "default":
            raise StateConflict("the default group cannot be deleted")
        try:
            deleted = await self.repo.delete_group(name)
        except asyncpg.ForeignKeyViolationError:
            raise StateConflict("accounts still use this group; move them to another group first") from None
        if not deleted:
            raise NotFound("no such number-plan group")
        await self.access.record(operator_id, "plan_group.deleted", group=name)
        await self._plan_changed(f"group {name} deleted")

    async def _plan_changed(self, reason: str) -> None:
        """Bring Asterisk's veche-dialout context in line with the groups (engine/services/dialplan.py)."""
        try:
            await self.dialplan.sync(reason)
        except Exception:  # noqa: BLE001 - the group is saved; Asterisk keeps the narrower old plan
            log.exception("could not install the dialplan after %s", reason)

    async def check_number(self, operator_id: int, group: str, number: str) -> dict[str, Any]:
        """Would the group let an account dial ``number``? (the operator's test field)"""
        plan = self.plans.of_group(await self.get_group(operator_id, group))
        try:
            number = plan.validate(number)
        except ValidationError as exc:
            return {"number": number, "allowed": False, "reason": str(exc), "refusal": exc,
                    "kind": plan.classify(number) if number.isdigit() else "unknown"}
        return {"number": number, "allowed": True, "reason": "", "refusal": None, "kind": plan.classify(number)}
