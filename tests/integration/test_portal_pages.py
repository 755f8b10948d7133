"""The portal's pages through HTTP against the real engine: login (CAPTCHA, '+' refused, fresh
session id), CSRF, security headers, no state change on GET, every screen in both languages,
planning -> card -> edit -> cancel, templates, contacts, history CSV, and one account never
seeing another's pages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer

from engine.domain.model import ConferencePlan, ParticipantPlan
from tests.support.captcha import captcha_answer
from tests.support.portal import PASSWORD, PortalClient, new_account, random_account_phone

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
async def portal(engine) -> AsyncIterator[TestServer]:
    from web.app import init_app

    server = TestServer(init_app(engine.services), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def client(portal: TestServer, engine) -> AsyncIterator[PortalClient]:
    instance = PortalClient(str(portal.make_url("/")), engine)
    yield instance
    await instance.close()


@pytest.fixture
async def other_client(portal: TestServer, engine) -> AsyncIterator[PortalClient]:
    instance = PortalClient(str(portal.make_url("/")), engine)
    yield instance
    await instance.close()


async def test_login_opens_a_new_session_with_safe_cookie(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    form = await client.get("/login")
    assert form.status == 200
    assert "375XXXXXXXXX" in form.text
    before = client.cookie()
    assert before, "the login page opens an anonymous session for its CSRF token"
    answer = await client.captcha_answer(form)
    async with client.session.post(client.base_url + "/login", allow_redirects=False, data={
            "phone": account.phone, "password": PASSWORD, "captcha_id": form.captcha_id, "captcha": answer,
            "_csrf": form.csrf, "next": "/planning"}) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/planning"
        set_cookie = response.headers.getall("Set-Cookie")
    cookie_header = next(h for h in set_cookie if h.startswith("veche_session="))
    assert "HttpOnly" in cookie_header
    assert "SameSite=Lax" in cookie_header
    after = client.cookie()
    assert after and after != before, "login must issue a new session id"
    planning = await client.get("/planning")
    assert planning.status == 200 and "/planning" in planning.url
    # the pre-login session id is dead: replaying it does not log anyone in
    async with client.session.get(client.base_url + "/planning", allow_redirects=False,
                                   cookies={"veche_session": before}) as response:
        pass
    stolen = PortalClient(client.base_url, engine)
    stolen.session.cookie_jar.update_cookies({"veche_session": before})
    page = await stolen.get("/planning")
    await stolen.close()
    assert "/login" in page.url


async def test_wrong_captcha_is_refused_and_used_up(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    form = await client.get("/login")
    answer = await client.captcha_answer(form)
    page = await client.post("/login", {"phone": account.phone, "password": PASSWORD,
                                        "captcha_id": form.captcha_id, "captcha": "WRONG"}, token=form.csrf)
    assert page.status == 400
    assert 'data-test="login-error"' in page.text
    assert await captcha_answer(engine.pool, form.captcha_id) is None, "single use"
    # the right answer to the used CAPTCHA no longer works either
    page = await client.post("/login", {"phone": account.phone, "password": PASSWORD,
                                        "captcha_id": form.captcha_id, "captcha": answer}, token=page.csrf)
    assert page.status == 400 and "/login" in page.url


@pytest.mark.parametrize("typed", ["+375291234567", "375 29 123 45 67"])
async def test_plus_or_spaces_in_the_account_are_refused_with_a_hint(client: PortalClient, typed: str) -> None:
    form = await client.get("/login")
    answer = await client.captcha_answer(form)
    page = await client.post("/login", {"phone": typed, "password": PASSWORD, "captcha_id": form.captcha_id,
                                        "captcha": answer}, token=form.csrf)
    assert page.status == 400
    assert "без «+» и пробелов" in page.text  # Russian by default


async def test_wrong_password_then_rate_limit(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    for _ in range(5):
        page = await client.login(account.phone, "not-the-password")
        assert page.status == 400
    page = await client.login(account.phone)  # right password, but the account is cooling down
    assert page.status == 429


async def test_csrf_token_is_required_on_every_form(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    assert (await client.login(account.phone)).status == 200
    await client.get("/settings")
    refused = await client.post("/settings/profile", {"name": "Mallory", "email": "", "language": "ru"}, csrf=False)
    assert refused.status == 403
    wrong = await client.post("/settings/profile", {"name": "Mallory", "email": "", "language": "ru"},
                              token="forged-token")
    assert wrong.status == 403
    assert (await engine.services.accounts.get(account.id)).name == ""
    await client.get("/settings")
    accepted = await client.post("/settings/profile", {"name": "Alice", "email": "a@example.com", "language": "ru"})
    assert accepted.status == 200
    assert (await engine.services.accounts.get(account.id)).name == "Alice"
    # login without the token is refused too, and the API refuses cookie writes without the header
    anonymous = PortalClient(client.base_url, engine)
    assert (await anonymous.post("/login", {"phone": account.phone, "password": PASSWORD}, csrf=False)).status == 403
    await anonymous.close()
    async with client.session.post(client.base_url + "/api/v1/contacts",
                                   json={"name": "X", "number": "375291112233"}) as response:
        assert response.status == 403
    async with client.session.post(client.base_url + "/api/v1/contacts", json={"name": "X", "number": "375291112233"},
                                   headers={"X-CSRF-Token": client.last.csrf}) as response:
        assert response.status in (200, 201)


async def test_security_headers_and_no_state_change_on_get(client: PortalClient) -> None:
    for path in ("/login", "/help", "/static/veche.css", "/no-such-page"):
        page = await client.get(path)
        csp = page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, path
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "same-origin"
    assert (await client.get("/no-such-page")).status == 404
    assert (await client.get("/logout")).status == 405


async def test_every_screen_renders_in_both_languages(client: PortalClient, engine) -> None:
    account = await new_account(engine, name="Ivan")
    await client.login(account.phone)
    screens = ("/planning", "/conferences", "/history", "/settings", "/settings/contacts", "/settings/rooms",
               "/settings/templates", "/help")
    words = {"ru": ("Планирование", "Помощь"), "en": ("Planning", "Help")}
    for lang in ("ru", "en"):
        await client.post("/language", {"lang": lang, "next": "/planning"})
        assert (await engine.services.accounts.get(account.id)).language == lang
        for path in screens:
            page = await client.get(path)
            assert page.status == 200, (lang, path)
            assert f'<html lang="{lang}">' in page.text
            for word in words[lang]:
                assert word in page.text, (lang, path, word)


# English sentences the engine builds at run time; none may appear on a Russian page.
ENGLISH_SENTENCES = ("is planned twice", "participants planned but the limit is", "has not started yet",
                     "not running", "the group name is", "at most 50 patterns", "is malformed", "Enter a number from",
                     "a pattern is digits", "Enter the number of participants")


def _assert_russian(page, *expected: str) -> None:
    """The page is Russian, shows each expected Russian sentence and none of the English ones."""
    assert '<html lang="ru">' in page.text, page.text[:300]
    for sentence in expected:
        assert sentence in page.text, (sentence, page.text[:3000])
    for sentence in ENGLISH_SENTENCES:
        assert sentence not in page.text, (sentence, page.text[:3000])


async def test_run_time_errors_read_in_russian(client: PortalClient, engine) -> None:
    """Planning refusals, a console action on a scheduled conference and the operator's group and
    limit errors are built at run time with values; in the Russian portal they read in Russian."""
    account = await new_account(engine, language="ru")
    await client.login(account.phone)
    form = await client.get("/planning")
    twice = await client.post("/planning", [
        ("subject", "Twice"), ("when", "now"), ("duration_minutes", "30"), ("max_participants", "5"),
        ("p_number", "375291000001"), ("p_name", ""), ("p_email", ""),
        ("p_number", "375291000001"), ("p_name", ""), ("p_email", ""),
        ("auto_extend_minutes", "0")], token=form.csrf)
    assert twice.status == 400
    _assert_russian(twice, "375291000001")
    over = await client.post("/planning", [
        ("subject", "Crowd"), ("when", "now"), ("duration_minutes", "30"), ("max_participants", "2"),
        *[(name, value) for n in range(3) for name, value in
          (("p_number", f"37529100001{n}"), ("p_name", ""), ("p_email", ""))],
        ("auto_extend_minutes", "0")], token=twice.csrf)
    assert over.status == 400
    _assert_russian(over)
    planned = await engine.services.planning.plan(account.id, ConferencePlan(
        subject="Later", start=datetime.now(UTC) + timedelta(days=2), duration_minutes=30, max_participants=3,
        participants=[]))
    console = await client.get(f"/conferences/{planned.id}/console")
    refused = await client.post(f"/conferences/{planned.id}/lock", {}, token=console.csrf,
                                headers={"Accept": "application/json"})
    assert refused.status == 409
    message = json.loads(refused.text)["error"]["message"]
    assert "не началась" in message and "not" not in message, message
    stale = await client.post(f"/conferences/{planned.id}/lock", {}, token="stale",
                              headers={"Accept": "application/json"})
    message = json.loads(stale.text)["error"]["message"]
    assert stale.status == 403 and "обновите страницу" in message, message

    operator = await engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator",
                                                        language="ru")
    await client.post("/logout", {}, token=console.csrf)
    await client.login(operator.phone)
    groups = await client.get("/operator/groups")
    assert groups.status == 200
    for values, russian in (
            ({"name": "Bad Name!", "patterns": "_375X."}, "имя группы"),
            ({"name": "many", "patterns": "\n".join(f"_37{n:02d}X." for n in range(51))}, "не более 50"),
            ({"name": "broken", "patterns": "_37[5X."}, "шаблон"),
            ({"name": "shape", "patterns": "37*5"}, "шаблон")):
        page = await client.post("/operator/groups", {"description": "", **values}, token=groups.csrf)
        assert page.status == 400, (values, page.text[:2000])
        _assert_russian(page, russian)
    for group, number, russian in (("default", "375291000001", "мобильный номер"),
                                   ("default", "12", "международный номер"),
                                   ("no-such-group", "375291000001", "номер неизвестного типа")):
        check = await client.get(f"/operator/groups/check?group={group}&number={number}")
        assert check.status == 200
        _assert_russian(check, russian)
        assert "(mobile)" not in check.text and "(unknown)" not in check.text
    limits = await client.post(f"/operator/accounts/{account.id}", {"max_participants": "0"}, token=groups.csrf)
    assert limits.status == 400
    _assert_russian(limits, "от 1 до 1000")


async def test_plan_card_edit_cancel(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    await client.login(account.phone)
    start = datetime.now(UTC).astimezone() + timedelta(days=2)
    form = await client.get("/planning")
    page = await client.post("/planning", [
        ("subject", "Board <b>meeting</b>"), ("when", "later"), ("date", start.strftime("%Y-%m-%d")),
        ("time", "10:30"), ("duration_minutes", "60"), ("max_participants", "5"),
        ("p_number", "375290001200"), ("p_name", "Olga"), ("p_email", "olga@example.com"),
        ("p_number", ""), ("p_name", ""), ("p_email", ""),
        ("auto_invite", "on"), ("auto_extend_minutes", "15"), ("guest_pin_required", "on"),
        ("reminder", "on"), ("reminder_minutes", "60")], token=form.csrf)
    assert page.status == 200 and "/conferences/" in page.url, page.text[:2000]
    conference_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    conference = await engine.services.planning.get(account.id, conference_id)
    assert conference.auto_extend_minutes == 15 and conference.reminder_minutes == 60
    assert [p.number for p in conference.participants] == ["375290001200"]
    assert "Board &lt;b&gt;meeting&lt;/b&gt;" in page.text and "<b>meeting</b>" not in page.text
    for value in (conference.conference_number, conference.chair_pin, conference.guest_pin,
                  engine.settings.access_number):
        assert value in page.text
    listing = await client.get("/conferences")
    assert f'data-conference="{conference_id}"' in listing.text
    edit = await client.get(f"/conferences/{conference_id}/edit")
    assert edit.status == 200
    invalid = await client.post(f"/conferences/{conference_id}/edit", [
        ("subject", ""), ("when", "later"), ("date", "not-a-date"), ("time", "11:00"), ("duration_minutes", "90"),
        ("max_participants", "5")])
    assert invalid.status == 400 and ("flash-error" in invalid.text or "field-error" in invalid.text)
    page = await client.post(f"/conferences/{conference_id}/edit", [
        ("subject", "Board meeting (moved)"), ("when", "later"), ("date", start.strftime("%Y-%m-%d")),
        ("time", "11:00"), ("duration_minutes", "90"), ("max_participants", "5"),
        ("p_number", "375290001200"), ("p_name", "Olga"), ("p_email", ""), ("guest_pin_required", "on"),
        ("auto_extend_minutes", "0")])
    assert page.status == 200, page.text[:2000]
    conference = await engine.services.planning.get(account.id, conference_id)
    assert conference.subject == "Board meeting (moved)" and conference.duration_minutes == 90
    page = await client.post(f"/conferences/{conference_id}/cancel", {})
    assert page.status == 200
    assert str((await engine.services.planning.get(account.id, conference_id)).state) == "cancelled"


async def test_planning_errors_keep_the_form(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    await client.login(account.phone)
    form = await client.get("/planning")
    page = await client.post("/planning", [
        ("subject", "Keep me"), ("when", "now"), ("duration_minutes", "30"), ("max_participants", "5"),
        ("p_number", "+375290001200"), ("p_name", "Plus"), ("p_email", "")], token=form.csrf)
    assert page.status == 400
    assert 'value="Keep me"' in page.text and 'value="+375290001200"' in page.text
    assert "field-error" in page.text or "flash-error" in page.text


async def test_templates_start_the_planning_form(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    await client.login(account.phone)
    form = await client.get("/planning")
    page = await client.post("/planning/template", [
        ("subject", "Weekly sync"), ("when", "now"), ("duration_minutes", "45"), ("max_participants", "7"),
        ("p_number", "375290001201"), ("p_name", "Petr"), ("p_email", ""),
        ("auto_extend_minutes", "30"), ("template_name", "Weekly"), ("template_default", "on")], token=form.csrf)
    assert page.status == 200
    templates = await engine.services.addressbook.templates(account.id)
    assert [(t.name, t.is_default, t.max_participants) for t in templates] == [("Weekly", True, 7)]
    planning = await client.get("/planning")
    assert 'value="Weekly sync"' in planning.text and 'value="375290001201"' in planning.text
    listing = await client.get("/settings/templates")
    assert "Weekly" in listing.text
    edit = await client.get(f"/settings/templates/{templates[0].id}")
    assert edit.status == 200 and 'value="Weekly"' in edit.text
    saved = await client.post(f"/settings/templates/{templates[0].id}", [
        ("template_name", "Weekly 2"), ("is_default", "on"), ("subject", "Weekly sync"), ("duration_minutes", "60"),
        ("max_participants", "8"), ("auto_extend_minutes", "0"), ("p_number", "375290001201"), ("p_name", "Petr"),
        ("p_email", "")])
    assert saved.status == 200
    assert (await engine.services.addressbook.template(account.id, templates[0].id)).max_participants == 8
    page = await client.post(f"/settings/templates/{templates[0].id}/delete", {})
    assert page.status == 200 and await engine.services.addressbook.templates(account.id) == []


async def test_contacts_rooms_escape_and_search(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    await client.login(account.phone)
    await client.get("/settings/contacts")
    page = await client.post("/settings/contacts", {"name": "<script>alert(1)</script>", "number": "375291110000",
                                                    "email": ""})
    assert page.status == 200
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    await client.post("/settings/contacts", {"name": "Anna", "number": "375291110001", "email": "anna@example.com"})
    found = await client.get("/settings/contacts?q=anna")
    assert "375291110001" in found.text and "375291110000" not in found.text
    bad = await client.post("/settings/contacts", {"name": "Plus", "number": "+375291110002", "email": ""})
    assert bad.status == 400
    await client.get("/settings/rooms")
    await client.post("/settings/rooms", {"name": "Room 4", "number": "375171234567", "location": "4th floor"})
    planning = await client.get("/planning")
    assert 'data-number="375171234567"' in planning.text and 'data-number="375291110001"' in planning.text


async def test_another_account_gets_404_everywhere(client: PortalClient, other_client: PortalClient, engine) -> None:
    alice = await new_account(engine)
    bob = await new_account(engine)
    conference = await engine.services.planning.plan(alice.id, ConferencePlan(
        subject="Alice only", start=datetime.now(UTC) + timedelta(days=3), duration_minutes=30, max_participants=3,
        participants=(ParticipantPlan("375290001299", "Z"),)))
    contact = await engine.services.addressbook.add_contact(alice.id, "Secret", "375291119999")
    template = await engine.services.addressbook.create_template(alice.id, {"name": "Alice's"})
    await other_client.login(bob.phone)
    for path in (f"/conferences/{conference.id}", f"/conferences/{conference.id}/console",
                 f"/conferences/{conference.id}/edit", f"/conferences/{conference.id}/state",
                 f"/conferences/{conference.id}/quality", f"/history/{conference.id}",
                 f"/settings/templates/{template.id}"):
        page = await other_client.get(path)
        assert page.status == 404, path
        assert "Alice only" not in page.text
    await other_client.get("/planning")
    for path in (f"/conferences/{conference.id}/cancel", f"/conferences/{conference.id}/lock",
                 f"/settings/contacts/{contact.id}/delete", f"/settings/templates/{template.id}/delete",
                 f"/settings/templates/{template.id}/default"):
        page = await other_client.post(path, {"minutes": "15"}, token=(await other_client.get("/help")).csrf)
        assert page.status == 404, path
    assert (await engine.services.addressbook.contact(alice.id, contact.id)).name == "Secret"
    assert str((await engine.services.planning.get(alice.id, conference.id)).state) == "scheduled"
    contacts = await other_client.get("/settings/contacts")
    assert "Secret" not in contacts.text


async def test_logout_revokes_the_session(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    await client.login(account.phone)
    token = client.cookie()
    await client.get("/help")
    page = await client.post("/logout", {})
    assert "/login" in page.url
    replay = PortalClient(client.base_url, engine)
    replay.session.cookie_jar.update_cookies({"veche_session": token})
    assert "/login" in (await replay.get("/planning")).url
    await replay.close()


async def test_history_lists_and_exports(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    await client.login(account.phone)
    conference = await engine.services.planning.plan(account.id, ConferencePlan(
        subject="Quick one", start=None, duration_minutes=5, max_participants=2, auto_invite=False,
        participants=(ParticipantPlan("375290001207", "Dmitry"),)))
    await engine.services.live.end(account.id, conference.id)
    page = await client.get("/history?range=today")
    assert f'data-conference="{conference.id}"' in page.text and "Dmitry" in page.text
    detail = await client.get(f"/history/{conference.id}")
    assert detail.status == 200 and "375290001207" in detail.text
    async with client.session.get(client.base_url + "/history.csv?range=today") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        body = (await response.read()).decode("utf-8-sig")
    assert "Quick one" in body and "375290001207" in body


async def test_settings_errors_render_the_form_again(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    await client.login(account.phone)
    await client.get("/settings")
    page = await client.post("/settings/profile", {"name": "Ann", "email": "not-an-address", "language": "en"})
    assert page.status == 400 and "field-error" in page.text
    await client.get("/settings")
    page = await client.post("/settings/password", {"old_password": PASSWORD, "new_password": "new-password-1",
                                                    "new_password_again": "new-password-2"})
    assert page.status == 400 and "field-error" in page.text
    page = await client.post("/settings/password", {"old_password": PASSWORD, "new_password": "new-password-1",
                                                    "new_password_again": "new-password-1"}, token=page.csrf)
    assert page.status == 200 and "/settings" in page.url
    await engine.services.accounts.authenticate(account.phone, "new-password-1")


async def test_roles_in_planning_templates_and_the_edit_form(client: PortalClient, engine) -> None:
    """Chair or guest per participant row: saved with a template, pre-filled from it into
    Planning, stored with the planned conference and shown again when editing it."""
    account = await new_account(engine)
    await client.login(account.phone)
    form = await client.get("/planning")
    rows = [("p_number", "375290001301"), ("p_name", "Chair"), ("p_email", ""), ("p_role", "chair"),
            ("p_number", "375290001302"), ("p_name", "Guest"), ("p_email", ""), ("p_role", "guest")]
    page = await client.post("/planning/template", [
        ("subject", "Board"), ("when", "now"), ("duration_minutes", "30"), ("max_participants", "5"),
        *rows, ("auto_extend_minutes", "0"), ("template_name", "Board"), ("template_default", "on")], token=form.csrf)
    assert page.status == 200
    template = (await engine.services.addressbook.templates(account.id))[0]
    assert [p.role for p in template.participants] == ["chair", "guest"]
    planning = await client.get("/planning")
    assert planning.text.count('<option value="chair" selected>') == 1
    page = await client.post("/planning", [
        ("subject", "Board"), ("when", "later"), ("date", "2031-01-15"), ("time", "10:00"),
        ("duration_minutes", "30"), ("max_participants", "5"), ("auto_extend_minutes", "0"), *rows])
    assert page.status == 200
    planned = [c for c in await engine.services.planning.list(account.id) if c.subject == "Board"]
    assert len(planned) == 1
    assert {p.number: str(p.role) for p in planned[0].participants} == {"375290001301": "chair",
                                                                         "375290001302": "guest"}
    edit = await client.get(f"/conferences/{planned[0].id}/edit")
    assert edit.text.count('<option value="chair" selected>') == 1
    bad = await client.post("/planning/template", [
        ("subject", "Bad"), ("when", "now"), ("duration_minutes", "30"), ("max_participants", "5"),
        ("p_number", "375290001303"), ("p_name", ""), ("p_email", ""), ("p_role", "boss"),
        ("auto_extend_minutes", "0"), ("template_name", "Bad")], token=edit.csrf)
    assert bad.status in (200, 400) and not [t for t in await engine.services.addressbook.templates(account.id)
                                             if t.name == "Bad"]


async def test_console_state_is_the_api_conference(client: PortalClient, engine) -> None:
    """One JSON shape per conference: the console's state is the API's Conference (the shape the
    event stream's snapshot carries) plus the running PIN lock-out."""
    account = await new_account(engine)
    await client.login(account.phone)
    planned = await engine.services.planning.plan(account.id, ConferencePlan(
        subject="Shapes", start=datetime.now(UTC) + timedelta(days=1), duration_minutes=30, max_participants=3,
        participants=(ParticipantPlan("375290001300", "Olga", "olga@example.com"),)))
    state = await client.get(f"/conferences/{planned.id}/state", headers={"Accept": "application/json"})
    api = await client.get(f"/api/v1/conferences/{planned.id}")
    assert state.status == 200 and api.status == 200, (state.text[:500], api.text[:500])
    console_body, api_body = json.loads(state.text), json.loads(api.text)
    assert console_body.pop("pin_lockout") is None
    assert console_body == api_body
    assert api_body["participants"][0]["number"] == "375290001300"
