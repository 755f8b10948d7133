"""PINs and conference numbers: random digits of the configured length, chair and guest differ."""

from __future__ import annotations

import pytest

from engine.domain.errors import ConfigError
from engine.domain.pins import generate_conference_number, generate_pins


@pytest.mark.parametrize("length", [6, 8, 12])
def test_pins_have_length_and_differ(length: int) -> None:
    for _ in range(200):
        chair, guest = generate_pins(length)
        assert len(chair) == len(guest) == length
        assert chair.isdigit() and guest.isdigit()
        assert chair != guest


def test_pins_are_not_predictable() -> None:
    assert len({generate_pins(6)[0] for _ in range(200)}) > 190


def test_conference_number() -> None:
    numbers = {generate_conference_number(6) for _ in range(200)}
    assert all(len(n) == 6 and n.isdigit() and n[0] != "0" for n in numbers)
    assert len(numbers) > 190


@pytest.mark.parametrize("length", [0, 3, 13])
def test_bad_lengths(length: int) -> None:
    with pytest.raises(ConfigError):
        generate_pins(length)
    with pytest.raises(ConfigError):
        generate_conference_number(length)


@pytest.mark.parametrize("length", [4, 5])
def test_pins_shorter_than_six_digits_are_refused(length: int) -> None:
    """A short PIN is guessable within the lock-out budget: the length may be raised, not lowered."""
    with pytest.raises(ConfigError):
        generate_pins(length)
    assert len(generate_conference_number(length)) == length  # numbers are not the secret


@pytest.mark.parametrize("value", ["4", "5"])
def test_pin_length_below_six_is_a_config_error(value: str) -> None:
    from engine.config import Settings

    with pytest.raises(ConfigError, match="VECHE_PIN_LENGTH") as failure:
        Settings.from_env({"VECHE_PIN_LENGTH": value})
    assert "at least 6" in str(failure.value) and "\n" not in str(failure.value)
    assert Settings.from_env({"VECHE_PIN_LENGTH": "8"}).pin_length == 8
