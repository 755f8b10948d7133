"""The operator's CLI through real subprocesses on the session's PostgreSQL: ``account create``
(password from standard input) and ``token create``, whose token then works on the JSON API;
mistakes are one-line errors, never tracebacks."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.api import PASSWORD, ApiClient, random_phone

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


async def veche(database_url: str | None, *args: str, stdin: str = "") -> Run:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", *args, cwd=ROOT, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    return Run(process.returncode, out.decode(), err.decode())


def assert_one_line_error(run: Run, *words: str) -> None:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("veche: error: "), run.stderr
    for word in words:
        assert word in lines[0], run.stderr


async def test_account_and_token_created_by_cli_work_on_the_api(database_url, engine, api_server) -> None:
    phone = random_phone()
    created = await veche(database_url, "account", "create", phone, "--password-stdin", "--name", "Ivan Petrov",
                          "--email", "ivan@example.org", "--language", "en", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert phone in created.stdout
    account = await engine.services.accounts.authenticate(phone, PASSWORD)
    assert (account.name, account.email, account.language, account.role) == (
        "Ivan Petrov", "ivan@example.org", "en", "customer")

    issued = await veche(database_url, "token", "create", phone)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("veche_") and "\n" not in token
    reply = await ApiClient(api_server, token).get("/me")
    assert reply.status == 200 and reply.body["phone"] == phone and reply.body["name"] == "Ivan Petrov"
    conference = await ApiClient(api_server, token).post(
        "/conferences", {"subject": "From a CLI token", "start": "2099-01-01T10:00:00Z", "duration_minutes": 30,
                         "max_participants": 2})
    assert conference.status == 201

    token_id = int(issued.stderr.split("token id ", 1)[1].split()[0])
    revoked = await veche(database_url, "token", "revoke", str(token_id))
    assert revoked.returncode == 0, revoked.stderr
    assert (await ApiClient(api_server, token).get("/me")).status == 401
    assert_one_line_error(await veche(database_url, "token", "revoke", "999999999"), "no such token")

    operator_phone = random_phone()
    operator = await veche(database_url, "account", "create", operator_phone, "--password-stdin", "--role",
                           "operator", stdin=PASSWORD)
    assert operator.returncode == 0, operator.stderr
    assert (await engine.services.accounts.authenticate(operator_phone, PASSWORD)).role == "operator"


@pytest.mark.parametrize(("args", "stdin", "words"), [
    (("account", "create", "+375291234567", "--password-stdin"), PASSWORD, ("phone",)),
    (("account", "create", "37529123", "--password-stdin"), PASSWORD, ("phone",)),
    (("account", "create", "375291234567", "--password-stdin"), "short", ("password",)),
    (("account", "create", "375291234567"), PASSWORD, ("--password-stdin",)),
    (("account", "create", "375291234567", "--password-stdin", "--email", "nope"), PASSWORD, ("email",)),
    (("token", "create", "375200000000"), "", ("no account",)),
    (("token", "create", "abc"), "", ("phone",)),
])
async def test_cli_mistakes_are_one_line_errors(database_url, args, stdin, words) -> None:
    assert_one_line_error(await veche(database_url, *args, stdin=stdin), *words)


async def test_existing_account_and_missing_database_are_one_line_errors(database_url) -> None:
    phone = random_phone()
    first = await veche(database_url, "account", "create", phone, "--password-stdin", stdin=PASSWORD)
    assert first.returncode == 0, first.stderr
    again = await veche(database_url, "account", "create", phone, "--password-stdin", stdin=PASSWORD)
    assert_one_line_error(again, "already exists")
    assert_one_line_error(await veche(None, "token", "create", phone), "DATABASE_URL")
    unreachable = "postgresql://veche@127.0.0.1:1/veche"
    assert_one_line_error(await veche(unreachable, "token", "create", phone), "PostgreSQL", "127.0.0.1:1")
