"""100 malformed or foreign dial strings: every one is a validation error naming the field, and
not a single Originate reaches Asterisk."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from engine.domain.errors import ValidationError
from engine.domain.model import ConferencePlan, ParticipantPlan
from tests.support.factories import create_account

pytestmark = pytest.mark.stack

HANDWRITTEN = [
    "", " ", "+375291234567", "375_29_123_45_67", "375:29:123:45:67", "[375]291234567", "37529123456a",
    "abc", "375291234567&", "375291234567&PJSIP/999@pstn", "3752912,34567", "375291234567,w123",
    "375/291234567", "Local/375291234567@veche-dialout", "PJSIP/375291234567@pstn", "375291234567@pstn",
    "375291234567@veche-trunk", "375291234567\r\nAction: Originate", "375291234567\n", "\t375291234567",
    "375291234567;1", "375291234567#", "*375291234567", "375291234567*", "${EXTEN}", "$[1+1]",
    "375902123456", "375902999999", "80291234567", "8029123456", "00375291234567", "0044207946000",
    "8101234567890", "810375291234567", "441234567890", "12025550123", "19005550123", "79161234567",
    "3752912345678", "37529123456789012", "37529123456", "3751234", "375", "0123", "00", "0", "12", "123",
    "12345", "99999999999999999999", "٣٧٥٢٩١٢٣٤٥٦٧", "３７５２９１２３４５６７", "375２91234567", "375291234567\u2028",
    "375O91234567", "37529l234567", "375291234567\x00", "375291234567/n", "1234@veche-dialin",
    "7000@veche-dialin", "s", "i", "h", "_X.", "_375XXXXXXXXX", "375091234567", "375000000000",
]


def generated(count: int) -> list[str]:
    """Seeded variants: valid numbers with one foreign character, prefix or extra digits."""
    rng = random.Random(375)
    bad_chars = "&,/@+;#*abcXYZ\t|'\"`"  # not the separators the number rule removes (space - . ( ))
    result: list[str] = []
    while len(result) < count:
        base = "37529" + "".join(rng.choice("0123456789") for _ in range(7))
        kind = rng.randrange(4)
        if kind == 0:
            at = rng.randrange(len(base) + 1)
            candidate = base[:at] + rng.choice(bad_chars) + base[at:]
        elif kind == 1:
            candidate = rng.choice(["00", "810", "8", "+", "1900", "0"]) + base[3:]
        elif kind == 2:
            candidate = base + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 6)))
        else:
            candidate = "375902" + base[6:]
        if candidate not in result and candidate not in HANDWRITTEN:
            result.append(candidate)
    return result


DIAL_STRINGS = HANDWRITTEN + generated(100 - len(HANDWRITTEN))


async def test_hundred_bad_dial_strings_never_originate(engine) -> None:
    assert len(DIAL_STRINGS) == 100 and len(set(DIAL_STRINGS)) == 100
    planning, live = engine.services.planning, engine.services.live
    owner = await create_account(engine.pool, max_concurrent_conferences=5)
    running = await planning.plan(owner, ConferencePlan(subject="fuzz", start=None, duration_minutes=10,
                                                        max_participants=5))
    scheduled = await planning.plan(owner, ConferencePlan(subject="fuzz later", start=datetime.now(UTC)
                                                          + timedelta(hours=2), duration_minutes=10,
                                                          max_participants=5))
    adapter = engine.ami
    original = adapter.start_originate
    originates: list[object] = []

    def counting_start(prepared):
        originates.append(prepared)
        return original(prepared)

    adapter.start_originate = counting_start  # observe our own adapter: every Originate leaves through it
    try:
        for number in DIAL_STRINGS:
            with pytest.raises(ValidationError) as info:
                await planning.plan(owner, ConferencePlan(subject="fuzz", start=None, duration_minutes=10,
                                                          max_participants=5,
                                                          participants=(ParticipantPlan(number),)))
            assert info.value.field == "participants[0].number", number
            with pytest.raises(ValidationError) as info:
                await live.add_participant(owner, running.id, ParticipantPlan(number))
            assert info.value.field == "participant.number", number
            with pytest.raises(ValidationError):
                await planning.update(owner, scheduled.id, {"participants": [ParticipantPlan(number)]})
    finally:
        del adapter.start_originate
    assert originates == []
    current = await planning.get(owner, running.id)
    assert current.participants == []
    await live.end(owner, running.id)
    await planning.cancel(owner, scheduled.id)
