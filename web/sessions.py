"""aiohttp-session storage backed by the accounts service's server-side sessions in Postgres:
the cookie holds only a random token; revoking the row ends the session at once."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_session import AbstractStorage, Session

COOKIE_NAME = "veche_session"


class PostgresSessionStorage(AbstractStorage):
    def __init__(self, accounts: Any, *, secure: bool = False) -> None:
        super().__init__(cookie_name=COOKIE_NAME, httponly=True, samesite="Lax", secure=secure, path="/",
                         max_age=None)
        self.accounts = accounts

    async def load_session(self, request: web.Request) -> Session:
        token = self.load_cookie(request)
        if token:
            stored = await self.accounts.load_session(token)
            if stored is not None:
                data: Any = {"created": int(stored.created_at.timestamp()), "session": stored.data}
                return Session(token, data=data, new=False, max_age=None)
        return Session(None, data=None, new=True, max_age=None)

    async def save_session(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        # Secure when the portal is served over HTTPS; set right before save_cookie, with no await between.
        secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
        token = session.identity
        if session.empty:
            if token:
                await self.accounts.revoke_session(token)
            self.save_cookie(response, "")
            return
        values = dict(session)
        new_token = await self.accounts.save_session(token, values.get("account_id"), values)
        if new_token != token:
            self._cookie_params["secure"] = secure or None
            self.save_cookie(response, new_token)
