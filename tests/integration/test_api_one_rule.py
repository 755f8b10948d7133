"""What Planning refuses cannot be saved elsewhere either (real engine and PostgreSQL): contacts,
rooms and template participants pass the account's number plan (separators removed first),
a template holds no more participants than its count, template names are unique per account,
and a guessable password is refused."""

from __future__ import annotations

import pytest

from tests.support.api import ApiClient, new_user

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
async def api(engine, api_server) -> ApiClient:
    return (await new_user(engine, api_server)).api


async def test_contacts_and_rooms_take_only_numbers_planning_accepts(api) -> None:
    short = await api.post("/contacts", {"name": "Twelve", "number": "12"})
    assert short.status == 400 and short.error["field"] == "number"
    spaced = await api.post("/contacts", {"name": "Spaced", "number": "375 29 100 00 01"})
    assert spaced.status == 201 and spaced.body["number"] == "375291000001"
    dashed = await api.call("PUT", f"/contacts/{spaced.body['id']}", {"name": "Spaced", "number": "375-29-100-00-02"})
    assert dashed.status == 200 and dashed.body["number"] == "375291000002"
    premium = await api.post("/rooms", {"name": "Premium", "number": "375902123456"})
    assert premium.status == 400 and premium.error["field"] == "number"
    long_location = await api.post("/rooms", {"name": "Board", "number": "375171234567", "location": "x" * 101})
    assert long_location.status == 422 and long_location.error["field"] == "location"


async def test_templates_follow_the_planning_rule(api) -> None:
    crowded = await api.post("/templates", {"name": "Crowded", "max_participants": 1, "participants": [
        {"number": "375291000011"}, {"number": "375291000012"}, {"number": "375291000013"}]})
    assert crowded.status == 400 and crowded.error["field"] == "participants"
    assert "3 participants planned but the limit is 1" in crowded.error["message"]
    twice = await api.post("/templates", {"name": "Twice", "participants": [
        {"number": "375291000011"}, {"number": "375 29 100 00 11"}]})
    assert twice.status == 400 and twice.error["field"] == "participants[1].number"
    short = await api.post("/templates", {"name": "Short", "participants": [{"number": "12"}]})
    assert short.status == 400 and short.error["field"] == "participants[0].number"
    good = await api.post("/templates", {"name": "Pair", "max_participants": 2, "participants": [
        {"number": "375 29 100 00 11"}, {"number": "375291000012"}]})
    assert good.status == 201 and [p["number"] for p in good.body["participants"]] == ["375291000011",
                                                                                      "375291000012"]
    shrunk = await api.call("PATCH", f"/templates/{good.body['id']}", {"max_participants": 1})
    assert shrunk.status == 400 and shrunk.error["field"] == "participants"


async def test_template_names_are_unique_per_account(api, engine, api_server) -> None:
    first = await api.post("/templates", {"name": "Monday"})
    assert first.status == 201
    again = await api.post("/templates", {"name": " monday "})
    assert again.status == 400 and again.error["field"] == "name" and "exists already" in again.error["message"]
    other = await api.post("/templates", {"name": "Tuesday"})
    renamed = await api.call("PATCH", f"/templates/{other.body['id']}", {"name": "MONDAY"})
    assert renamed.status == 400 and renamed.error["field"] == "name"
    stranger = (await new_user(engine, api_server)).api
    assert (await stranger.post("/templates", {"name": "Monday"})).status == 201


async def test_guessable_passwords_are_refused(engine) -> None:
    from engine.domain.errors import ValidationError
    from tests.support.factories import random_phone

    accounts = engine.services.accounts
    phone = random_phone()
    for weak in ("aaaaaaaa", "aaaaaaaaaaaa", "1234567890", phone):
        with pytest.raises(ValidationError):
            await accounts.create(phone, weak)
    assert (await accounts.create(phone, "lamp-river-4711")).phone == phone
