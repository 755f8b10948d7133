"""Accounts, sessions, CAPTCHAs and the address book against the real Postgres: argon2id hashes,
login rate limits per account and per address, blocked accounts, password change revoking other
sessions, idle and absolute session timeouts, single-use CAPTCHAs, and address-book entries that
only their owner can see or touch."""

from __future__ import annotations

import pytest

from engine.domain.errors import Forbidden, NotFound, RateLimited, ValidationError
from tests.support.captcha import captcha_answer
from tests.support.portal import PASSWORD, random_account_phone

pytestmark = pytest.mark.stack


@pytest.fixture
def accounts(engine):
    return engine.services.accounts


@pytest.fixture
def book(engine):
    return engine.services.addressbook


async def test_create_stores_an_argon2id_hash_and_authenticates(accounts, engine) -> None:
    phone = random_account_phone()
    account = await accounts.create(phone, PASSWORD, name="Anna", email="anna@example.com", language="en")
    assert (account.phone, account.name, account.language) == (phone, "Anna", "en")
    stored = await engine.pool.fetchval("SELECT password_hash FROM accounts WHERE id = $1", account.id)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert (await accounts.authenticate(phone, PASSWORD, address="10.0.0.1")).id == account.id
    with pytest.raises(ValidationError) as wrong:
        await accounts.authenticate(phone, "wrong-password", address="10.0.0.1")
    assert wrong.value.field == "password"
    with pytest.raises(ValidationError):
        await accounts.authenticate(random_account_phone(), PASSWORD)  # unknown account: same answer
    with pytest.raises(ValidationError, match="already exists"):
        await accounts.create(phone, PASSWORD)


@pytest.mark.parametrize("phone", ["+375291234567", "375 291234567", "37529123456", "80291234567", "375abc123456"])
async def test_account_phone_format_is_strict(accounts, phone: str) -> None:
    with pytest.raises(ValidationError) as error:
        await accounts.create(phone, PASSWORD)
    assert error.value.field == "phone"
    with pytest.raises(ValidationError):
        await accounts.authenticate(phone, PASSWORD)


async def test_short_password_is_refused(accounts) -> None:
    with pytest.raises(ValidationError) as error:
        await accounts.create(random_account_phone(), "short")
    assert error.value.field == "password"


async def test_rate_limit_per_account(accounts) -> None:
    account = await accounts.create(random_account_phone(), PASSWORD)
    for attempt in range(5):
        with pytest.raises(ValidationError):
            await accounts.authenticate(account.phone, f"wrong-{attempt}", address=f"10.1.0.{attempt}")
    with pytest.raises(RateLimited):
        await accounts.authenticate(account.phone, PASSWORD, address="10.1.1.1")


async def test_a_success_resets_the_account_counter(accounts) -> None:
    account = await accounts.create(random_account_phone(), PASSWORD)
    for _ in range(4):
        with pytest.raises(ValidationError):
            await accounts.authenticate(account.phone, "wrong-password", address="10.2.0.1")
    await accounts.authenticate(account.phone, PASSWORD, address="10.2.0.1")
    for _ in range(4):
        with pytest.raises(ValidationError):
            await accounts.authenticate(account.phone, "wrong-password", address="10.2.0.2")
    assert (await accounts.authenticate(account.phone, PASSWORD, address="10.2.0.2")).id == account.id


async def test_rate_limit_per_address(accounts) -> None:
    address = "10.3.0.1"
    victim = await accounts.create(random_account_phone(), PASSWORD)
    for _ in range(20):  # spraying many accounts from one address
        with pytest.raises(ValidationError):
            await accounts.authenticate(random_account_phone(), "guess-guess", address=address)
    with pytest.raises(RateLimited):
        await accounts.authenticate(victim.phone, PASSWORD, address=address)
    assert (await accounts.authenticate(victim.phone, PASSWORD, address="10.3.0.2")).id == victim.id


async def test_blocked_account_cannot_log_in(accounts) -> None:
    account = await accounts.create(random_account_phone(), PASSWORD)
    await accounts.set_limits(account.id, blocked=True)
    with pytest.raises(Forbidden):
        await accounts.authenticate(account.phone, PASSWORD)


async def test_profile_and_password_change_revokes_other_sessions(accounts) -> None:
    account = await accounts.create(random_account_phone(), PASSWORD)
    updated = await accounts.update_profile(account.id, name="Boris", email="b@example.com", language="en")
    assert (updated.name, updated.email, updated.language) == ("Boris", "b@example.com", "en")
    with pytest.raises(ValidationError):
        await accounts.update_profile(account.id, email="not-an-address")
    with pytest.raises(ValidationError):
        await accounts.update_profile(account.id, language="de")
    here = await accounts.save_session(None, account.id, {"account_id": account.id})
    elsewhere = await accounts.save_session(None, account.id, {"account_id": account.id})
    with pytest.raises(ValidationError) as wrong:
        await accounts.change_password(account.id, "not-the-old-one", "new-password-1", keep_session=here)
    assert wrong.value.field == "old_password"
    await accounts.change_password(account.id, PASSWORD, "new-password-1", keep_session=here)
    assert await accounts.load_session(here) is not None
    assert await accounts.load_session(elsewhere) is None
    await accounts.authenticate(account.phone, "new-password-1")


