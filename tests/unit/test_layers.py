"""The layer contracts of pyproject.toml ([tool.importlinter]): entry points over services over
adapters over the domain, the web never importing an adapter or the composition root, and no
import circle; checked by import-linter's ``lint-imports`` on the code as it is."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    command = shutil.which("lint-imports")
    assert command, "lint-imports is missing: install the test extras (pip install import-linter)"
    result = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
