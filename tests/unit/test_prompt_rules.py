"""The prompt catalogue, upload checks and the Russian minutes composed with the Veche phrases."""

from __future__ import annotations

import pytest

from engine.domain import keypad, prompts, speech
from engine.domain.errors import ValidationError
from engine.domain.model import Role

ALL = frozenset(prompts.VECHE_PHRASES)


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "digits/1", "conf-getpin.wav", "", None, 3,
                                  "CONF-GETPIN", "conf-getpin\n"])
def test_names_outside_the_list_are_refused(name) -> None:
    with pytest.raises(ValidationError):
        prompts.validate_name(name)


def test_every_prompt_the_engine_plays_is_in_the_catalogue() -> None:
    from engine.domain import dialin

    played = {p for group in dialin.REFUSAL_PROMPTS.values() for p in group}
    played |= {dialin.PROMPT_CONFERENCE_NUMBER, dialin.PROMPT_PIN, dialin.PROMPT_WRONG_PIN, dialin.PROMPT_GOODBYE}
    played |= {p for p in keypad.menu_prompts(Role.CHAIR) if not p.startswith("digits/")}
    played |= set(speech.warning("ru", 120).files()) | set(speech.extended("en", 1).files())
    played |= set(speech.ending("ru").files())
    assert played <= set(prompts.NAMES), played - set(prompts.NAMES)


def test_uploads_are_sniffed_and_bounded() -> None:
    assert prompts.sniff_kind(b"RIFF\x10\x00\x00\x00WAVEfmt ") == "wav"
    assert prompts.sniff_kind(b"ID3\x04\x00") == "mp3" and prompts.sniff_kind(b"\xff\xfb\x90\x00") == "mp3"
    for head in (b"<html>", b"\x7fELF", b"OggS", b""):
        with pytest.raises(ValidationError):
            prompts.sniff_kind(head)
    limits = prompts.UploadLimits(max_bytes=100, max_seconds=5)
    for size in (0, 101):
        with pytest.raises(ValidationError):
            prompts.check_size(size, limits)
    for seconds in (0.0, 5.01):
        with pytest.raises(ValidationError):
            prompts.check_duration(seconds, limits)
    prompts.check_size(100, limits)
    prompts.check_duration(5, limits)


@pytest.mark.parametrize(("minutes", "expected"), [
    (1, (None, "veche-one-f", "queue-minute")), (21, (20, "veche-one-f", "queue-minute")),
    (2, (None, "veche-two-f", "veche-minutes-few")), (22, (20, "veche-two-f", "veche-minutes-few")),
    (3, (3, None, "veche-minutes-few")), (24, (24, None, "veche-minutes-few")),
    (15, (15, None, "queue-minutes")), (12, (12, None, "queue-minutes")),
])
def test_russian_minutes_with_the_veche_phrases(minutes, expected) -> None:
    assert speech.russian_minutes(minutes, ALL) == expected


def test_without_the_phrases_russian_minutes_fall_back_to_seconds() -> None:
    assert speech.extended("ru", 2) == speech.Announcement("ru", ("conf-extended",), 120, "seconds")
    assert speech.extended("ru", 2, frozenset({"veche-minutes-few"})).number == 120  # "две" still missing
    assert speech.extended("ru", 3, frozenset({"veche-minutes-few"})) == speech.Announcement(
        "ru", ("conf-extended",), 3, "veche-minutes-few")
    assert speech.warning("ru", 120, ALL).files() == ("beep", "vm-youhave", "veche-two-f", "veche-minutes-few")
    assert speech.warning("ru", 90, ALL).unit == "seconds"
    assert speech.extended("en", 2, ALL) == speech.Announcement("en", ("conf-extended",), 2, "minutes")


def test_keypad_uses_uploaded_phrases() -> None:
    menu = keypad.menu_prompts(Role.CHAIR, ALL)
    assert "veche-mute-guests" in menu and "veche-extend" in menu and "veche-time-left" in menu
    assert keypad.menu_prompts(Role.CHAIR) == keypad.menu_prompts(Role.CHAIR, frozenset())
    assert "veche-mute-guests" not in keypad.menu_prompts(Role.GUEST, ALL)
    assert keypad.time_answer(2, "ru", ALL) == ["veche-two-f", "veche-minutes-few"]
    assert keypad.time_answer(21, "ru", ALL) == [20, "veche-one-f", "queue-minute"]
    assert keypad.time_answer(7, "ru", ALL) == [7, keypad.SAY_MINUTES]
    assert keypad.time_answer(2, "ru") == [2, keypad.SAY_MINUTES]
