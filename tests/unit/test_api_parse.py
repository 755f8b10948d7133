"""The API's parsing layer and description without the stack: bodies checked against the OpenAPI
schemas name the offending field, plans and periods are built right, SSE frames are well formed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import make_mocked_request
from openapi_spec_validator import validate as validate_openapi

from engine.domain.errors import NotFound, ValidationError
from engine.domain.model import Role
from engine.domain.tokens import PREFIX_SHOWN, hash_secret, new_secret
from web.api import parse
from web.api.events import sse_message
from web.api.openapi import SCHEMAS, build_spec


class _Body:
    """A request whose body is ``raw`` (parse.body only reads it)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    async def read(self) -> bytes:
        return self.raw


async def _body(data: object, schema: str = "ConferenceCreate") -> dict:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return await parse.body(_Body(raw), schema)  # type: ignore[arg-type]


def test_the_description_is_valid_openapi_3_1() -> None:
    spec = build_spec()
    validate_openapi(spec)
    referenced = {ref.rsplit("/", 1)[1] for ref in _refs(spec)}
    assert referenced <= set(SCHEMAS)


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize(("data", "field"), [
    ({"duration_minutes": 5, "max_participants": 2}, "subject"),
    ({"subject": "s", "duration_minutes": "5", "max_participants": 2}, "duration_minutes"),
    ({"subject": "s", "duration_minutes": 5.5, "max_participants": 2}, "duration_minutes"),
    ({"subject": "s", "duration_minutes": 5, "max_participants": 2, "extra": 1}, "extra"),
    ({"subject": "s", "duration_minutes": 5, "max_participants": 2, "participants": [{}]}, "participants[0].number"),
    ({"subject": "s", "duration_minutes": 5, "max_participants": 2, "participants": [{"number": "+375"}]},
     "participants[0].number"),
    ({"subject": "a\x00b", "duration_minutes": 5, "max_participants": 2}, "subject"),
    (b"{oops", "body"),
    (b"", "body"),
])
async def test_bad_bodies_name_the_field(data, field) -> None:
    with pytest.raises(ValidationError) as caught:
        await _body(data)
    assert caught.value.field == field


async def test_whole_floats_become_ints_and_plans_are_built() -> None:
    data = await _body({"subject": "Board", "start": "2030-01-31T10:00:00", "duration_minutes": 30.0,
                        "max_participants": 4, "participants": [{"number": "375291234567", "role": "chair"}]})
    assert data["duration_minutes"] == 30 and isinstance(data["duration_minutes"], int)
    plan = parse.conference_plan(data, "Europe/Minsk")
    assert plan.start == datetime(2030, 1, 31, 10, tzinfo=ZoneInfo("Europe/Minsk"))
    assert plan.participants[0].role is Role.CHAIR and plan.auto_invite is True and plan.timezone == "Europe/Minsk"
    assert parse.conference_plan({**data, "start": "now"}, "Europe/Minsk").start is None
    changes = parse.conference_changes({"start": "2030-01-31T10:00:00Z", "subject": "x"}, "Europe/Minsk")
    assert changes == {"start": datetime(2030, 1, 31, 10, tzinfo=UTC), "subject": "x"}


def test_history_period_reads_dates_in_the_account_zone() -> None:
    request = make_mocked_request("GET", "/api/v1/history?from=2026-01-01&to=2026-01-31")
    since, until = parse.period(request, "Europe/Minsk")
    minsk = ZoneInfo("Europe/Minsk")
    assert since == datetime(2026, 1, 1, tzinfo=minsk) and until == datetime(2026, 2, 1, tzinfo=minsk)
    with pytest.raises(ValidationError):
        parse.period(make_mocked_request("GET", "/api/v1/history?from=2026-02-01&to=2026-01-01"), "UTC")


def test_path_ids_out_of_range_do_not_exist() -> None:
    for raw in ("0", "9223372036854775808", "12a"):
        request = make_mocked_request("GET", f"/x/{raw}", match_info={"id": raw})
        with pytest.raises(NotFound):
            parse.path_id(request)


def test_sse_frames() -> None:
    assert sse_message({"a": 1}, "snapshot") == b'event: snapshot\ndata: {"a":1}\n\n'
    assert sse_message({"text": "two\nlines"}) == b'data: {"text":"two\\nlines"}\n\n'


def test_token_secrets_are_random_and_only_hashed() -> None:
    first, second = new_secret(), new_secret()
    assert first != second and first.startswith("veche_") and len(first) > 40
    assert hash_secret(first) != hash_secret(second) and first not in hash_secret(first)
    assert PREFIX_SHOWN < len(first) // 2
