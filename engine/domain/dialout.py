"""Dial-out rules that need no Asterisk and no database: when a failed invitation is dialled
again, and what a customer reads when a dial-out limit left no room. Kept apart from the dial-out
service (which dials and waits for the outcome) so the rules are tested on their own."""

from __future__ import annotations

from engine.domain.errors import RateLimited
from engine.domain.model import FailureReason

# What the event log says about a participant a dial-out limit left out.
LIMIT_WHY = {"max_dialouts_per_minute": "rate_limited", "max_concurrent_calls": "account_call_limit",
             "system_concurrent_calls": "system_call_limit"}


def retries_for(reason: FailureReason, retry_busy: int, retry_no_answer: int) -> int:
    """How many extra attempts a failure of this kind earns (VECHE_RETRY_BUSY,
    VECHE_RETRY_NO_ANSWER); any other failure (rejected, invalid number, congestion, error,
    cancelled) is final."""
    return {FailureReason.BUSY: retry_busy, FailureReason.NO_ANSWER: retry_no_answer}.get(reason, 0)


def should_retry(reason: FailureReason, attempts: int, retry_busy: int, retry_no_answer: int) -> bool:
    """True when a participant whose ``attempts``-th dial failed for ``reason`` is dialled again:
    the first attempt plus the extra ones the reason earns."""
    return attempts <= retries_for(reason, retry_busy, retry_no_answer)


def limit_refusal(bound_by: str | None, allowed: int, room: int) -> RateLimited:
    """The refusal a customer reads when the dial-out limit ``bound_by`` (``allowed`` at most,
    ``room`` left) left no room for the dials asked for."""
    if bound_by == "max_dialouts_per_minute":
        return RateLimited("at most %(allowed)d dial-outs per minute; %(room)d left now", allowed=allowed, room=room)
    if bound_by == "max_concurrent_calls":
        return RateLimited("your account allows at most %(allowed)d outbound calls at the same time; "
                           "%(room)d free now", allowed=allowed, room=room)
    return RateLimited("the system has no free outbound line now; try again when a call ends")
