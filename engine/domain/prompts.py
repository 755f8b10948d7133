"""The voice prompts an operator may replace per language: a fixed catalogue of names (every core
sound the engine plays, and the Veche phrases the core sets lack), the limits of an upload, and
which sound a node plays for a prompt. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.errors import ValidationError
from engine.domain.speech import LANGUAGES

# Core sounds the engine plays (IVR, announcements, keypad answers): a replacement is played
# instead of the core sound.
CORE_PROMPTS: tuple[str, ...] = (
    "conf-getconfno", "conf-getpin", "conf-invalidpin", "conf-locked", "conf-full", "please-try-call-later",
    "goodbye", "beep", "vm-youhave", "conf-extended", "conf-nonextended", "confbridge-conf-end",
    "conf-now-recording", "descending-2tone", "minute", "minutes", "second", "seconds", "queue-minute",
    "queue-minutes", "queue-less-than", "confbridge-muted", "confbridge-unmuted", "conf-now-muted",
    "conf-now-unmuted", "confbridge-locked", "confbridge-unlocked", "confbridge-only-participant",
    "confbridge-there-are", "confbridge-participants", "confbridge-invalid", "vm-press", "confbridge-mute-out",
    "confbridge-lock-out",
)
# Phrases no core set has: spoken from the uploaded file when there is one, otherwise composed
# from core sounds (README, "Replacing prompts", lists how).
VECHE_ONE_F = "veche-one-f"  # "одна"
VECHE_TWO_F = "veche-two-f"  # "две"
VECHE_MINUTES_FEW = "veche-minutes-few"  # "минуты" (2-4, 22-24, ...)
VECHE_MUTE_GUESTS = "veche-mute-guests"  # keypad menu: "mute or unmute all guests"
VECHE_EXTEND = "veche-extend"  # keypad menu: "extend the conference by 15 minutes"
VECHE_TIME_LEFT = "veche-time-left"  # keypad menu: "hear the minutes left"
VECHE_PHRASES: tuple[str, ...] = (VECHE_ONE_F, VECHE_TWO_F, VECHE_MINUTES_FEW, VECHE_MUTE_GUESTS, VECHE_EXTEND,
                                  VECHE_TIME_LEFT)
NAMES: tuple[str, ...] = CORE_PROMPTS + VECHE_PHRASES

# The format every node plays: 8 kHz, mono, 16-bit signed PCM in a WAV file (Asterisk's format_wav).
NODE_EXTENSION = "wav"
NODE_RATE = 8000
UPLOAD_KINDS = ("wav", "mp3")


@dataclass(frozen=True)
class UploadLimits:
    """How large and how long an uploaded prompt may be."""

    max_bytes: int = 2 * 1024 * 1024
    max_seconds: float = 30.0


def validate_name(value: object) -> str:
    """One of NAMES; anything else (a path, an unknown sound) is refused."""
    if not isinstance(value, str) or value not in NAMES:
        raise ValidationError("unknown prompt: choose one of the listed prompt names", "name")
    return value


def validate_language(value: object) -> str:
    if not isinstance(value, str) or value not in LANGUAGES:
        raise ValidationError("the voice language must be ru or en", "language")
    return value


def sniff_kind(head: bytes) -> str:
    """'wav' or 'mp3' from the first bytes of an upload; ValidationError for anything else."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    raise ValidationError("the file is not a WAV or MP3 recording", "file")


def check_size(size: int, limits: UploadLimits) -> None:
    if size == 0:
        raise ValidationError("the file is empty", "file")
    if size > limits.max_bytes:
        raise ValidationError("the file is larger than the upload limit", "file")


def check_duration(seconds: float, limits: UploadLimits) -> None:
    if not seconds > 0:
        raise ValidationError("the file holds no audio", "file")
    if seconds > limits.max_seconds:
        raise ValidationError("the recording is longer than the upload limit", "file")


def node_path(node_dir: str, language: str, name: str) -> str:
    """What a node plays for a replaced prompt: its file without the extension (Asterisk adds it)."""
    return f"{node_dir.rstrip('/')}/{language}/{name}"


def file_name(language: str, name: str) -> str:
    """The replacement's file, relative to the prompts directory."""
    return f"{language}/{name}.{NODE_EXTENSION}"
