"""Helpers of the JSON API tests: accounts with API tokens, a small client for /api/v1, and
waiting for engine.bus events (instead of sleeping)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from jsonschema import Draft202012Validator

from engine.services.bus import DomainEvent
from tests.support.factories import random_phone
from web.api.openapi import build_spec

PASSWORD = "correct-horse-battery-9"
_MISSING: Any = object()


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    @property
    def error(self) -> dict[str, Any]:
        """The ``error`` object of an error reply."""
        assert isinstance(self.body, dict) and "error" in self.body, f"not an API error: {self.status} {self.body}"
        return self.body["error"]


_spec = cache(build_spec)


@cache
def _operations() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    spec = _spec()
    found = []
    for template, item in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\{[a-z]+\\}", "[^/]+", re.escape(template)) + "$")
        for method, operation in item.items():
            found.append((pattern, method.upper(), operation))
    return found


_recorders: list[set[str]] = []  # the open ``exercised()`` blocks


def record_operation(operation_id: str) -> None:
    """Count ``operation_id`` as called, for every open ``exercised()`` block."""
    for seen in _recorders:
        seen.add(operation_id)


@contextmanager
def exercised() -> Iterator[set[str]]:
    """The operationIds of the API calls made (with any status) while the block is open."""
    seen: set[str] = set()
    _recorders.append(seen)
    try:
        yield seen
    finally:
        _recorders.remove(seen)


def check_against_openapi(method: str, path: str, status: int, content_type: str, body: Any) -> None:
    """The reply is one the OpenAPI description documents: its status for that operation and,
    for JSON, a body valid against the documented schema (router 404/405s of unknown paths aside)."""
    path = path.split("?", 1)[0]
    operation = next((op for pattern, m, op in _operations() if m == method and pattern.match(path)), None)
    if operation is None:
        assert status in (401, 404, 405), f"{method} {path} is not described but answered {status}"
        return
    record_operation(operation["operationId"])
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {path}: status {status} is not documented"
    content = responses[str(status)].get("content", {})
    if content_type == "application/json" and "application/json" in content:
        schema = content["application/json"].get("schema")
        if schema:
            spec = _spec()
            validator = Draft202012Validator({**schema, "components": spec["components"]})
            errors = sorted(validator.iter_errors(body), key=str)
            assert not errors, f"{method} {path} {status}: body does not match the description: {errors[0]}"


@dataclass
class ApiClient:
    """Calls /api/v1 of a test server, as a bearer token (or with extra headers/cookies)."""

    server: TestServer
    token: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # sent with every call (e.g. X-CSRF-Token)

    def url(self, path: str) -> str:
        return str(self.server.make_url("/api/v1" + path))

    async def call(self, method: str, path: str, json: Any = _MISSING, *, data: bytes | str | None = None,
                   headers: dict[str, str] | None = None) -> Reply:
        all_headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        all_headers.update(self.headers)
        all_headers.update(headers or {})
        kwargs: dict[str, Any] = {"headers": all_headers}
        if json is not _MISSING:
            kwargs["json"] = json
        elif data is not None:
            kwargs["data"] = data
            all_headers.setdefault("Content-Type", "application/json")
        async with aiohttp.ClientSession(cookies=self.cookies) as session, \
                session.request(method, self.url(path), **kwargs) as response:
            raw = await response.read()
            body: Any = None
            if raw:
                body = await response.json(content_type=None) if response.content_type == "application/json" \
                    else raw.decode(errors="replace")
            check_against_openapi(method, path, response.status, response.content_type, body)
            return Reply(response.status, body, response.headers)

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, json: Any = _MISSING, **kwargs: Any) -> Reply:
        return await self.call("POST", path, json, **kwargs)


@dataclass
class ApiUser:
    account: Any
    token: str
    api: ApiClient


async def new_user(engine: Any, server: TestServer, **account_fields: Any) -> ApiUser:
    """A fresh customer account with an API token and a client using it."""
    account = await engine.services.accounts.create(random_phone(), PASSWORD, **account_fields)
    issued = await engine.services.tokens.issue(account.id, "tests")
    return ApiUser(account, issued.secret, ApiClient(server, issued.secret))


async def session_client(engine: Any, server: TestServer, account_id: int) -> ApiClient:
    """A client of /api/v1 riding on a portal session cookie with its CSRF token, as the portal's
    own pages call the API (the only way besides the CLI to create API tokens)."""
    from web.sessions import COOKIE_NAME

    csrf = secrets.token_urlsafe(16)
    cookie = await engine.services.accounts.save_session(None, account_id, {"account_id": account_id,
                                                                                "csrf": csrf})
    return ApiClient(server, cookies={COOKIE_NAME: cookie}, headers={"X-CSRF-Token": csrf})


class BusWatcher:
    """Collects engine.bus events of one conference so a test can await one by predicate."""

    def __init__(self, engine: Any, conference_id: int | None = None) -> None:
        self.engine = engine
        self.conference_id = conference_id
        self.events: list[DomainEvent] = []
        self._changed = asyncio.Condition()

    async def _collect(self, event: DomainEvent) -> None:
        if self.conference_id is None or event.conference_id == self.conference_id:
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def __aenter__(self) -> BusWatcher:
        self.engine.bus.subscribe(self._collect)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.engine.bus.unsubscribe(self._collect)

    async def wait(self, predicate: Callable[[DomainEvent], bool], timeout: float = 20.0) -> DomainEvent:
        async def find() -> DomainEvent:
            async with self._changed:
                while True:
                    for event in self.events:
                        if predicate(event):
                            return event
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            kinds = [(e.kind, e.participant_id, e.data) for e in self.events]
            raise AssertionError(f"no matching bus event within {timeout}s; saw {kinds}") from None


def connected(participant_id: int | None = None) -> Callable[[DomainEvent], bool]:
    """Predicate: a participant (any, or this one) turned connected."""
    return lambda e: (e.kind == "participant.state" and e.data.get("state") == "connected"
                      and (participant_id is None or e.participant_id == participant_id))
