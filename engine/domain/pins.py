"""Conference numbers and PINs: random from ``secrets``, of a configurable length."""

from __future__ import annotations

import secrets

from engine.domain.errors import ConfigError

MIN_LENGTH = 4
MAX_LENGTH = 12


def _check_length(length: int, what: str) -> int:
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ConfigError(f"{what} length must be {MIN_LENGTH}..{MAX_LENGTH} digits, got {length}")
    return length


def random_digits(length: int) -> str:
    """``length`` random decimal digits (leading zeros allowed)."""
    return "".join(secrets.choice("0123456789") for _ in range(length))


def generate_conference_number(length: int = 6) -> str:
    """A conference number; never starts with 0 so it reads the same in every form."""
    _check_length(length, "conference number")
    return secrets.choice("123456789") + random_digits(length - 1)


def generate_pins(length: int = 6) -> tuple[str, str]:
    """(chair PIN, guest PIN), always different from each other."""
    _check_length(length, "PIN")
    chair = random_digits(length)
    while True:
        guest = random_digits(length)
        if guest != chair:
            return chair, guest
