"""The operator's dial-out number plan: the only numbers the engine will ever hand to Asterisk."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import phonenumbers

from engine.domain.errors import ValidationError

_DIGITS = frozenset("0123456789")
MAX_DIGITS = 15  # E.164, and what participants.number stores
# What people type between digits ("375 29 100-00-01", "(029) 100.00.01"): removed before the rule.
SEPARATORS = re.compile(r"[ \u00a0\-.()\u2010-\u2015]")


def normalise(raw: str) -> str:
    """The number without the separators people type between digits (spaces, dashes, dots,
    brackets); every other character is left for the rule to refuse."""
    return SEPARATORS.sub("", raw)
# Operator patterns, Asterisk style: "_" starts a pattern with X (0-9), Z (1-9), N (2-9),
# [1-5] classes, "." (one or more digits) and "!" (zero or more); without "_" it is a literal number.
_PATTERN_SHAPE = re.compile(r"^(_[0-9XZNxzn\[\]\-]+[.!]?|[0-9]{2,15})$")
NUMBER_KINDS = ("internal", "mobile", "fixed", "toll_free", "premium", "international", "unknown")


def validate_pattern(raw: object, field: str = "patterns") -> str:
    """An operator's dial pattern in the Asterisk style (``_375XXXXXXXXX``, ``_1XXX``, ``7000``)."""
    if not isinstance(raw, str) or not _PATTERN_SHAPE.match(raw.strip()):
        raise ValidationError("a pattern is digits, or _ followed by digits, X, Z, N, [1-5] and an optional "
                              "final . or !", field)
    pattern = raw.strip()
    try:
        pattern_regex(pattern)
    except re.error:
        raise ValidationError("the pattern %(pattern)s is malformed", field, pattern=pattern) from None
    return pattern


@lru_cache(maxsize=1024)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of an Asterisk-style dial pattern (digits only, whole number)."""
    if not pattern.startswith("_"):
        return re.compile(re.escape(pattern))
    parts: list[str] = []
    body = pattern[1:]
    index = 0
    while index < len(body):
        char = body[index].upper()
        if char == "X":
            parts.append("[0-9]")
        elif char == "Z":
            parts.append("[1-9]")
        elif char == "N":
            parts.append("[2-9]")
        elif char == ".":
            parts.append("[0-9]+")
        elif char == "!":
            parts.append("[0-9]*")
        elif char == "[":
            end = body.find("]", index)
            if end < 0:
                raise re.error("unclosed class")
            members = body[index + 1:end]
            if not members or not re.fullmatch(r"[0-9\-]+", members):
                raise re.error("bad class")
            parts.append(f"[{members}]")
            index = end
        elif char.isdigit():
            parts.append(char)
        else:
            raise re.error(f"bad character {char}")
        index += 1
    return re.compile("".join(parts))


def _phonenumbers() -> ModuleType:
    """``phonenumbers``, imported on first use: rendering the dialplan (the Asterisk image has
    only the standard library and jinja2) needs the plan's rules, not the number metadata."""
    import phonenumbers

    return phonenumbers


def _parsed(e164_digits: str) -> phonenumbers.PhoneNumber | None:
    phonenumbers = _phonenumbers()
    number = _read_digits(e164_digits)
    if number is not None:
        return number
    try:
        return phonenumbers.parse("+" + e164_digits)
    except phonenumbers.NumberParseException:
        return None


def _read_digits(e164_digits: str) -> phonenumbers.PhoneNumber | None:
    """The number as ``phonenumbers.parse`` reads it, straight from its digits (the country code,
    then the national number), or None when the reading needs parse: the plan passes digits only,
    and parse's reading of free text (punctuation, extensions) costs four times as much, 40-60 us
    a number, 0.5 ms for a conference of ten new numbers before its start. A national number
    that may begin with the country's trunk prefix (which parse would strip) goes to parse."""
    phonenumbers = _phonenumbers()
    if not e164_digits.isdigit() or e164_digits.startswith("0"):
        return None
    for length in (1, 2, 3):  # country codes are prefix-free
        code = int(e164_digits[:length])
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
        if regions is None:
            continue
        national = e164_digits[length:]
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0])
        trunk = metadata.national_prefix_for_parsing if metadata is not None else None
        if (metadata is None or not 2 <= len(national) <= 17 or national.startswith("0")
                or (trunk and re.match(trunk, national))):
            return None
        return phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    return None


