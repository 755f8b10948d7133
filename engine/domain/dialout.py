"""Dial-out rules that need no Asterisk and no database: when a failed invitation is dialled
again. Kept apart from the call service (which sends the Originate and waits for its outcome)
so the retry rule is tested on its own."""

from __future__ import annotations

from engine.domain.model import FailureReason


def retries_for(reason: FailureReason, retry_busy: int, retry_no_answer: int) -> int:
    """How many extra attempts a failure of this kind earns (VECHE_RETRY_BUSY,
    VECHE_RETRY_NO_ANSWER); any other failure (rejected, invalid number, congestion, error,
    cancelled) is final."""
    return {FailureReason.BUSY: retry_busy, FailureReason.NO_ANSWER: retry_no_answer}.get(reason, 0)


def should_retry(reason: FailureReason, attempts: int, retry_busy: int, retry_no_answer: int) -> bool:
    """True when a participant whose ``attempts``-th dial failed for ``reason`` is dialled again:
    the first attempt plus the extra ones the reason earns."""
    return attempts <= retries_for(reason, retry_busy, retry_no_answer)
