"""Rules a conference plan must satisfy before it is stored (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from engine.domain import speech, text
from engine.domain.errors import Forbidden, LimitExceeded, ValidationError
from engine.domain.model import AUTO_EXTEND_STEPS, ConferencePlan, ParticipantPlan, Role
from engine.domain.numberplan import NumberPlan

MAX_DURATION_MINUTES = 720
MAX_REMINDER_MINUTES = 1440
EXTEND_STEPS = (15, 30, 45, 60)
# How far a conference may run past its planned end, by hand and automatically together
# (VECHE_EXTEND_CAP_MINUTES overrides it; each conference keeps the cap it was planned with).
EXTEND_CAP_MINUTES = 120
PLAN_FIELDS = frozenset({"subject", "start", "duration_minutes", "max_participants", "auto_invite",
                         "auto_extend_minutes", "guest_pin_required", "reminder_minutes", "participants",
                         "timezone", "mode", "language", "notify_participants", "recording"})


@dataclass(frozen=True)
class AccountLimits:
    """The per-account limits the plan is checked against."""

    max_participants: int
    max_concurrent_conferences: int
    max_dialouts_per_minute: int
    recording_allowed: bool = True

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AccountLimits:
        return cls(row["max_participants"], row["max_concurrent_conferences"], row["max_dialouts_per_minute"],
                   bool(row.get("recording_allowed", True)))


@dataclass(frozen=True)
class AccountRules:
    """What one plan and the dial-out that follows it are checked against, read once: the
    account's limits, its number plan, its voice language and whether it is blocked."""

    limits: AccountLimits
    number_plan: NumberPlan
    language: str
    blocked: bool = False
    # the version of the account rows these were read from: a write that checks it under the
    # account's lock refuses rules changed since (kept rules are only trusted that way)
    stamp: str | None = None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_participant(participant: ParticipantPlan, number_plan: NumberPlan,
                         field: str = "participants") -> ParticipantPlan:
    """A participant with a number of the plan, a short name and a plausible e-mail."""
    if not isinstance(participant, ParticipantPlan):
        raise ValidationError("a participant needs a number", field)
    number = number_plan.validate(participant.number, f"{field}.number")
    name = text.name(participant.name, f"{field}.name")
    email = participant.email or None
    if email is not None and (not isinstance(email, str) or len(email) > 254 or "@" not in email
                              or any(ch.isspace() for ch in email)):
        raise ValidationError("the e-mail address is not valid", f"{field}.email")
    try:
        role = Role(participant.role)
    except ValueError:
        raise ValidationError("the role must be chair or guest", f"{field}.role") from None
    return ParticipantPlan(number=number, name=name, email=email, role=role)


def validate_plan(plan: ConferencePlan, limits: AccountLimits, number_plan: NumberPlan) -> ConferencePlan:
    """The plan with its participants checked, or ValidationError / LimitExceeded naming the field."""
    subject = text.subject(plan.subject)
    if not _is_int(plan.duration_minutes) or not 1 <= plan.duration_minutes <= MAX_DURATION_MINUTES:
        raise ValidationError("the duration must be 1 to %(limit)d minutes", "duration_minutes",
                              limit=MAX_DURATION_MINUTES)
    if not _is_int(plan.max_participants) or plan.max_participants < 1:
        raise ValidationError("the participant limit must be a positive number", "max_participants")
    if plan.max_participants > limits.max_participants:
        raise LimitExceeded("your account allows at most %(limit)d participants", limit=limits.max_participants)
    if plan.auto_extend_minutes not in AUTO_EXTEND_STEPS or isinstance(plan.auto_extend_minutes, bool):
        raise ValidationError("auto-extend must be off, 15, 30, 45 or 60 minutes", "auto_extend_minutes")
    if plan.reminder_minutes is not None and (
            not _is_int(plan.reminder_minutes) or not 1 <= plan.reminder_minutes <= MAX_REMINDER_MINUTES):
        raise ValidationError("the reminder must be 1 to %(limit)d minutes before", "reminder_minutes",
                              limit=MAX_REMINDER_MINUTES)
    language = None if plan.language is None else speech.validate_language(plan.language)
    if not isinstance(plan.notify_participants, bool):
        raise ValidationError("notify_participants is true or false", "notify_participants")
    if plan.mode != "voice":
        raise ValidationError("only voice conferences are available", "mode")
    if not isinstance(plan.recording, bool):
        raise ValidationError("recording must be true or false", "recording")
    if plan.recording and not limits.recording_allowed:
        refused = Forbidden("recording is not allowed for your account; ask the operator")
        refused.field = "recording"  # type: ignore[attr-defined]
        raise refused
    if plan.start is not None and plan.start.tzinfo is None:
        raise ValidationError("the start time needs a time zone", "start")
    participants = validate_participants(plan.participants, number_plan)
    check_participant_count(len(participants), plan.max_participants)
    return ConferencePlan(
        subject=subject, start=plan.start, duration_minutes=plan.duration_minutes,
        max_participants=plan.max_participants, participants=participants, auto_invite=bool(plan.auto_invite),
        auto_extend_minutes=plan.auto_extend_minutes, guest_pin_required=bool(plan.guest_pin_required),
        reminder_minutes=plan.reminder_minutes, timezone=plan.timezone, mode=plan.mode,
        language=language, notify_participants=plan.notify_participants, recording=plan.recording)


def validate_participants(participants: Iterable[ParticipantPlan],
                          number_plan: NumberPlan) -> tuple[ParticipantPlan, ...]:
    """Every participant checked; the same number twice is refused."""
    result: list[ParticipantPlan] = []
    seen: set[str] = set()
    for index, participant in enumerate(participants):
        checked = validate_participant(participant, number_plan, f"participants[{index}]")
        if checked.number in seen:
            raise ValidationError("%(number)s is planned twice", f"participants[{index}].number",
                                  number=checked.number)
        seen.add(checked.number)
        result.append(checked)
    return tuple(result)


def check_participant_count(count: int, max_participants: int) -> None:
    """More planned participants than the conference admits is refused (Planning and templates)."""
    if count > max_participants:
        raise ValidationError("%(count)d participants planned but the limit is %(limit)d", "participants",
                              count=count, limit=max_participants)


def validate_extension(minutes: object) -> int:
    """A manual extension: 15, 30, 45 or 60 minutes."""
    if not _is_int(minutes) or minutes not in EXTEND_STEPS:
        raise ValidationError("extend by 15, 30, 45 or 60 minutes", "minutes")
    return int(minutes)  # type: ignore[arg-type]


def extension_refusal(cap_minutes: int) -> LimitExceeded:
    """Why an extension beyond the cap is refused."""
    return LimitExceeded("a conference may run at most %(minutes)d minutes past its planned end",
                         minutes=cap_minutes)


def changed_plan(current: ConferencePlan, changes: dict[str, Any]) -> ConferencePlan:
    """The plan with ``changes`` applied (keys are ConferencePlan fields; participants may come as
    dicts from the API), not yet checked against the rules."""
    proposed = {**asdict(current), **changes}
    try:
        proposed["participants"] = tuple(
            p if isinstance(p, ParticipantPlan) else ParticipantPlan(**p) for p in proposed["participants"])
    except TypeError:
        raise ValidationError("each participant needs a number (and optionally name, email, role)",
                              "participants") from None
    return ConferencePlan(**proposed)
