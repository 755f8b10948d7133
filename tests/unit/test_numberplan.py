"""The dial-out number plan accepts Belarusian and short internal numbers only."""

from __future__ import annotations

import pytest

from engine.config import Settings
from engine.domain.errors import ValidationError
from engine.domain.numberplan import NumberPlan

PLAN = NumberPlan()


@pytest.mark.parametrize("number", ["375291234567", "375171234567", "375441234567", "1234", "7000"])
def test_plan_accepts(number: str) -> None:
    assert PLAN.validate(number) == number


@pytest.mark.parametrize("number", [
    "", "+375291234567", "375 29 123 45 67", "37529123456a", "375291234567&", "3752912,34567",
    "375/291234567", "375291234567@pstn", "3752912345678", "37529123456", "80291234567",
    "00441234567890", "8101234567", "441234567890", "19001234567", "375902123456", "0123",
    "375091234567", "12345", "375291234567\n", "٣٧٥٢٩١٢٣٤٥٦٧", "123", "9" * 40,
])
def test_plan_refuses(number: str) -> None:
    with pytest.raises(ValidationError) as info:
        PLAN.validate(number, "participants[0].number")
    assert info.value.field == "participants[0].number"
    assert str(info.value)


def test_plan_refuses_non_text() -> None:
    with pytest.raises(ValidationError):
        PLAN.validate(375291234567)  # type: ignore[arg-type]


def test_short_number_length_comes_from_settings() -> None:
    plan = NumberPlan.from_settings(Settings(short_number_length=3))
    assert plan.validate("123") == "123"
    with pytest.raises(ValidationError):
        plan.validate("1234")
    assert not plan.is_allowed("1234")
