"""Conference numbers and PINs: random from ``secrets``, of a configurable length."""

from __future__ import annotations

import secrets

from engine.domain.errors import ConfigError

MIN_LENGTH = 4  # conference numbers: a caller still needs a correct PIN behind one
MAX_LENGTH = 12
# A PIN is the only secret between a caller and a room: with 6 digits (10^6 candidates) the
# dial-in guard's per-conference lock-out (VECHE_PIN_LOCKOUT_AFTER wrong PINs per cool-down)
# makes guessing hopeless, with 4 digits it would not. The operator may raise it, never lower it.
PIN_MIN_LENGTH = 6


def _check_length(length: int, what: str, minimum: int = MIN_LENGTH) -> int:
    if not minimum <= length <= MAX_LENGTH:
        raise ConfigError(f"{what} length must be {minimum}..{MAX_LENGTH} digits, got {length}")
    return length


def check_pin_length(length: int) -> int:
    """The configured PIN length, or a ConfigError naming the allowed range."""
    return _check_length(length, "PIN", PIN_MIN_LENGTH)


def random_digits(length: int) -> str:
    """``length`` random decimal digits (leading zeros allowed)."""
    return "".join(secrets.choice("0123456789") for _ in range(length))


def generate_conference_number(length: int = 6) -> str:
    """A conference number; never starts with 0 so it reads the same in every form."""
    _check_length(length, "conference number")
    return secrets.choice("123456789") + random_digits(length - 1)


def generate_pins(length: int = 6) -> tuple[str, str]:
    """(chair PIN, guest PIN), always different from each other."""
    check_pin_length(length)
    chair = random_digits(length)
    while True:
        guest = random_digits(length)
        if guest != chair:
            return chair, guest
