"""The AMI user's eventfilter (asterisk-config/manager.conf, and the same line in docs/deploy.md)
lets through every event the engine reads and keeps in Asterisk the ones it does not: an event
name matches whole, so ``Hangup`` does not also let ``HangupRequest`` through."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.adapters.asterisk.events import AMI_EVENTS

ROOT = Path(__file__).resolve().parents[2]


def _eventfilter(path: Path) -> re.Pattern[str]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("eventfilter = ")]
    assert len(lines) == 1, f"{path}: one eventfilter line expected"
    return re.compile(lines[0].removeprefix("eventfilter = "))


@pytest.mark.parametrize("path", [ROOT / "asterisk-config" / "manager.conf", ROOT / "docs" / "deploy.md"],
                         ids=["manager.conf", "deploy.md"])
def test_the_eventfilter_passes_what_the_engine_reads_and_nothing_named_alike(path: Path) -> None:
    allowed = _eventfilter(path)
    for name in AMI_EVENTS:
        assert allowed.search(f"Event: {name}\r\nPrivilege: call,all\r\n"), name
    for name in ("HangupRequest", "HangupHandlerPush", "DialEnd", "DialState", "Newchannel", "VarSet",
                 "Newexten", "ConfbridgeJoinRequest", "OriginateResponses"):
        assert not allowed.search(f"Event: {name}\r\nPrivilege: call,all\r\n"), name
