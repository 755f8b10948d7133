"""The one rule for every one-line text field a customer types (conference subject, participant,
contact and account names, template, room and location names): such text ends up in mail headers,
calendar files, CSV exports, logs and other people's screens, so a line break, a control
character or a text-direction override in it could break a message or disguise what it says.
Portal, API and CLI reach it through the domain checks the services call. Pure: no I/O."""

from __future__ import annotations

import unicodedata

from engine.domain.errors import ValidationError

SUBJECT_MAX = 200
NAME_MAX = 100  # person, contact, room, template and account names
LOCATION_MAX = 100

# Characters no one-line field may hold: C0 controls (CR, LF, TAB included), DEL and C1 controls
# (NEL U+0085 included), the Unicode line and paragraph separators, and the bidi embeddings,
# overrides and isolates that reorder how the text around them is shown.
LINE_SEPARATORS = frozenset("\u2028\u2029")
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

MESSAGE_BAD_CHARACTER = ("This field must be one line of text without control characters "
                         "or text-direction overrides")
MESSAGE_REQUIRED = "This field is required"
MESSAGE_TOO_LONG = "Too long: at most %(limit)d characters"
MESSAGE_NOT_TEXT = "This field must be text"


class TextRefused(ValidationError):
    """A one-line field broke the text rule. ``str()`` is the English message with its values;
    ``message_id`` and ``values`` let the portal translate it."""

    code = "invalid_text"

    def __init__(self, message_id: str, field: str, **values: int) -> None:
        super().__init__(message_id % values if values else message_id, field)
        self.message_id = message_id
        self.values = values


def forbidden_character(value: str) -> str | None:
    """The first character the rule does not allow in one-line text, or None."""
    for char in value:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F or char in LINE_SEPARATORS or char in BIDI_CONTROLS \
                or 0xD800 <= code <= 0xDFFF:  # a lone surrogate is no character at all
            return char
    return None


def one_line(raw: object, field: str, *, limit: int, required: bool = False) -> str:
    """``raw`` as stored: NFC-normalised and trimmed, or TextRefused naming ``field`` when it
    holds a forbidden character, is empty although required, or is longer than ``limit``.
    None counts as empty."""
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise TextRefused(MESSAGE_NOT_TEXT, field)
    if forbidden_character(raw) is not None:
        raise TextRefused(MESSAGE_BAD_CHARACTER, field)
    value = unicodedata.normalize("NFC", raw).strip()
    if required and not value:
        raise TextRefused(MESSAGE_REQUIRED, field)
    if len(value) > limit:
        raise TextRefused(MESSAGE_TOO_LONG, field, limit=limit)
    return value


def subject(raw: object, field: str = "subject", *, required: bool = True) -> str:
    return one_line(raw, field, limit=SUBJECT_MAX, required=required)


def name(raw: object, field: str = "name", *, required: bool = False) -> str:
    return one_line(raw, field, limit=NAME_MAX, required=required)


def location(raw: object, field: str = "location") -> str:
    return one_line(raw, field, limit=LOCATION_MAX)


def flatten(value: object) -> str:
    """Stored text made safe for one line of output (a mail header, a calendar property):
    every character the rule forbids becomes a space. For text stored before the rule existed."""
    text = "" if value is None else str(value)
    if forbidden_character(text) is None:
        return text
    return "".join(" " if forbidden_character(char) is not None else char for char in text).strip()
