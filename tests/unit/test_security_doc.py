"""docs/security.md stays true: every test its threat table names exists, and every setting it
names is one the engine reads (and so one README documents)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.test_readme import variables_read_by_the_engine

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "security.md").read_text()


def test_every_named_test_exists() -> None:
    missing = []
    for path, names in re.findall(r"`((?:unit|integration|browser)/[\w/]+\.py)((?:::\w+)*)`", DOC):
        source = ROOT / "tests" / path
        if not source.exists():
            missing.append(path)
            continue
        text = source.read_text()
        missing += [f"{path}::{name}" for name in names.split("::")[1:]
                    if not re.search(rf"^(?:async )?def {name}\b", text, flags=re.MULTILINE)]
    # "::name" cells that continue the previous path
    for row in re.findall(r"^\|.*\|$", DOC, flags=re.MULTILINE):
        last = None
        for path, tail in re.findall(r"`(?:((?:unit|integration|browser)/[\w/]+\.py)(?:::\w+)*|::(\w+))`", row):
            if path:
                last = ROOT / "tests" / path
            elif last is not None and not re.search(rf"^(?:async )?def {tail}\b", last.read_text(), re.MULTILINE):
                missing.append(f"{last.name}::{tail}")
    assert missing == [], f"docs/security.md names tests that do not exist: {missing}"


def test_every_named_setting_is_one_the_engine_reads() -> None:
    channel_variables = {"VECHE_PARTICIPANT"}  # set on calls by the dialplan and the IVR, not a setting
    named = set(re.findall(r"`(VECHE_[A-Z0-9_]+)`", DOC)) - channel_variables
    unknown = sorted(named - variables_read_by_the_engine())
    assert unknown == [], f"docs/security.md names settings the engine does not read: {unknown}"
