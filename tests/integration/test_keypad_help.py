"""The Help page lists the keypad commands of the chair and the guest in both languages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from tests.support.portal import PortalClient, new_account

pytestmark = pytest.mark.stack


@pytest.fixture
async def client(engine) -> AsyncIterator[PortalClient]:
    from web.app import init_app

    server = TestServer(init_app(engine.services), host="127.0.0.1")
    await server.start_server()
    instance = PortalClient(str(server.make_url("/")), engine)
    yield instance
    await instance.close()
    await server.close()


async def test_help_lists_the_keypad_commands_in_both_languages(client: PortalClient, engine) -> None:
    account = await new_account(engine)
    await client.login(account.phone)
    words = {"ru": ("Команды с клавиатуры телефона", "Продлить конференцию на 15 минут",
                    "Выключить или включить микрофоны всех гостей", "Прослушать это меню"),
             "en": ("Keypad commands during the call", "Extend the conference by 15 minutes",
                    "Mute or unmute all guests", "Hear this menu")}
    for lang, expected in words.items():
        await client.post("/language", {"lang": lang, "next": "/help"})
        page = await client.get("/help")
        assert page.status == 200 and f'<html lang="{lang}">' in page.text
        for key in ("*1", "*2", "*3", "*4", "*5", "*6", "*7", "*0"):
            assert f'<td class="mono">{key}</td>' in page.text, (lang, key)
        for word in expected:
            assert word in page.text, (lang, word)
