"""The README stays the truth: its two commands exist, .ci/run is its test command, and every
environment variable the engine reads is documented."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def variables_read_by_the_engine() -> set[str]:
    config = (ROOT / "engine" / "config.py").read_text()
    names = {f"VECHE_{name}" for name in re.findall(r'(?<![.\w])(?:get|positive)(?:_\w+)?\("([A-Z0-9_]+)"', config)}
    names |= set(re.findall(r"\b(VECHE_[A-Z0-9_]+)\b", config))
    names |= set(re.findall(r'env\.get\("([A-Z][A-Z0-9_]+)"\)', config))
    stack = (ROOT / "engine" / "stack.py").read_text()
    names |= set(re.findall(r'environ\.get\("(VECHE_[A-Z0-9_]+)"', stack))
    return names


def test_every_variable_is_documented() -> None:
    names = variables_read_by_the_engine()
    assert {"DATABASE_URL", "ASTERISK_AMI_URL", "VECHE_WEB_PORT", "VECHE_LOG_JSON"} <= names
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert missing == [], f"add these to README.md's configuration table: {missing}"


def test_the_two_commands_and_ci() -> None:
    assert "./veche run" in README and "./veche test" in README
    script = (ROOT / "veche").read_text()
    assert "run)" in script and "test)" in script
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    assert ci[-1] == "./veche test"


def test_default_ports_are_the_documented_ones() -> None:
    from engine.config import Settings

    defaults = Settings()
    for text in (f"{defaults.web_host}:{defaults.web_port}", f"127.0.0.1:{defaults.sip_port}",
                 f"127.0.0.1:{defaults.ami.port}", f"{defaults.agi_host}:{defaults.agi_port}",
                 defaults.trunk_target, f"`{defaults.access_number}`"):
        assert text in README, text