async def test_sessions_expire_when_idle_or_too_old(accounts, engine) -> None:
    account = await accounts.create(random_account_phone(), PASSWORD)
    idle = await accounts.save_session(None, account.id, {"account_id": account.id})
    old = await accounts.save_session(None, account.id, {"account_id": account.id})
    fresh = await accounts.save_session(None, account.id, {"account_id": account.id, "csrf": "x"})
    assert (await accounts.load_session(fresh)).data["csrf"] == "x"
    import hashlib

    def key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    await engine.pool.execute(
        "UPDATE web_sessions SET last_seen_at = now() - interval '31 minutes' WHERE token_hash = $1", key(idle))
    await engine.pool.execute(
        "UPDATE web_sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1", key(old))
    assert await accounts.load_session(idle) is None
    assert await accounts.load_session(old) is None
    assert await accounts.load_session(fresh) is not None
    assert await engine.pool.fetchval("SELECT count(*) FROM web_sessions WHERE token_hash = $1", fresh) == 0, \
        "the cookie value itself is never stored"
    await accounts.revoke_session(fresh)
    assert await accounts.load_session(fresh) is None


async def test_captcha_is_single_use(engine) -> None:
    captcha = engine.services.captcha
    first = await captcha.new()
    answer = await captcha_answer(engine.pool, first)
    assert answer and len(answer) == 5
    image = await captcha.image(first)
    assert image and image.startswith(b"\x89PNG")
    assert await captcha.check(first, answer.lower())  # case does not matter
    assert not await captcha.check(first, answer), "used up"
    assert await captcha.image(first) is None
    second = await captcha.new()
    assert not await captcha.check(second, "nope")
    assert not await captcha.check(second, await captcha_answer(engine.pool, second) or "gone")


async def test_contacts_rooms_templates_belong_to_their_owner(accounts, book) -> None:
    alice = await accounts.create(random_account_phone(), PASSWORD)
    bob = await accounts.create(random_account_phone(), PASSWORD)
    contact = await book.add_contact(alice.id, "Olga", "375291234567", "olga@example.com")
    await book.add_contact(alice.id, "Boris", "375297654321")
    assert [c.name for c in await book.contacts(alice.id)] == ["Boris", "Olga"]
    assert [c.name for c in await book.contacts(alice.id, "olg")] == ["Olga"]
    assert [c.name for c in await book.contacts(alice.id, "%")] == []
    assert await book.contacts(bob.id) == []
    for call in (book.contact(bob.id, contact.id), book.delete_contact(bob.id, contact.id),
                 book.update_contact(bob.id, contact.id, "Mallory", "375291111111")):
        with pytest.raises(NotFound):
            await call
    updated = await book.update_contact(alice.id, contact.id, "Olga P.", "375291234567", None)
    assert (updated.name, updated.email) == ("Olga P.", None)
    with pytest.raises(ValidationError):
        await book.add_contact(alice.id, "Plus", "+375291234567")
    with pytest.raises(ValidationError):
        await book.add_contact(alice.id, "", "375291234567")

    room = await book.add_room(alice.id, "Room 401", "375171234567", "4th floor")
    assert [r.number for r in await book.rooms(alice.id)] == ["375171234567"]
    with pytest.raises(NotFound):
        await book.room(bob.id, room.id)
    await book.delete_room(alice.id, room.id)
    assert await book.rooms(alice.id) == []

    weekly = await book.create_template(alice.id, {
        "name": "Weekly", "subject": "Sync", "duration_minutes": 45, "max_participants": 6,
        "auto_extend_minutes": 15, "reminder_minutes": 30, "is_default": True,
        "participants": [{"number": "375291234567", "name": "Olga", "email": "olga@example.com"}]})
    daily = await book.create_template(alice.id, {"name": "Daily", "is_default": True})
    assert (await book.default_template(alice.id)).id == daily.id
    await book.set_default_template(alice.id, weekly.id)
    default = await book.default_template(alice.id)
    assert default.id == weekly.id and default.participants[0].name == "Olga"
    assert [t.is_default for t in await book.templates(alice.id)] == [True, False]
    with pytest.raises(ValidationError):
        await book.create_template(alice.id, {"name": "Bad", "auto_extend_minutes": 20})
    with pytest.raises(ValidationError):
        await book.create_template(alice.id, {"subject": "no name"})
    with pytest.raises(NotFound):
        await book.set_default_template(bob.id, weekly.id)
    with pytest.raises(NotFound):
        await book.delete_template(bob.id, weekly.id)
    assert await book.default_template(bob.id) is None
    await book.delete_template(alice.id, weekly.id)
    assert [t.name for t in await book.templates(alice.id)] == ["Daily"]
