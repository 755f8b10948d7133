"""Dial-in rules: which PIN gives which role, when a caller is refused and why, how long a
caller waits after a wrong entry, and when guessing closes PIN entry. Pure functions, no I/O.

The guard's counters are keyed so that a guesser learns nothing before a correct PIN: a
conference number's failures are counted by the number keyed (known or not), so an unknown
number is slowed and locked out exactly like a real one, and the caller hears the same prompts."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from engine.domain.model import Conference, ConferenceState, Role


class Refusal(StrEnum):
    """Why a caller with a correct PIN is not let into the room."""

    NOT_STARTED = "not_started"
    ENDED = "ended"
    LOCKED = "locked"
    FULL = "full"
    BLOCKED = "blocked"  # too many wrong entries from this caller recently
    LOCKED_OUT = "locked_out"  # too many wrong PINs on this conference number: PIN entry closed


# Prompts from Asterisk's core sounds, so a caller always hears why.
PROMPT_CONFERENCE_NUMBER = "conf-getconfno"
PROMPT_PIN = "conf-getpin"
PROMPT_WRONG_PIN = "conf-invalidpin"  # also after an unknown conference number: no enumeration
PROMPT_GOODBYE = "goodbye"
REFUSAL_PROMPTS: dict[Refusal, tuple[str, ...]] = {
    Refusal.NOT_STARTED: ("please-try-call-later",),
    Refusal.ENDED: ("confbridge-conf-end",),
    Refusal.LOCKED: ("conf-locked",),
    Refusal.FULL: ("conf-full",),
    Refusal.BLOCKED: ("please-try-call-later",),
    Refusal.LOCKED_OUT: ("please-try-call-later",),
}
# The bus event of a lock-out that started (data: started_at, until, failures): the owner's
# console shows a banner, the notifier e-mails the owner.
PIN_LOCKOUT_EVENT = "conference.pin_lockout"
WITHHELD = "00"  # the stored caller number of every withheld or anonymous call


@dataclass(frozen=True)
class DialinPolicy:
    """Tunable limits of the dial-in IVR."""

    max_wrong_entries: int = 3  # per call; then the call ends
    join_early_minutes: int = 10  # a caller may enter a scheduled conference this early
    failure_window_seconds: int = 900  # failures older than this no longer count
    base_delay_seconds: float = 1.0  # wait after the first recent failure, doubled for each further one
    max_delay_seconds: float = 15.0
    caller_block_after: int = 10  # failures of one caller number in the window: refused outright
    # Withheld callers all share the one key "00", so a guesser cannot get a fresh counter by
    # hiding the number; the threshold is lower because that key is the cheapest to hide behind.
    withheld_block_after: int = 5
    # Wrong PINs on one conference number within the window that close PIN entry for
    # lockout_seconds; the delays alone only slow down guessing spread over many callers.
    lockout_after: int = 20
    lockout_seconds: int = 900
    conference_failures_per_step: int = 3  # failures on one conference number (any caller) that add a doubling
    digits_timeout_ms: int = 8000
    max_digits: int = 12

    def delay_for(self, caller_failures: int, conference_failures: int) -> float:
        """Seconds to wait before answering a wrong entry, growing with the recent failures of
        this caller and (more slowly, since many callers share it) of the conference number
        keyed, whether such a conference exists or not (so the wait tells nothing either)."""
        steps = max(caller_failures, conference_failures // max(1, self.conference_failures_per_step))
        if steps <= 0:
            return 0.0
        return min(self.max_delay_seconds, self.base_delay_seconds * 2 ** (steps - 1))

    def caller_blocked(self, caller_failures: int, caller: str = "") -> bool:
        """Refuse a caller outright: a number with too many recent failures, or any withheld
        call once the withheld callers together made ``withheld_block_after`` of them."""
        limit = self.withheld_block_after if caller == WITHHELD else self.caller_block_after
        return caller_failures >= limit

    def counting_since(self, now: datetime, lockout_until: datetime | None) -> datetime:
        """Where a conference number's failure count starts: the window, but never before the end
        of its latest lock-out, so the guesses that caused a lock-out do not start the next one
        the moment the cool-down ends."""
        since = now - timedelta(seconds=self.failure_window_seconds)
        return max(since, lockout_until) if lockout_until is not None else since

    def lockout_due(self, number_failures: int) -> bool:
        """True when this many wrong PINs since ``counting_since`` close PIN entry."""
        return number_failures >= self.lockout_after

    def lockout_end(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lockout_seconds)


def locked_out(lockout_until: datetime | None, now: datetime) -> bool:
    """PIN entry is closed until the cool-down ends, for every caller and every PIN: a right
    PIN keyed during a lock-out is not even checked, so the lock-out is no oracle either."""
    return lockout_until is not None and now < lockout_until


def is_conference_number(entry: str | None) -> bool:
    """Whether an entry is taken as a conference number (then the PIN is asked for, whether or
    not such a conference exists); a silence or a lone ``#`` asks for the number again."""
    return bool(entry) and entry.isdigit()


def role_for_pin(conference: Conference, pin: str | None) -> Role | None:
    """The role a keyed PIN grants, or None for a wrong PIN. ``#`` alone ("") is a guest when
    the conference does not require the guest PIN. Compared in constant time."""
    if pin is None:
        return None
    if pin and hmac.compare_digest(pin.encode(), conference.chair_pin.encode()):
        return Role.CHAIR
    if pin and hmac.compare_digest(pin.encode(), conference.guest_pin.encode()):
        return Role.GUEST
    if not conference.guest_pin_required and pin == "":
        return Role.GUEST
    return None


def admission(conference: Conference, role: Role, now: datetime, connected: int,
              policy: DialinPolicy) -> Refusal | None:
    """None when a caller with ``role`` may join now, else why not. A chair enters a locked or
    full conference; nobody enters one that is over or too far from its start."""
    if conference.state in (ConferenceState.ENDED, ConferenceState.CANCELLED, ConferenceState.FAILED):
        return Refusal.ENDED
    if conference.state == ConferenceState.SCHEDULED:
        if now < conference.starts_at - timedelta(minutes=policy.join_early_minutes):
            return Refusal.NOT_STARTED
        if now >= conference.ends_at:
            return Refusal.ENDED
    if role == Role.CHAIR:
        return None
    if conference.locked:
        return Refusal.LOCKED
    if connected >= conference.max_participants:
        return Refusal.FULL
    return None


def caller_number(raw: str) -> str:
    """The caller's number as stored (digits only, 2..15); "00" when withheld or not a number."""
    digits = "".join(ch for ch in raw if ch.isdigit())[:15]
    return digits if len(digits) >= 2 and digits != WITHHELD else WITHHELD
