"""The AMI user's event filters (asterisk-config/manager.conf, and the same lines in docs/deploy.md)
let through every event the engine reads and keep in Asterisk the ones it does not: an event name
matches whole, so ``Hangup`` does not also let ``HangupRequest`` through, and of the DialBegins
only a dial-out's callee leg passes. The filters are read here with Asterisk's rules for advanced
filters; tests/integration/test_ami_events.py holds them against the real Asterisk."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.adapters.asterisk import contract
from engine.adapters.asterisk.events import AMI_EVENTS

ROOT = Path(__file__).resolve().parents[2]
_FILTER = re.compile(r"eventfilter\((?P<criteria>.*)\) =(?: (?P<value>.*))?")


def _filters(path: Path) -> list[tuple[dict[str, str], str]]:
    found = []
    for line in path.read_text().splitlines():
        if not line.startswith("eventfilter"):
            continue
        match = _FILTER.fullmatch(line)
        assert match, f"{path}: not an advanced filter: {line}"
        criteria = dict(re.findall(r"(\w+)\(([^)]*)\)", match["criteria"]))
        assert set(criteria) <= {"action", "name", "header", "method"}, line
        assert criteria.get("action", "include") == "include", line
        found.append((criteria, match["value"] or ""))
    assert found, f"{path}: no eventfilter lines"
    return found


def _header_matches(subject: str, method: str, value: str) -> bool:
    if method == "exact":
        return subject == value
    if method == "starts_with":
        return subject.startswith(value)
    if method == "ends_with":
        return subject.endswith(value)
    if method == "contains":
        return value in subject
    if method == "regex":
        return re.search(value, subject) is not None
    return method == "none"


def _passes(filters: list[tuple[dict[str, str], str]], name: str, headers: dict[str, str]) -> bool:
    """Asterisk's rule for include filters only: an event matching any one of them is reported."""
    for criteria, value in filters:
        if "name" in criteria and criteria["name"] != name:
            continue
        header = criteria.get("header")
        if header is not None and (header not in headers or not _header_matches(
                headers[header], criteria.get("method", "none"), value)):
            continue
        return True
    return False


@pytest.mark.parametrize("path", [ROOT / "asterisk-config" / "manager.conf", ROOT / "docs" / "deploy.md"],
                         ids=["manager.conf", "deploy.md"])
def test_the_filters_pass_what_the_engine_reads_and_nothing_named_alike(path: Path) -> None:
    filters = _filters(path)
    callee_leg = {"Channel": "Local/375291234567@veche-dialout-00000001;2",
                  "Uniqueid": f"veche-c0001{contract.FAR_LEG_SUFFIX}"}
    for name in AMI_EVENTS:
        assert _passes(filters, name, callee_leg), name
    for name in ("HangupRequest", "HangupHandlerPush", "DialEnd", "DialState", "Newchannel", "VarSet",
                 "Newexten", "ConfbridgeJoinRequest", "OriginateResponses", "Reload"):
        assert not _passes(filters, name, callee_leg), name
    # the Originate's own DialBegin names only its destination, the Local channel's first half
    assert not _passes(filters, "DialBegin", {"DestChannel": "Local/375291234567@veche-dialout-00000001;1",
                                               "DestUniqueid": "veche-c0001"})
    assert not _passes(filters, "DialBegin", {"Uniqueid": "1764201234.17", "DestUniqueid": "1764201234.18"})


def test_deploy_guide_shows_the_filters_of_the_shipped_config() -> None:
    assert _filters(ROOT / "docs" / "deploy.md") == _filters(ROOT / "asterisk-config" / "manager.conf")
