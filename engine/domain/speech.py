"""What the room hears, in the conference's language: the voice languages, the announcements
composed from Asterisk's core sounds, and the grammar of spoken minutes. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.errors import ValidationError

# The voice languages every node carries (Debian asterisk-core-sounds-<lang>-gsm).
LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"


def validate_language(value: object, field: str = "language") -> str:
    """One of LANGUAGES, or ValidationError naming the field."""
    if not isinstance(value, str) or value not in LANGUAGES:
        raise ValidationError("the voice language must be ru or en", field)
    return value


@dataclass(frozen=True)
class Announcement:
    """One announcement for the announcer channel: up to two prompts, then optionally a number
    said by SayNumber in the channel's language and the prompt of its unit."""

    language: str
    sounds: tuple[str, ...]
    number: int | None = None
    unit: str | None = None
    number_sound: str | None = None  # a numeral said after the number (a Veche phrase: "одна", "две")

    def files(self) -> tuple[str, ...]:
        """The prompts, in order, without the number (for logs and tests)."""
        return self.sounds + ((self.number_sound,) if self.number_sound else ()) + ((self.unit,) if self.unit else ())


def russian_plural(number: int) -> str:
    """The Russian plural category of ``number``: 'one' (1, 21, ...), 'few' (2-4, 22-24, ...)
    or 'many' (0, 5-20, 25-30, ...)."""
    tens, units = number % 100, number % 10
    if units == 1 and tens != 11:
        return "one"
    if 2 <= units <= 4 and not 12 <= tens <= 14:
        return "few"
    return "many"


def duration(language: str, minutes: int) -> tuple[int, str]:
    """A number and the unit prompt that say ``minutes`` grammatically in ``language`` with the
    core sounds. English: 1 'minute', otherwise 'minutes'. Russian: "минута" is feminine and
    has three plural forms, but the core set has only "минута" (queue-minute), "минут"
    (queue-minutes) and masculine/neuter numerals; so a count of the 'many' category is said
    in minutes ("пятнадцать минут") and any other in seconds, whose count (a multiple of 60)
    always takes "секунд" with no gender ("сто двадцать секунд")."""
    minutes = max(0, int(minutes))
    if language == "ru":
        if russian_plural(minutes) == "many":
            return minutes, "queue-minutes"
        return minutes * 60, "seconds"
    return minutes, "minute" if minutes == 1 else "minutes"


def time_left(language: str, seconds: int) -> tuple[int, str]:
    """A number and unit prompt for ``seconds`` left: whole minutes as duration() says them,
    anything else in seconds. Russian "секунда" has the same gaps as "минута", so the count is
    rounded down to the nearest one said with "секунд" (21 s -> 20 s)."""
    seconds = max(0, int(seconds))
    if seconds >= 60 and seconds % 60 == 0:
        return duration(language, seconds // 60)
    if language == "ru":
        while russian_plural(seconds) != "many":
            seconds -= 1
        return seconds, "seconds"
    return seconds, "second" if seconds == 1 else "seconds"


def russian_minutes(minutes: int, phrases: frozenset[str]) -> tuple[int | None, str | None, str] | None:
    """``minutes`` said in minutes with the Veche phrases the operator uploaded ("одна", "две",
    "минуты"): (the number before the numeral or None, the numeral phrase or None, the unit);
    None when a phrase it needs is missing (the caller then says it as duration() does)."""
    kind = russian_plural(minutes)
    if kind == "many":
        return minutes, None, "queue-minutes"
    if kind == "one" and "veche-one-f" in phrases:
        return (minutes - 1) or None, "veche-one-f", "queue-minute"
    if kind == "few" and "veche-minutes-few" in phrases:
        if minutes % 10 != 2:
            return minutes, None, "veche-minutes-few"
        if "veche-two-f" in phrases:
            return (minutes - 2) or None, "veche-two-f", "veche-minutes-few"
    return None


def _spoken_minutes(language: str, minutes: int, phrases: frozenset[str]) -> tuple[int | None, str | None, str]:
    if language == "ru":
        composed = russian_minutes(max(0, int(minutes)), phrases)
        if composed is not None:
            return composed
    number, unit = duration(language, minutes)
    return number, None, unit


def warning(language: str, seconds: int, phrases: frozenset[str] = frozenset()) -> Announcement:
    """The deadline warning: a beep, "you have" and the time left (whole minutes with the
    uploaded Veche ``phrases`` where they make it grammatical)."""
    if language == "ru" and seconds >= 60 and seconds % 60 == 0:
        number, numeral, unit = _spoken_minutes(language, seconds // 60, phrases)
        return Announcement(language, ("beep", "vm-youhave"), number, unit, numeral)
    number, unit = time_left(language, seconds)
    return Announcement(language, ("beep", "vm-youhave"), number, unit)


def extended(language: str, minutes: int, phrases: frozenset[str] = frozenset()) -> Announcement:
    """The extension: "the conference has been extended" and by how many minutes."""
    number, numeral, unit = _spoken_minutes(language, minutes, phrases)
    return Announcement(language, ("conf-extended",), number, unit, numeral)


def ending(language: str) -> Announcement:
    """The end: "the conference has ended", "goodbye"."""
    return Announcement(language, ("confbridge-conf-end", "goodbye"))
