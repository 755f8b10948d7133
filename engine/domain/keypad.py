"""Keypad commands in a room: which key does what for which role, and which of Asterisk's core
sounds answer it. Pure rules, no I/O; the keypad service acts and speaks."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum

from engine.domain.model import Role
from engine.domain.speech import russian_minutes


class KeyAction(StrEnum):
    """What a key (pressed after ``*``) asks for."""

    MUTE_SELF = "mute_self"
    MUTE_GUESTS = "mute_guests"
    LOCK = "lock"
    COUNT = "count"
    EXTEND = "extend"
    TIME_LEFT = "time_left"
    RECORD = "record"
    MENU = "menu"


KEYS: dict[str, KeyAction] = {
    "1": KeyAction.MUTE_SELF, "2": KeyAction.MUTE_GUESTS, "3": KeyAction.LOCK, "4": KeyAction.COUNT,
    "5": KeyAction.EXTEND, "6": KeyAction.TIME_LEFT, "7": KeyAction.RECORD, "0": KeyAction.MENU,
}
ALLOWED: dict[Role, frozenset[KeyAction]] = {
    Role.CHAIR: frozenset(KeyAction),
    Role.GUEST: frozenset({KeyAction.MUTE_SELF, KeyAction.COUNT, KeyAction.TIME_LEFT, KeyAction.MENU}),
}
EXTEND_MINUTES = 15  # one press of *5, as the console's smallest step

# Answers, all from asterisk-core-sounds-en (README lists them).
SAY_MUTED, SAY_UNMUTED = "confbridge-muted", "confbridge-unmuted"
SAY_GUESTS_MUTED, SAY_GUESTS_UNMUTED = "conf-now-muted", "conf-now-unmuted"
SAY_LOCKED, SAY_UNLOCKED = "confbridge-locked", "confbridge-unlocked"
SAY_ALONE = "confbridge-only-participant"
SAY_THERE_ARE, SAY_PARTICIPANTS = "confbridge-there-are", "confbridge-participants"
SAY_EXTENDED, SAY_NOT_EXTENDED = "conf-extended", "conf-nonextended"
SAY_LESS_THAN = "queue-less-than"
SAY_MINUTE, SAY_MINUTES = "minute", "minutes"
SAY_INVALID = "confbridge-invalid"
SAY_PRESS, SAY_STAR = "vm-press", "digits/star"
SAY_RECORDING, SAY_RECORDING_STOPPED = "conf-now-recording", "descending-2tone"

# The menu of *0: "press star <key>" and what the key does. Core sounds have no phrase for
# "mute all guests", "extend" or "time left"; those keys are followed by the answer they give.
MENU_LINES: tuple[tuple[str, KeyAction, str], ...] = (
    ("1", KeyAction.MUTE_SELF, "confbridge-mute-out"),
    ("2", KeyAction.MUTE_GUESTS, SAY_GUESTS_MUTED),
    ("3", KeyAction.LOCK, "confbridge-lock-out"),
    ("4", KeyAction.COUNT, SAY_PARTICIPANTS),
    ("5", KeyAction.EXTEND, SAY_EXTENDED),
    ("6", KeyAction.TIME_LEFT, SAY_MINUTES),
    ("7", KeyAction.RECORD, SAY_RECORDING),
)


def action_for(key: str, role: Role) -> KeyAction | None:
    """The action of ``key`` for ``role``; None for a key that role does not have."""
    action = KEYS.get(key)
    return action if action is not None and action in ALLOWED[role] else None


# The Veche phrase that names a key in the menu when the operator uploaded it (engine.domain.prompts).
MENU_PHRASES: dict[KeyAction, str] = {KeyAction.MUTE_GUESTS: "veche-mute-guests", KeyAction.EXTEND: "veche-extend",
                                      KeyAction.TIME_LEFT: "veche-time-left"}


def menu_prompts(role: Role, phrases: frozenset[str] = frozenset()) -> list[str]:
    """The sounds that read out the role's menu (*0): press, then star 1 ..., star 4 ... in turn;
    a key with an uploaded Veche phrase (``phrases``) is named by it."""
    prompts: list[str] = [SAY_PRESS]
    for key, action, phrase in MENU_LINES:
        if action in ALLOWED[role]:
            named = MENU_PHRASES.get(action)
            prompts += [SAY_STAR, f"digits/{key}", named if named in phrases else phrase]
    return prompts


def minutes_left(ends_at: datetime, now: datetime, minute_seconds: float) -> int:
    """Whole minutes until the end (rounded down; 0 in the last minute)."""
    seconds = (ends_at - now).total_seconds()
    return max(0, math.floor(seconds / minute_seconds)) if minute_seconds > 0 else 0


def count_answer(connected: int) -> list[str | int]:
    """How the room's head-count is spoken (an int is said as a number)."""
    if connected <= 1:
        return [SAY_ALONE]
    return [SAY_THERE_ARE, connected, SAY_PARTICIPANTS]


def time_answer(minutes: int, language: str = "en", phrases: frozenset[str] = frozenset()) -> list[str | int]:
    """How the time left is spoken (an int is said as a number); in Russian with the uploaded
    Veche phrases ("одна", "две", "минуты") where they make it grammatical."""
    if minutes < 1:
        return [SAY_LESS_THAN, 1, SAY_MINUTE]
    if language == "ru":
        composed = russian_minutes(minutes, phrases)
        if composed is not None and composed[1:] != (None, "queue-minutes"):
            number, numeral, unit = composed
            return [part for part in (number, numeral, unit) if part is not None]
    return [minutes, SAY_MINUTE if minutes == 1 else SAY_MINUTES]
