"""Keeps Asterisk's dial-out context equal to the number plan: rendered from the default
plan and the operator's number-plan groups at engine start and whenever a group changes, then
installed through the Asterisk control socket (the AMI user may not reload anything)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from engine.adapters.asterisk.contract import DIALOUT_CONTEXT
from engine.adapters.db.operator import OperatorRepository
from engine.domain.numberplan import DialoutRules, GroupRule, NumberPlan, dialout_rules

log = logging.getLogger(__name__)

DialplanSink = Callable[[str], None]  # installs the rendered context and reloads the dialplan
DialplanRenderer = Callable[[DialoutRules], str]  # the dial-out context of the rules


async def rules_from_groups(repo: OperatorRepository, default_plan: NumberPlan) -> DialoutRules:
    """The dial-out context's rules of ``default_plan`` and every number-plan group stored."""
    groups = [GroupRule(tuple(g["patterns"] or ()), bool(g["allow_international"]), bool(g["allow_premium"]))
              for g in await repo.list_groups()]
    return dialout_rules(default_plan, groups)


class DialplanService:
    """``sink`` is None where the engine cannot install a dialplan (an operator's own PBX)."""

    def __init__(self, repo: OperatorRepository, default_plan: NumberPlan, *, render: DialplanRenderer,
                 sink: DialplanSink | None) -> None:
        self.repo = repo
        self.default_plan = default_plan
        self.render = render
        self.sink = sink
        self.installed: DialoutRules | None = None  # the rules Asterisk runs now (None: unknown)
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        try:
            await self.sync("engine start")
        except Exception:  # noqa: BLE001 - Asterisk keeps the rendered plan without groups (narrower)
            log.exception("could not install the number plan's dialplan at start")

    async def rules(self) -> DialoutRules:
        """The dialplan rules of the default plan and every group in the database."""
        return await rules_from_groups(self.repo, self.default_plan)

    async def sync(self, reason: str) -> DialoutRules:
        """Render the dial-out context from the number plan and install it where the engine can;
        for an operator's own PBX, log what to render and reload."""
        async with self._lock:
            rules = await self.rules()
            if rules == self.installed:
                return rules
            if self.sink is None:
                log.warning("number plan changed (%s): render asterisk-config and run 'dialplan reload' on "
                            "the Asterisk node; %s should allow %s", reason, DIALOUT_CONTEXT, ", ".join(rules.allowed))
                return rules
            await asyncio.to_thread(self.sink, self.render(rules))
            self.installed = rules
            log.info("%s installed (%s): allowed %s; refused %s", DIALOUT_CONTEXT, reason, ", ".join(rules.allowed),
                     ", ".join(rules.refused) or "-")
            return rules

