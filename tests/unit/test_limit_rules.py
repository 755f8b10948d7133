"""The pure limit decisions: a plan against the account's limits (engine/domain/planning.py),
the extension steps, the per-key token buckets of the API (engine/domain/ratelimit.py) and the
refusal a dial-out limit gives (engine/services/calls.py). The atomic counting of slots is
PostgreSQL's (tests/integration); the pacer has tests/unit/test_fair_pacer.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.adapters.db.conferences import SlotGrant
from engine.config import Settings
from engine.domain.errors import Forbidden, LimitExceeded, ValidationError
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.domain.numberplan import NumberPlan
from engine.domain.planning import (
    EXTEND_STEPS,
    AccountLimits,
    check_participant_count,
    extension_refusal,
    validate_extension,
    validate_plan,
)
from engine.domain.ratelimit import TokenBuckets
from engine.services.calls import CallService

LIMITS = AccountLimits(max_participants=5, max_concurrent_conferences=2, max_dialouts_per_minute=10,
                       recording_allowed=False)
PLAN = ConferencePlan(subject="Weekly", start=None, duration_minutes=30, max_participants=3)
NUMBERS = NumberPlan.from_settings(Settings(test_mode=True))


def test_the_participant_limit_of_the_account_bounds_the_plan() -> None:
    assert validate_plan(replace(PLAN, max_participants=5), LIMITS, NUMBERS).max_participants == 5
    with pytest.raises(LimitExceeded) as refused:
        validate_plan(replace(PLAN, max_participants=6), LIMITS, NUMBERS)
    assert refused.value.values == {"limit": 5}


def test_more_planned_participants_than_seats_is_refused() -> None:
    people = tuple(ParticipantPlan(number=f"37529123456{n}") for n in range(4))
    with pytest.raises(ValidationError) as refused:
        validate_plan(replace(PLAN, participants=people), LIMITS, NUMBERS)
    assert refused.value.field == "participants"
    check_participant_count(3, 3)
    with pytest.raises(ValidationError):
        check_participant_count(4, 3)


def test_recording_only_where_the_operator_allows_it() -> None:
    with pytest.raises(Forbidden):
        validate_plan(replace(PLAN, recording=True), LIMITS, NUMBERS)
    assert validate_plan(replace(PLAN, recording=True), replace(LIMITS, recording_allowed=True), NUMBERS).recording


@pytest.mark.parametrize("minutes", [0, 10, 20, 90, True, "15", None])
def test_an_extension_is_one_of_the_listed_steps(minutes: object) -> None:
    with pytest.raises(ValidationError):
        validate_extension(minutes)


def test_the_listed_steps_extend_and_the_cap_refusal_names_the_cap() -> None:
    assert [validate_extension(step) for step in EXTEND_STEPS] == [15, 30, 45, 60]
    assert extension_refusal(120).values == {"minutes": 120}


@pytest.mark.parametrize("auto", [1, 20, 90, True])
def test_auto_extension_is_off_or_a_listed_step(auto: object) -> None:
    with pytest.raises(ValidationError):
        validate_plan(replace(PLAN, auto_extend_minutes=auto), LIMITS, NUMBERS)  # type: ignore[arg-type]


def test_token_buckets_allow_a_burst_then_one_per_interval_per_key() -> None:
    buckets = TokenBuckets(per_minute=60, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(1.0)  # empty: one token a second comes back
    assert buckets.take("b", 0.0) == 0.0  # another key has its own bucket
    assert buckets.take("a", 1.0) == 0.0 and buckets.take("a", 1.0) > 0
    assert [buckets.take("a", 100.0) for _ in range(4)][-1] > 0  # refilled to the burst, not beyond


def test_a_zero_rate_bucket_refuses_for_a_minute() -> None:
    assert TokenBuckets(per_minute=0, burst=0).take("a", 0.0) == 60.0


@pytest.mark.parametrize(("bound_by", "words"), [
    ("max_dialouts_per_minute", "dial-outs per minute"),
    ("max_concurrent_calls", "outbound calls at the same time"),
    ("system_concurrent_calls", "no free outbound line"),
])
def test_a_dial_out_limit_names_itself_in_the_refusal(bound_by: str, words: str) -> None:
    refusal = CallService._limit_refusal(SlotGrant(room=1, bound_by=bound_by, limits={bound_by: 4}))
    assert words in str(refusal)
    if bound_by != "system_concurrent_calls":
        assert refusal.values == {"allowed": 4, "room": 1}
