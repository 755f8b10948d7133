"""The first entry the dialplan's Read() heard reaches the IVR only as plain, bounded digits."""

from __future__ import annotations

import pytest

from engine.agi import ARG_FIRST_ENTRY, AgiCall


@pytest.mark.parametrize(("keyed", "seen"), [
    ("123456789", "123456789"), ("0", "0"), ("9" * 20, "9" * 20),
    ("", None), ("9" * 21, None), ("12*3", None), ("12#", None), ("١٢٣", None), (" 123", None),
    ("123\t", None), ("123\n", None),
])
def test_first_entry_is_digits_or_nothing(keyed: str, seen: str | None) -> None:
    call = AgiCall(None, None, {ARG_FIRST_ENTRY: keyed})  # type: ignore[arg-type]  # headers only
    assert call.first_entry == seen


def test_no_argument_is_nothing_keyed() -> None:
    assert AgiCall(None, None, {}).first_entry is None  # type: ignore[arg-type]
