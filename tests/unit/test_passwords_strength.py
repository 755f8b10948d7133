"""The password rule refuses what is easy to guess: short, common, repeated, a run of keys, the phone."""

from __future__ import annotations

import pytest

from engine.domain.accounts import password
from engine.domain.errors import ValidationError

PHONE = "375291234567"


@pytest.mark.parametrize("weak", ["aaaaaaaa", "aaaaaaaaaaaa", "abcabcabcabc", "1234567890", "0987654321",
                                  "7890123456", "qwertyuiop", "QWERTYUIOPASDF"[:10], "йцукенгшщз", "ababababab",
                                  PHONE, "+" + PHONE, "x" + PHONE + "!", "9-1234567-x"])
def test_easy_passwords_are_refused(weak: str) -> None:
    with pytest.raises(ValidationError) as info:
        password(weak, phone=PHONE)
    assert info.value.field == "password"


@pytest.mark.parametrize("strong", ["correct-horse-battery-9", "portal-pass-2026", "Zz9!kq1m0pX", "лето в Минске 2026"])
def test_passwords_hard_to_guess_pass(strong: str) -> None:
    assert password(strong, phone=PHONE) == strong


def test_the_length_message_carries_its_number_for_translation() -> None:
    with pytest.raises(ValidationError) as info:
        password("aaaaaaaa")
    assert info.value.message_id == "The password must have at least %(length)d characters"
    assert info.value.values == {"length": 10}
