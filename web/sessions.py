"""aiohttp-session storage: a logged-in visitor's session is a row of the accounts service's
server-side sessions in Postgres (the cookie holds only a random token; revoking the row ends the
session at once). An anonymous visitor's few values (CSRF token, language, notices) travel in an
encrypted, time-limited cookie instead, so anonymous traffic writes no rows at all."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

from aiohttp import web
from aiohttp_session import AbstractStorage, Session
from cryptography.fernet import Fernet, InvalidToken

COOKIE_NAME = "veche_session"
ANONYMOUS_PREFIX = "a."  # cookie values of anonymous sessions; server-side tokens never start so
ANONYMOUS_MAX_AGE = 3600  # seconds an anonymous cookie stays valid
ANONYMOUS_MAX_BYTES = 3000  # a cookie this large is refused (it would not fit a browser's limit)


def _fernet(secret_key: str) -> Fernet:
    """The anonymous-cookie key, derived from VECHE_SECRET_KEY (random per process when unset)."""
    material = (secret_key or secrets.token_hex(32)).encode()
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"veche anonymous session\0" + material).digest()))


class PostgresSessionStorage(AbstractStorage):
    def __init__(self, accounts: Any, *, secure: bool = False, secret_key: str = "") -> None:
        super().__init__(cookie_name=COOKIE_NAME, httponly=True, samesite="Lax", secure=secure, path="/",
                         max_age=None)
        self.accounts = accounts
        self._fernet = _fernet(secret_key)

    async def load_session(self, request: web.Request) -> Session:
        token = self.load_cookie(request)
        if token and token.startswith(ANONYMOUS_PREFIX):
            data = self._anonymous(token)
            if data is not None:
                return Session(None, data={"created": data.pop("_at", int(time.time())), "session": data},
                               new=False, max_age=None)
        elif token:
            stored = await self.accounts.load_session(token)
            if stored is not None:
                data: Any = {"created": int(stored.created_at.timestamp()), "session": stored.data}
                return Session(token, data=data, new=False, max_age=None)
        return Session(None, data=None, new=True, max_age=None)

    def _anonymous(self, token: str) -> dict[str, Any] | None:
        try:
            raw = self._fernet.decrypt(token[len(ANONYMOUS_PREFIX):].encode(), ttl=ANONYMOUS_MAX_AGE)
            data = json.loads(raw)
        except (InvalidToken, ValueError):
            return None
        return data if isinstance(data, dict) and "account_id" not in data else None

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
        if values.get("account_id") is None:
            if token:  # a server-side session that lost its account: end the row, go anonymous
                await self.accounts.revoke_session(token)
            values["_at"] = session.created
            value = ANONYMOUS_PREFIX + self._fernet.encrypt(json.dumps(values).encode()).decode()
            if len(value) > ANONYMOUS_MAX_BYTES:
                values = {key: values[key] for key in ("csrf", "lang", "_at") if key in values}
                value = ANONYMOUS_PREFIX + self._fernet.encrypt(json.dumps(values).encode()).decode()
            self._cookie_params["secure"] = secure or None
            self.save_cookie(response, value)
            return
        new_token = await self.accounts.save_session(token, values.get("account_id"), values)
        if new_token != token:
            self._cookie_params["secure"] = secure or None
            self.save_cookie(response, new_token)
