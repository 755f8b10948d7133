"""Every failure under /api/ becomes JSON ``{"error": {"code", "message", "field"?}}`` with a stable
code and the right status: domain errors from engine/domain/errors.py, HTTP errors of the router,
and anything unexpected (logged, never a traceback to the client)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from engine.domain.errors import (
    AmiError,
    Forbidden,
    IdempotencyKeyReused,
    LimitExceeded,
    NotActiveEngine,
    NotFound,
    RateLimited,
    StateConflict,
    Unauthenticated,
    ValidationError,
    VecheError,
    VersionConflict,
)
from engine.domain.text import TextRefused

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Most specific first: the first class the error is an instance of decides.
STATUS_OF: tuple[tuple[type[VecheError], int], ...] = (
    (TextRefused, 422),  # well-formed JSON whose text breaks the one-line rule (engine/domain/text.py)
    (ValidationError, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (VersionConflict, 412),  # If-Match named a version the object has moved on from
    (StateConflict, 409),
    (LimitExceeded, 422),
    (IdempotencyKeyReused, 422),
    (RateLimited, 429),
    (AmiError, 503),
    (NotActiveEngine, 503),  # the standby of an engine pair (engine/services/leadership.py)
)

HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "state_conflict", 412: "version_conflict",
              428: "precondition_required", 413: "too_large", 415: "unsupported_media_type",
              422: "unprocessable", 429: "rate_limited", 503: "unavailable"}


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return web.json_response({"error": error}, status=status, headers=headers)


def domain_error_response(exc: VecheError) -> web.Response:
    status = next((status for cls, status in STATUS_OF if isinstance(exc, cls)), 500)
    if status == 500:
        log.error("unmapped domain error %s: %s", type(exc).__name__, exc)
        return error_response(500, "internal", "internal error")
    headers = {"WWW-Authenticate": 'Bearer realm="veche"'} if status == 401 else None
    if status == 429:
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(int(retry_after))} if retry_after else None
    if isinstance(exc, VersionConflict) and getattr(exc.current, "version", None) is not None:
        headers = {"ETag": f'"{exc.current.version}"'}
    field = getattr(exc, "field", None) if isinstance(exc, ValidationError) else None
    message = str(exc) or exc.code.replace("_", " ")
    code = "unavailable" if isinstance(exc, AmiError) else exc.code
    return error_response(status, code, message, field, headers)


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except VecheError as exc:
        return domain_error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        code = HTTP_CODES.get(exc.status, "error")
        return error_response(exc.status, code, exc.reason or code, headers=headers)
    except Exception:
        log.exception("API request %s %s failed", request.method, request.path)
        return error_response(500, "internal", "internal error")