# A plan checks each number more than once (when planned, when claimed, right before its
# Originate) and classifying one with the metadata costs tens of microseconds; the answers
# depend on the digits alone, so they are kept.
@lru_cache(maxsize=8192)
def _kind(e164_digits: str) -> str:
    """premium, mobile, fixed, toll_free or unknown by the ``phonenumbers`` metadata."""
    parsed = _parsed(e164_digits)
    if parsed is None:
        return "unknown"
    phonenumbers = _phonenumbers()
    PhoneNumberType = phonenumbers.PhoneNumberType  # noqa: N806 - the library's name
    kind = phonenumbers.number_type(parsed)
    if kind in (PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST):
        return "premium"
    return {PhoneNumberType.MOBILE: "mobile", PhoneNumberType.FIXED_LINE: "fixed",
            PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed", PhoneNumberType.VOIP: "fixed",
            PhoneNumberType.TOLL_FREE: "toll_free"}.get(kind, "unknown")


@lru_cache(maxsize=8192)
def _valid(e164_digits: str) -> bool:
    """A number the ``phonenumbers`` metadata knows as valid."""
    parsed = _parsed(e164_digits)
    return parsed is not None and _phonenumbers().is_valid_number(parsed)


@dataclass(frozen=True)
class NumberPlan:
    """Default: Belarusian numbers (``375`` + 9 digits) and internal short numbers of a fixed
    length that start with one of the operator's short-number prefixes (none by default: no
    short number is dialled until the operator names its prefixes). Digits only: no ``+``,
    spaces, separators or letters are accepted (nothing is
    silently cleaned, so what the customer sees is what is dialled)."""

    country_code: str = "375"
    national_digits: int = 9
    short_number_length: int = 4
    short_number_prefixes: tuple[str, ...] = ()
    blocked_prefixes: tuple[str, ...] = ("375902",)
    # set per account group by the operator (engine/services/numberplans.py): patterns that replace
    # the default rules, and whether international / premium-rate destinations are allowed
    patterns: tuple[str, ...] = ()
    allow_international: bool = False
    allow_premium: bool = False

    @classmethod
    def from_settings(cls, settings: object) -> NumberPlan:
        """The plan configured in ``engine.config.Settings``."""
        return cls(
            country_code=getattr(settings, "number_plan_country", "375"),
            short_number_length=getattr(settings, "short_number_length", 4),
            short_number_prefixes=tuple(getattr(settings, "short_number_prefixes", ())),
            blocked_prefixes=tuple(getattr(settings, "number_plan_blocked_prefixes", ("375902",))),
        )

    def for_group(self, patterns: tuple[str, ...] | list[str], *, allow_international: bool = False,
                  allow_premium: bool = False) -> NumberPlan:
        """This plan as an operator's number-plan group narrows or widens it."""
        return replace(self, patterns=tuple(patterns), allow_international=allow_international,
                       allow_premium=allow_premium)

    @property
    def full_length(self) -> int:
        return len(self.country_code) + self.national_digits

    def is_short(self, number: str) -> bool:
        """An internal short number: its length, and one of the operator's prefixes."""
        return len(number) == self.short_number_length and number.startswith(self.short_number_prefixes)

    def is_international(self, number: str) -> bool:
        """Neither of the internal short length nor a number of the home country."""
        return not (len(number) == self.short_number_length or number.startswith(self.country_code))

    def classify(self, number: str) -> str:
        """internal, mobile, fixed, toll_free, premium, international or unknown (for the operator's
        view and the premium check), using the ``phonenumbers`` metadata."""
        if len(number) == self.short_number_length and not number.startswith(self.country_code):
            return "internal"
        if any(number.startswith(prefix) for prefix in self.blocked_prefixes):
            return "premium"
        if number.startswith("00"):
            return "premium" if _kind(number[2:]) == "premium" else "international"
        if self.is_international(number):
            return "international"
        return _kind(number)

    def _check_destination(self, raw: str, field: str) -> None:
        """Premium-rate and international destinations only where the group allows them."""
        kind = self.classify(raw)
        if kind == "premium" and not self.allow_premium:
            raise ValidationError("premium-rate numbers cannot be dialled", field)
        if self.is_international(raw) and not self.allow_international:
            raise ValidationError("international numbers cannot be dialled from this account", field)
        if self.is_international(raw) and (not raw.startswith("00") or not _valid(raw[2:])):
            raise ValidationError("write an international number as 00, the country code and the number", field)

    def _validate_group(self, raw: str, field: str) -> str:
        if not any(pattern_regex(pattern).fullmatch(raw) for pattern in self.patterns):
            raise ValidationError("this number is not in the dialling plan of your account", field)
        self._check_destination(raw, field)
        return raw

    def validate(self, raw: object, field: str = "number") -> str:
        """Return the number if the plan allows dialling it, else raise ValidationError(field)."""
        if not isinstance(raw, str):
            raise ValidationError("the number must be text made of digits", field)
        raw = normalise(raw)
        if raw == "":
            raise ValidationError("the number is empty", field)
        if len(raw) > MAX_DIGITS:
            raise ValidationError("the number is too long", field)
        if not all(ch in _DIGITS for ch in raw):
            raise ValidationError(
                "the number may contain digits only (no +, spaces, letters or separators)", field)
        if self.patterns:
            return self._validate_group(raw, field)
        if self.is_short(raw):
            return raw
        if raw.startswith(self.country_code):
            if len(raw) != self.full_length:
                raise ValidationError("a number starting with %(country)s must have %(length)d digits", field,
                                      country=self.country_code, length=self.full_length)
            if raw[len(self.country_code)] == "0":
                raise ValidationError("this number is not in the dialling plan", field)
            self._check_destination(raw, field)
            return raw
        if self.allow_international and raw.startswith("00") and len(raw) > self.short_number_length:
            self._check_destination(raw, field)
            return raw
        if raw.startswith(("00", "810", "8")) and len(raw) > self.short_number_length:
            raise ValidationError("international and long-distance prefixes are not allowed; "
                                  "write the number as %(country)s and %(digits)d digits", field,
                                  country=self.country_code, digits=self.national_digits)
        if self.short_number_prefixes:
            raise ValidationError(
                "the number must be %(country)s and %(digits)d digits, or an internal number of %(short)d digits "
                "starting with %(prefixes)s", field, country=self.country_code, digits=self.national_digits,
                short=self.short_number_length, prefixes=", ".join(self.short_number_prefixes))
        raise ValidationError("the number must be %(country)s and %(digits)d digits", field,
                              country=self.country_code, digits=self.national_digits)

    def is_allowed(self, raw: object) -> bool:
        """True when ``validate`` would accept the number."""
        try:
            self.validate(raw)
        except ValidationError:
            return False
        return True


