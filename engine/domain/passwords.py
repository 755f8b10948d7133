"""What makes a password too easy to guess, which account creation and password changes refuse
(a guessed password defeats every other protection of an account): the shipped list of common
passwords, and passwords made of one repeated character, one repeated chunk or one run of
neighbouring characters ("aaaaaaaaaa", "abcabcabcabc", "1234567890", "qwertyuiop")."""

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


# Rows of a keyboard and the alphabet, forwards; a run along one of them (either way) is a sequence.
_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm",
              "абвгдеёжзийклмнопрстуфхцчшщъыьэюя", "йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю",
              "1qaz2wsx3edc", "qazwsxedcrfv")


def repeats_a_chunk(password: str) -> bool:
    """True when the password is one chunk of at most a third of its length, repeated."""
    value = password.lower()
    for size in range(1, len(value) // 2 + 1):
        if len(value) % size == 0 and value[:size] * (len(value) // size) == value and len(value) // size >= 3:
            return True
    return False


def is_sequence(password: str) -> bool:
    """True when the password (ignoring case) is a stretch of one of the sequences, either way,
    possibly wrapping around ("7890123456")."""
    value = password.lower()
    for sequence in _SEQUENCES:
        for line in (sequence, sequence[::-1]):
            if value in line * (len(value) // len(line) + 2):
                return True
    return False
