"""The dial-out number plan accepts Belarusian and short internal numbers only."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from engine.config import Settings
from engine.domain import numberplan
from engine.domain.errors import ValidationError
from engine.domain.numberplan import GroupRule, NumberPlan, dialout_rules, pattern_regex

PLAN = NumberPlan(short_number_prefixes=("1", "70"))


@pytest.mark.parametrize("number", ["375291234567", "375171234567", "375441234567", "1234", "7000"])
def test_plan_accepts(number: str) -> None:
    assert PLAN.validate(number) == number


@pytest.mark.parametrize("number", ["2345", "7100", "9999", "0123"])
def test_short_numbers_need_one_of_the_operators_prefixes(number: str) -> None:
    assert not PLAN.is_allowed(number)
    assert not NumberPlan().is_allowed("1234")  # no prefixes: no short number at all


def test_dialplan_is_rendered_from_the_same_plans() -> None:
    groups = [GroupRule(("_1XXX", "_37517XXXXXXX")), GroupRule((), allow_international=True)]
    rules = dialout_rules(PLAN, groups)
    assert rules.allowed == ("_375ZXXXXXXXX", "_1XXX", "_70XX", "_37517XXXXXXX", "_00Z.")
    assert rules.refused == ("_375902.",)
    plans = [PLAN, *(PLAN.for_group(g.patterns, allow_international=g.allow_international) for g in groups)]
    for number in ["375291234567", "1234", "7012", "375902123456", "2345", "375091234567", "12345",
                   "0044207946000", "80291234567", "7100"]:
        in_dialplan = any(pattern_regex(p).fullmatch(number) for p in rules.allowed) and not any(
            pattern_regex(p).fullmatch(number) for p in rules.refused)
        engine_allows = any(plan.is_allowed(number) for plan in plans)
        assert not engine_allows or in_dialplan, number  # the dialplan never refuses what the engine dials
        if not in_dialplan:
            assert not engine_allows, number


def test_a_group_allowing_premium_lifts_the_refused_prefix() -> None:
    assert dialout_rules(PLAN, [GroupRule((), allow_premium=True)]).refused == ()


@pytest.mark.parametrize("number", [
    "", "+375291234567", "375 29 123 45 67 8", "375\t291234567", "37529123456a", "375291234567&", "3752912,34567",
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
    plan = NumberPlan.from_settings(Settings(short_number_length=3, short_number_prefixes=("1",)))
    assert plan.validate("123") == "123"
    with pytest.raises(ValidationError):
        plan.validate("1234")
    assert not plan.is_allowed("1234")


@pytest.mark.parametrize("typed", ["375 29 123 45 67", "375-29-123-45-67", "375 (29) 123.45.67",
                                   "375\u00a029 1234567"])
def test_separators_are_removed_before_the_rule(typed: str) -> None:
    assert NumberPlan().validate(typed) == "375291234567"


def test_a_number_with_separators_is_judged_by_its_digits() -> None:
    assert NumberPlan().validate("375 29 100 00 01") == "375291000001"  # 16 characters, 12 digits
    with pytest.raises(ValidationError) as info:
        NumberPlan().validate("375 29 100 00 01 2")
    assert "too long" not in str(info.value)


def test_digits_are_read_as_the_metadata_parser_reads_them() -> None:
    """Numbers are classified from their digits without phonenumbers' free-text parser, and
    every number read that way is the one parse would give; the rest (a trunk prefix after the
    country code, a leading zero, a length parse refuses) still go through parse."""
    rng = random.Random(20261127)
    read = 0
    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        for _ in range(40):
            digits = str(code) + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 16)))
            try:
                parsed = phonenumbers.parse("+" + digits)
            except phonenumbers.NumberParseException:
                parsed = None
            direct = numberplan._read_digits(digits)
            read += direct is not None
            assert direct is None or direct == parsed, digits
            assert numberplan._parsed(digits) == parsed, digits
    assert read > 0.7 * 40 * len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    assert numberplan._read_digits("375801234567") is None  # Belarus' trunk prefix 8: parse decides
