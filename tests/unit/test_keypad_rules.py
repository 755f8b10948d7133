"""Keypad rules: which key a role has, and how numbers and the menu are spoken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.domain import keypad as rules
from engine.domain.keypad import KeyAction
from engine.domain.model import Role

CONFBRIDGE = (Path(__file__).resolve().parents[2] / "asterisk-config" / "confbridge.conf").read_text()


def test_roles_and_keys() -> None:
    assert rules.action_for("5", Role.CHAIR) == KeyAction.EXTEND
    assert rules.action_for("2", Role.GUEST) is None and rules.action_for("3", Role.GUEST) is None
    assert rules.action_for("5", Role.GUEST) is None and rules.action_for("4", Role.GUEST) == KeyAction.COUNT
    assert rules.action_for("9", Role.CHAIR) is None and rules.action_for("", Role.CHAIR) is None


def test_the_confbridge_menus_offer_exactly_the_keys_of_each_role() -> None:
    def keys(menu: str) -> set[str]:
        section = CONFBRIDGE.split(f"[{menu}]", 1)[1].split("\n[", 1)[0]
        return {line.split("=")[0].strip()[1:] for line in section.splitlines() if line.startswith("*")}

    chair = {k for k, a in rules.KEYS.items() if a in rules.ALLOWED[Role.CHAIR]}
    guest = {k for k, a in rules.KEYS.items() if a in rules.ALLOWED[Role.GUEST]}
    assert keys("veche_chair_menu") == chair
    assert keys("veche_guest_menu") == guest == keys("veche_guest_invited_menu")
    assert "dialplan_exec(veche-keypad,5,1)" in CONFBRIDGE


def test_spoken_answers() -> None:
    assert rules.count_answer(1) == [rules.SAY_ALONE]
    assert rules.count_answer(4) == [rules.SAY_THERE_ARE, 4, rules.SAY_PARTICIPANTS]
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert rules.minutes_left(now + timedelta(minutes=12, seconds=59), now, 60) == 12
    assert rules.minutes_left(now - timedelta(minutes=1), now, 60) == 0
    assert rules.time_answer(0) == [rules.SAY_LESS_THAN, 1, rules.SAY_MINUTE]
    assert rules.time_answer(1) == [1, rules.SAY_MINUTE]
    assert rules.time_answer(7) == [7, rules.SAY_MINUTES]
    menu = rules.menu_prompts(Role.GUEST)
    assert menu[0] == rules.SAY_PRESS and [p for p in menu if p.startswith("digits/") and p != "digits/star"] == [
        "digits/1", "digits/4", "digits/6"]


def test_every_answer_is_a_core_sound_of_the_nodes() -> None:
    from engine.config import Settings

    # ./veche test builds the root file system before any test runs: a missing one is a broken setup
    sounds = Settings.from_env().cache_dir / "rootfs" / "usr" / "share" / "asterisk" / "sounds" / "en_US_f_Allison"
    assert sounds.is_dir(), f"{sounds} is missing: the Asterisk root file system was not built"
    names = {p for role in Role for p in rules.menu_prompts(role)}
    names |= {v for k, v in vars(rules).items() if k.startswith("SAY_")}
    missing = sorted(n for n in names if not (sounds / f"{n}.gsm").exists())
    assert missing == []
