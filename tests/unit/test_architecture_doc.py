"""docs/architecture.md stays true: every file it names exists, and every function or class it
names (``path.py:Name.method``) is defined there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def test_every_named_file_and_definition_exists() -> None:
    missing = []
    for path, names in re.findall(r"`((?:engine|web|asterisk-config|tests)/[\w/.\-]+)(?::([\w.]+))?", DOC):
        path = path.rstrip(".")
        source = ROOT / path
        if not source.exists():
            missing.append(path)
            continue
        for name in filter(None, (names or "").split(".")):
            if not re.search(rf"^\s*(?:async )?(?:def|class) {name}\b", source.read_text(), re.MULTILINE):
                missing.append(f"{path}:{name}")
    assert missing == [], f"docs/architecture.md names what is not there: {missing}"