@dataclass(frozen=True)
class GroupRule:
    """What the dialplan needs of one number-plan group."""

    patterns: tuple[str, ...] = ()
    allow_international: bool = False
    allow_premium: bool = False


@dataclass(frozen=True)
class DialoutRules:
    """The Asterisk patterns of the ``veche-dialout`` context: ``allowed`` go to the trunk,
    ``refused`` hang up (Asterisk prefers the more specific pattern, so a refused prefix wins
    over a broader allowed one). The dialplan is the union of every group's plan; narrowing per
    account (and the premium/international classification) stays in the engine."""

    allowed: tuple[str, ...]
    refused: tuple[str, ...]


def _default_patterns(plan: NumberPlan) -> list[str]:
    patterns = [f"_{plan.country_code}Z" + "X" * (plan.national_digits - 1)]
    for prefix in plan.short_number_prefixes:
        if len(prefix) < plan.short_number_length:
            patterns.append(f"_{prefix}" + "X" * (plan.short_number_length - len(prefix)))
        elif len(prefix) == plan.short_number_length:
            patterns.append(prefix)
    return patterns


def dialout_rules(default: NumberPlan, groups: list[GroupRule]) -> DialoutRules:
    """The dialplan of ``veche-dialout`` from the default plan and the operator's groups (a group
    without patterns uses the default plan). One source: the same plans the engine checks with."""
    allowed: list[str] = []
    premium = False
    for group in [GroupRule(), *groups]:
        premium = premium or group.allow_premium
        if group.patterns:
            allowed.extend(validate_pattern(p) for p in group.patterns)
        else:
            allowed.extend(_default_patterns(default))
            if group.allow_international:
                allowed.append("_00Z.")
    refused = [] if premium else [validate_pattern(f"_{prefix}.") for prefix in default.blocked_prefixes]
    return DialoutRules(tuple(dict.fromkeys(allowed)), tuple(p for p in dict.fromkeys(refused) if p not in allowed))
