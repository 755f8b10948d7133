"""The one-line text rule (engine/domain/text.py) and the domain checks that use it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain import accounts, text
from engine.domain.errors import ValidationError
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.domain.numberplan import NumberPlan
from engine.domain.planning import AccountLimits, validate_plan
from engine.domain.text import TextRefused

HOSTILE = ["a\rb", "a\nb", "a\tb", "a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "a\x9bb", "a\u2028b", "a\u2029b",
           "a\u202ab", "a\u202bb", "a\u202cb", "a\u202db", "a\u202eb", "a\u2066b", "a\u2067b", "a\u2068b",
           "a\u2069b", "a\ud800b", "trailing\r", "\nleading"]


@pytest.mark.parametrize("raw", HOSTILE)
def test_forbidden_characters_are_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(TextRefused) as caught:
        text.one_line(raw, "subject", limit=200)
    assert caught.value.field == "subject" and caught.value.code == "invalid_text"
    assert isinstance(caught.value, ValidationError)
    assert caught.value.message_id == text.MESSAGE_BAD_CHARACTER


def test_normalised_trimmed_and_limited() -> None:
    assert text.one_line("  Cafe\u0301 meeting \u3000", "subject", limit=200) == "Café meeting"
    assert text.one_line(None, "name", limit=100) == ""
    assert text.one_line("\u200fשלום\u200e", "name", limit=100) == "\u200fשלום\u200e"  # marks, not overrides
    assert text.one_line("x" * 100, "name", limit=100) == "x" * 100
    with pytest.raises(TextRefused) as caught:
        text.one_line("x" * 101, "name", limit=100)
    assert str(caught.value) == "Too long: at most 100 characters" and caught.value.values == {"limit": 100}
    with pytest.raises(TextRefused) as caught:
        text.one_line("   ", "name", limit=100, required=True)
    assert caught.value.message_id == text.MESSAGE_REQUIRED
    with pytest.raises(TextRefused):
        text.one_line(42, "name", limit=100)
    # the limit counts characters after NFC: 100 decomposed "é" fit
    assert len(text.one_line("e\u0301" * 100, "name", limit=100)) == 100


@given(st.text())
def test_accepted_text_is_one_clean_line(raw: str) -> None:
    try:
        value = text.one_line(raw, "subject", limit=200)
    except TextRefused as refused:
        assert refused.field == "subject"
        return
    assert text.forbidden_character(value) is None
    assert value == value.strip() and len(value) <= 200
    assert text.flatten(value) == value


@given(st.text())
def test_flatten_leaves_nothing_the_rule_forbids(raw: str) -> None:
    assert text.forbidden_character(text.flatten(raw)) is None


def test_domain_checks_use_the_rule() -> None:
    plan = ConferencePlan(subject="Board\rmeeting", start=None, duration_minutes=30, max_participants=5)
    limits = AccountLimits(10, 5, 60)
    with pytest.raises(TextRefused) as caught:
        validate_plan(plan, limits, NumberPlan())
    assert caught.value.field == "subject"
    named = ConferencePlan(subject=" Board ", start=None, duration_minutes=30, max_participants=5,
                           participants=(ParticipantPlan("375291234567", "Ann\u2028a"),))
    with pytest.raises(TextRefused) as caught:
        validate_plan(named, limits, NumberPlan())
    assert caught.value.field == "participants[0].name"
    for call, field in ((lambda: accounts.person_name("x\u202ey", "location"), "location"),
                        (lambda: accounts.template_values({"subject": "a\x85b"}), "subject"),
                        (lambda: accounts.template_values({"name": "t\tn"}), "name"),
                        (lambda: accounts.profile_value("name", "Irina\u2066"), "name"),
                        (lambda: accounts.template_participant({"number": "12345", "name": "a\nb"}, 2),
                         "participants[2].name")):
        with pytest.raises(TextRefused) as caught:
            call()
        assert caught.value.field == field
