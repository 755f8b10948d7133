"""Rules of the Idempotency-Key header: which keys are acceptable and what makes two requests
"the same", so that a retried or double-submitted create is answered once."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from engine.domain.errors import ValidationError

KEY_MAX_LENGTH = 255
_KEY = re.compile(rf"^[\x21-\x7e]{{1,{KEY_MAX_LENGTH}}}$")  # visible ASCII, no spaces


def check_key(raw: str) -> str:
    """The key as sent, or ValidationError naming the header (1-255 visible ASCII characters)."""
    if not _KEY.match(raw):
        raise ValidationError("the Idempotency-Key header takes 1 to 255 visible ASCII characters",
                              "Idempotency-Key")
    return raw


def fingerprint(operation: str, body: Any) -> str:
    """A digest of the operation and its JSON body, independent of key order and whitespace."""
    canonical = json.dumps([operation, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
