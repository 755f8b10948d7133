"""Dial-in rules: PIN to role, admission, growing delay and caller blocking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.domain.dialin import DialinPolicy, Refusal, admission, caller_number, role_for_pin
from engine.domain.model import Conference, ConferenceState, Role

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def conference(**changes) -> Conference:
    values = dict(id=1, owner_id=1, subject="s", mode="voice", node_id="ast1", room="r", conference_number="123456",
                  chair_pin="111111", guest_pin="222222", guest_pin_required=True, immediate=False,
                  starts_at=NOW - timedelta(minutes=5), duration_minutes=30, ends_at=NOW + timedelta(minutes=25),
                  timezone="UTC", max_participants=3, auto_invite=True, auto_extend_minutes=0,
                  extend_cap_minutes=120, extended_minutes=0, reminder_minutes=None, locked=False,
                  state=ConferenceState.RUNNING)
    values.update(changes)
    return Conference(**values)


def test_pins_give_roles() -> None:
    conf = conference()
    assert role_for_pin(conf, "111111") == Role.CHAIR
    assert role_for_pin(conf, "222222") == Role.GUEST
    assert role_for_pin(conf, "") is None and role_for_pin(conf, None) is None and role_for_pin(conf, "3") is None
    open_conf = conference(guest_pin_required=False)
    assert role_for_pin(open_conf, "") == Role.GUEST
    assert role_for_pin(open_conf, "111111") == Role.CHAIR


def test_admission() -> None:
    policy = DialinPolicy(join_early_minutes=10)
    assert admission(conference(), Role.GUEST, NOW, 0, policy) is None
    assert admission(conference(locked=True), Role.GUEST, NOW, 0, policy) == Refusal.LOCKED
    assert admission(conference(locked=True), Role.CHAIR, NOW, 0, policy) is None
    assert admission(conference(), Role.GUEST, NOW, 3, policy) == Refusal.FULL
    assert admission(conference(), Role.CHAIR, NOW, 3, policy) is None
    for state in (ConferenceState.ENDED, ConferenceState.CANCELLED, ConferenceState.FAILED):
        assert admission(conference(state=state), Role.CHAIR, NOW, 0, policy) == Refusal.ENDED
    early = conference(state=ConferenceState.SCHEDULED, starts_at=NOW + timedelta(minutes=5),
                       ends_at=NOW + timedelta(minutes=35))
    assert admission(early, Role.GUEST, NOW, 0, policy) is None
    too_early = conference(state=ConferenceState.SCHEDULED, starts_at=NOW + timedelta(minutes=11),
                           ends_at=NOW + timedelta(minutes=41))
    assert admission(too_early, Role.CHAIR, NOW, 0, policy) == Refusal.NOT_STARTED


def test_delay_grows_and_caps() -> None:
    policy = DialinPolicy(base_delay_seconds=1, max_delay_seconds=8, conference_failures_per_step=3)
    assert policy.delay_for(0, 0) == 0
    assert [policy.delay_for(n, 0) for n in (1, 2, 3, 4, 5, 9)] == [1, 2, 4, 8, 8, 8]
    assert policy.delay_for(0, 6) == 2  # many callers guessing one conference slow down too
    assert not policy.caller_blocked(9) and policy.caller_blocked(10)


def test_caller_number() -> None:
    assert caller_number("375291234567") == "375291234567"
    assert caller_number("anonymous") == "00"
    assert caller_number("+375 29 123-45-67") == "375291234567"


def test_withheld_callers_share_a_lower_threshold() -> None:
    """Hiding the number gives no fresh counter: every withheld call is "00", blocked sooner."""
    policy = DialinPolicy(caller_block_after=10, withheld_block_after=5)
    assert caller_number("") == caller_number("anonymous") == caller_number("0") == caller_number("00") == "00"
    assert not policy.caller_blocked(4, "00") and policy.caller_blocked(5, "00")
    assert not policy.caller_blocked(9, "375291234567") and policy.caller_blocked(10, "375291234567")


def test_lockout_after_n_wrong_pins_and_counting_restarts_after_the_cool_down() -> None:
    policy = DialinPolicy(failure_window_seconds=900, lockout_after=20, lockout_seconds=600)
    assert not policy.lockout_due(19) and policy.lockout_due(20)
    assert policy.lockout_end(NOW) == NOW + timedelta(seconds=600)
    assert policy.counting_since(NOW, None) == NOW - timedelta(seconds=900)
    ended = NOW - timedelta(seconds=60)  # a lock-out ended a minute ago: its guesses no longer count
    assert policy.counting_since(NOW, ended) == ended
    assert policy.counting_since(NOW, NOW - timedelta(hours=2)) == NOW - timedelta(seconds=900)


def test_locked_out_until_the_end_of_the_cool_down() -> None:
    from engine.domain.dialin import locked_out

    until = NOW + timedelta(seconds=30)
    assert locked_out(until, NOW) and not locked_out(until, until) and not locked_out(None, NOW)


def test_any_digits_are_a_conference_number_so_unknown_ones_get_the_pin_prompt() -> None:
    from engine.domain.dialin import is_conference_number

    assert is_conference_number("9") and is_conference_number("123456789")
    assert not is_conference_number(None) and not is_conference_number("") and not is_conference_number("*1")
