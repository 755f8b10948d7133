"""Who may act as an operator, and the audit record of an operator's action: shared by the
operator's services (engine/services/operator.py, engine/services/numberplans.py)."""

from __future__ import annotations

from typing import Any

from engine.adapters.db.operator import OperatorRepository
from engine.domain.errors import Forbidden
from engine.services.audit import AuditLog


class OperatorAccess:
    """Every operator action starts with ``require`` and ends with ``record``."""

    def __init__(self, repo: OperatorRepository, audit: AuditLog) -> None:
        self.repo = repo
        self.audit = audit

    async def require(self, operator_id: int) -> dict[str, Any]:
        """The acting operator's account; Forbidden for anybody else (or a blocked operator)."""
        account = await self.repo.get_account(operator_id)
        if account is None or account["role"] != "operator" or account["blocked"]:
            raise Forbidden("only an operator may do this")
        return account

    async def record(self, operator_id: int, action: str, account_id: int | None = None,
                     conference_id: int | None = None, **detail: Any) -> None:
        await self.audit.record(action, actor=f"operator:{operator_id}", actor_id=operator_id,
                                account_id=account_id, conference_id=conference_id, detail=detail)
