"""Schemathesis against /api/v1/openapi.json served by the real application (engine on the real
Postgres and Asterisk): no generated request may get a 5xx answer. Run twice, bounded: as a
customer over every customer operation, and as an operator over the operator's operations that
cannot disturb other tests' accounts (no block, delete, password reset, end or account change)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.support.api import new_user
from tests.support.portal import PASSWORD, random_account_phone

pytestmark = pytest.mark.stack

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CUSTOMER_EXCLUDED = ("revoke_token",)  # revoking the run's own token would leave only 401s to test
OPERATOR_INCLUDED = ("operator_list_accounts", "operator_create_account", "operator_get_account",
                     "operator_running_conferences", "operator_list_plan_groups", "operator_save_plan_group",
                     "operator_delete_plan_group", "operator_audit_log")


async def schemathesis(url: str, token: str, workdir: Path, *selection: str, max_examples: int = 10,
                       max_time: int = 25) -> tuple[int, str]:
    """One bounded, seeded run. One worker: on CPython 3.11 two threads parsing source at once
    (hypothesis describing a lambda) can raise 'AST constructor recursion depth mismatch'."""
    if not SCHEMATHESIS.exists():
        pytest.fail(f"schemathesis is not installed next to {sys.executable}: pip install -e '.[test]'")
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", url, "-H", f"Authorization: Bearer {token}", "--checks", "not_a_server_error",
        "--max-examples", str(max_examples), "--max-time", str(max_time), "--request-timeout", "10",
        "--generation-database", "none", "--seed", "375", "--workers", "1", "--exclude-path-regex", "/events$",
        *selection, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), max_time + 60)
    return process.returncode, output.decode(errors="replace")


async def test_no_5xx_for_a_customer(engine, api_server, tmp_path: Path) -> None:
    user = await new_user(engine, api_server, max_concurrent_conferences=50)
    url = str(api_server.make_url("/api/v1/openapi.json"))
    exclusions = [arg for op in CUSTOMER_EXCLUDED for arg in ("--exclude-operation-id", op)]
    code, output = await schemathesis(url, user.token, tmp_path, *exclusions, "--exclude-path-regex",
                                      "^/operator/")
    assert code == 0, output[-6000:]


async def test_no_5xx_for_an_operator(engine, api_server, tmp_path: Path) -> None:
    operator = await engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator")
    token = (await engine.services.tokens.issue(operator.id, "schemathesis")).secret
    url = str(api_server.make_url("/api/v1/openapi.json"))
    inclusions = [arg for op in OPERATOR_INCLUDED for arg in ("--include-operation-id", op)]
    default = await engine.services.plan_groups.get_group(operator.id, "default")
    try:
        code, output = await schemathesis(url, token, tmp_path, *inclusions, max_time=15)
    finally:  # the run may have changed the default group every other test dials through
        await engine.services.plan_groups.save_group(
            operator.id, "default", description=default["description"], patterns=default["patterns"],
            allow_international=default["allow_international"], allow_premium=default["allow_premium"])
    assert code == 0, output[-6000:]
