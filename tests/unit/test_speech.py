"""The spoken time in each voice language: Russian plural categories, and every count said with
prompts the Debian core sounds carry in a grammatical form."""

from __future__ import annotations

import pytest

from engine.domain import speech
from engine.domain.errors import ValidationError


@pytest.mark.parametrize(("number", "category"), [
    (1, "one"), (21, "one"), (101, "one"), (11, "many"), (111, "many"),
    (2, "few"), (3, "few"), (4, "few"), (22, "few"), (12, "many"), (14, "many"),
    (0, "many"), (5, "many"), (15, "many"), (20, "many"), (25, "many"), (120, "many"),
])
def test_russian_plural(number: int, category: str) -> None:
    assert speech.russian_plural(number) == category


def test_russian_minutes_use_only_forms_the_core_set_has() -> None:
    # "many" counts take "минут" (queue-minutes); the others are said in seconds, "секунд"
    assert speech.duration("ru", 15) == (15, "queue-minutes")
    assert speech.duration("ru", 5) == (5, "queue-minutes")
    assert speech.duration("ru", 2) == (120, "seconds")
    assert speech.duration("ru", 1) == (60, "seconds")
    assert speech.duration("ru", 21) == (1260, "seconds")
    for minutes in range(0, 200):
        number, unit = speech.duration("ru", minutes)
        assert speech.russian_plural(number) == "many" and number == minutes * (1 if unit == "queue-minutes" else 60)


def test_english_minutes_and_seconds() -> None:
    assert speech.duration("en", 1) == (1, "minute")
    assert speech.duration("en", 15) == (15, "minutes")
    assert speech.time_left("en", 120) == (2, "minutes")
    assert speech.time_left("en", 1) == (1, "second")
    assert speech.time_left("en", 20) == (20, "seconds")


def test_russian_seconds_round_down_to_a_form_with_secund() -> None:
    assert speech.time_left("ru", 20) == (20, "seconds")
    assert speech.time_left("ru", 23) == (20, "seconds")
    assert speech.time_left("ru", 120) == (120, "seconds")
    assert speech.time_left("ru", 300) == (5, "queue-minutes")


def test_announcements() -> None:
    warning = speech.warning("ru", 120)
    assert warning.language == "ru" and warning.sounds == ("beep", "vm-youhave") and warning.number == 120
    assert speech.extended("en", 15).files() == ("conf-extended", "minutes")
    assert speech.ending("en").files() == ("confbridge-conf-end", "goodbye") and speech.ending("en").number is None


@pytest.mark.parametrize("value", ["de", "", None, "RU", "ru;", 1, "ru\n"])
def test_only_the_node_languages_are_accepted(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        speech.validate_language(value)
    assert caught.value.field == "language"


class _Recorder:
    """Stands in for the FastAGI stream: records what the call would send to Asterisk."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)


@pytest.mark.parametrize("value", ["de", "", "ru\nEXEC Dial", 'ru" "x', "CHANNEL(language)", "en us"])
async def test_agi_refuses_any_language_but_the_node_languages(value: str) -> None:
    from engine.agi import AgiCall

    recorder = _Recorder()
    call = AgiCall(None, recorder, {})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await call.set_language(value)
    assert recorder.sent == []
