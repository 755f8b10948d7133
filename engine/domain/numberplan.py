"""The operator's dial-out number plan: the only numbers the engine will ever hand to Asterisk."""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.errors import ValidationError

_DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class NumberPlan:
    """Default: Belarusian numbers (``375`` + 9 digits) and internal short numbers of a fixed
    length. Digits only: no ``+``, spaces, separators or letters are accepted (nothing is
    silently cleaned, so what the customer sees is what is dialled)."""

    country_code: str = "375"
    national_digits: int = 9
    short_number_length: int = 4
    blocked_prefixes: tuple[str, ...] = ("375902",)

    @classmethod
    def from_settings(cls, settings: object) -> NumberPlan:
        """The plan configured in ``engine.config.Settings``."""
        return cls(
            country_code=getattr(settings, "number_plan_country", "375"),
            short_number_length=getattr(settings, "short_number_length", 4),
            blocked_prefixes=tuple(getattr(settings, "number_plan_blocked_prefixes", ("375902",))),
        )

    @property
    def full_length(self) -> int:
        return len(self.country_code) + self.national_digits

    def validate(self, raw: object, field: str = "number") -> str:
        """Return the number if the plan allows dialling it, else raise ValidationError(field)."""
        if not isinstance(raw, str):
            raise ValidationError("the number must be text made of digits", field)
        if raw == "":
            raise ValidationError("the number is empty", field)
        if len(raw) > 32:
            raise ValidationError("the number is too long", field)
        if not all(ch in _DIGITS for ch in raw):
            raise ValidationError(
                "the number may contain digits only (no +, spaces, letters or separators)", field)
        if len(raw) == self.short_number_length and raw[0] != "0":
            return raw
        if raw.startswith(self.country_code):
            if len(raw) != self.full_length:
                raise ValidationError(
                    f"a number starting with {self.country_code} must have {self.full_length} digits", field)
            if raw[len(self.country_code)] == "0":
                raise ValidationError("this number is not in the dialling plan", field)
            for prefix in self.blocked_prefixes:
                if raw.startswith(prefix):
                    raise ValidationError("premium-rate numbers cannot be dialled", field)
            return raw
        if raw.startswith(("00", "810", "8")) and len(raw) > self.short_number_length:
            raise ValidationError("international and long-distance prefixes are not allowed; "
                                  f"write the number as {self.country_code} and 9 digits", field)
        raise ValidationError(
            f"the number must be {self.country_code} and {self.national_digits} digits, "
            f"or an internal number of {self.short_number_length} digits", field)

    def is_allowed(self, raw: object) -> bool:
        """True when ``validate`` would accept the number."""
        try:
            self.validate(raw)
        except ValidationError:
            return False
        return True
