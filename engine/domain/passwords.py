"""The list of common passwords that account creation and password changes refuse (a guessed
password defeats every other protection of an account)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower-cased (lines starting with # are comments)."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def is_common(password: str) -> bool:
    """True when the password (ignoring case and surrounding spaces) is on the list."""
    return password.strip().lower() in common_passwords()
