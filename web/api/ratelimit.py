"""Per-account request rate limit of the JSON API: a token bucket per authenticated account
(VECHE_API_RATE requests per minute, the same as a burst); over it, 429 with a JSON error and
Retry-After. Repeated hits reach the toll-fraud guard's alert like any other limit, naming the
client address (web/security.py client_address: X-Forwarded-For only from a trusted proxy)."""

from __future__ import annotations

import math
import time

from aiohttp import web

from engine.domain.errors import RateLimited
from engine.domain.ratelimit import TokenBuckets
from web.api.common import ACCOUNT
from web.context import services
from web.security import Handler, client_address

API_LIMITER = web.AppKey("veche.api_rate_limiter", TokenBuckets)


@web.middleware
async def api_rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Runs after api_authentication (which put the account on the request)."""
    account = request.get(ACCOUNT)
    if account is not None:
        limiter = request.config_dict[API_LIMITER]
        wait = limiter.take(account.id, time.monotonic())
        if wait > 0:
            services(request).guard.hit(account.id, "api_requests",
                                        f"{request.method} {request.path} from {client_address(request)}")
            error = RateLimited(f"too many API requests: at most {limiter.per_minute} a minute; "
                                f"try again in {math.ceil(wait)} s")
            error.retry_after = max(1, math.ceil(wait))  # type: ignore[attr-defined]
            raise error
    return await handler(request)


def install_api_rate_limit(api: web.Application, requests_per_minute: int) -> None:
    """Add the limiter to the API sub-application (before it starts)."""
    api[API_LIMITER] = TokenBuckets(requests_per_minute)
    api.middlewares.append(api_rate_limit)
