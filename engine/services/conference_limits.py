"""The account's limits and number plan applied to a conference plan or a new participant;
every refusal is reported to the toll-fraud guard. Shared by conference and series planning and
by live control."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.adapters.db.conferences import ConferenceRepository, OverLimit
from engine.domain.errors import Forbidden, LimitExceeded, NotFound, ValidationError
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.domain.numberplan import NumberPlan
from engine.domain.planning import AccountLimits, AccountRules, validate_participant, validate_plan
from engine.services.calls import now_utc
from engine.services.limit_guard import LimitGuard
from engine.services.numberplans import NumberPlans

START_IN_PAST_TOLERANCE = timedelta(seconds=60)
RULES_KEPT = 10_000  # accounts whose last-read rules are kept; beyond, the memory starts afresh


class PlanChecks:
    """Checks plans against the owner's account (limits, blocked, number-plan group)."""

    def __init__(self, repo: ConferenceRepository, plans: NumberPlans, guard: LimitGuard) -> None:
        self.repo = repo
        self.plans = plans
        self.guard = guard
        self._read: dict[int, AccountRules] = {}  # the rules last read of each account

    async def limits(self, owner_id: int) -> AccountLimits:
        """The account's limits; NotFound without the account, Forbidden when it is blocked."""
        return self._allowed(await self.repo.account_limits(owner_id))

    async def rules(self, owner_id: int) -> AccountRules:
        """The account's limits, number plan and language, read together (once per plan, one
        round trip) and kept for ``checked_as_read``; NotFound without the account, Forbidden
        when it is blocked."""
        self._read.pop(owner_id, None)
        row = await self.repo.account_limits(owner_id)
        limits = self._allowed(row)
        assert row is not None
        rules = AccountRules(limits, self.plans.of_account(row), row.get("language") or "ru", bool(row["blocked"]),
                             stamp=row["rules_stamp"])
        if len(self._read) >= RULES_KEPT:
            self._read.clear()
        self._read[owner_id] = rules
        return rules

    async def number_plan(self, owner_id: int) -> NumberPlan:
        """The account's number plan (the default plan without the account)."""
        return self.plans.of_account(await self.repo.account_limits(owner_id))

    @staticmethod
    def _allowed(row: dict | None) -> AccountLimits:
        if row is None:
            raise NotFound("no such account")
        if row["blocked"]:
            raise Forbidden("the account is blocked")
        return AccountLimits.from_row(row)

    @staticmethod
    def refuse_past_start(start: datetime) -> None:
        if start < now_utc() - START_IN_PAST_TOLERANCE:
            raise ValidationError("the start time is in the past", "start")

    def _limit_hit(self, owner_id: int | None, limit: str, detail: str) -> None:
        """Tell the toll-fraud guard (engine/services/operator.py) that an account was refused."""
        self.guard.hit(owner_id, limit, detail)

    async def checked_plan(self, owner_id: int, plan: ConferencePlan, rules: AccountRules) -> ConferencePlan:
        """validate_plan with the account's limits and number plan (``rules``); refusals are
        reported to the guard."""
        try:
            return validate_plan(plan, rules.limits, rules.number_plan)
        except LimitExceeded as exc:
            self._limit_hit(owner_id, "max_participants", str(exc))
            raise
        except ValidationError as exc:
            if (exc.field or "").endswith(".number"):
                self._limit_hit(owner_id, "number_plan", str(exc))
            raise

    async def checked_participant(self, owner_id: int, participant: ParticipantPlan) -> ParticipantPlan:
        """validate_participant with the account's number plan; a refused number is reported."""
        try:
            return validate_participant(participant, await self.number_plan(owner_id), "participant")
        except ValidationError as exc:
            if (exc.field or "").endswith(".number"):
                self._limit_hit(owner_id, "number_plan", str(exc))
            raise

    async def checked_as_read(self, owner_id: int, plan: ConferencePlan) -> tuple[ConferencePlan, AccountRules]:
        """``checked_plan`` against the rules as last read when they pass it (for a write that
        checks their stamp), else against the rules read now: a refusal, and the guard's
        report of it, always come from the rules as they are."""
        kept = self._read.get(owner_id)
        if kept is not None:
            try:
                return validate_plan(plan, kept.limits, kept.number_plan), kept
            except (LimitExceeded, ValidationError):
                pass  # perhaps refused by rules changed since: the current ones decide
        rules = await self.rules(owner_id)
        return await self.checked_plan(owner_id, plan, rules), rules

    def concurrency_refused(self, owner_id: int, exc: OverLimit) -> LimitExceeded:
        """The refusal of a plan over the account's concurrent conferences (checked atomically
        by the repository), reported to the guard."""
        self._limit_hit(owner_id, "max_concurrent_conferences", f"{exc.current} overlapping")
        return LimitExceeded("your account allows at most %(limit)d conferences at the same time", limit=exc.allowed)
