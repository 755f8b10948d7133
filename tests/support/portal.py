"""A small browser-less client of the portal's pages for integration tests: keeps the session
cookie, reads the CSRF token and CAPTCHA id out of the pages, and solves the CAPTCHA through the
captcha service's test-only hook."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.support.captcha import captcha_answer
from tests.support.factories import random_phone

PASSWORD = "portal-pass-2026"
CSRF = re.compile(r'name="_csrf" value="([^"]+)"')
CAPTCHA_ID = re.compile(r'name="captcha_id" value="([^"]+)"')


random_account_phone = random_phone


@dataclass
class Page:
    status: int
    text: str
    url: str
    headers: Any

    @property
    def csrf(self) -> str:
        match = CSRF.search(self.text)
        assert match, f"no CSRF token on {self.url}"
        return html.unescape(match.group(1))

    @property
    def captcha_id(self) -> str:
        match = CAPTCHA_ID.search(self.text)
        assert match, f"no CAPTCHA on {self.url}"
        return match.group(1)


class PortalClient:
    def __init__(self, base_url: str, engine: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self.engine = engine
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.last: Page | None = None

    async def close(self) -> None:
        await self.session.close()

    def cookie(self, name: str = "veche_session") -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None

    async def get(self, path: str, **kwargs: Any) -> Page:
        async with self.session.get(self.base_url + path, **kwargs) as response:
            page = Page(response.status, await response.text(), str(response.url), response.headers)
        self.last = page
        return page

    async def post(self, path: str, data: dict | list | None = None, *, csrf: bool = True,
                   token: str | None = None, **kwargs: Any) -> Page:
        """POSTs a form; with ``csrf`` the token of the last page (or ``token``) is added."""
        fields = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            fields.append(("_csrf", token or (self.last.csrf if self.last else "")))
        async with self.session.post(self.base_url + path, data=fields, **kwargs) as response:
            page = Page(response.status, await response.text(), str(response.url), response.headers)
        self.last = page
        return page

    async def captcha_answer(self, page: Page) -> str:
        answer = await captcha_answer(self.engine.pool, page.captcha_id)
        assert answer
        return answer

    async def login(self, phone: str, password: str = PASSWORD, *, captcha: str | None = None) -> Page:
        form = await self.get("/login")
        answer = captcha if captcha is not None else await self.captcha_answer(form)
        return await self.post("/login", {"account_type": "phone", "phone": phone, "password": password,
                                          "captcha_id": form.captcha_id, "captcha": answer, "next": "/planning"},
                               token=form.csrf)


async def new_account(engine: Any, *, language: str = "ru", name: str = "") -> Any:
    return await engine.services.accounts.create(random_account_phone(), PASSWORD, language=language, name=name)
