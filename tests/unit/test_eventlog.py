"""The event log reads as sentences, and every sentence, reason and cause it can produce is in
both catalogues (no English in the Russian portal)."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from engine.domain import eventlog
from engine.domain.eventlog import actor_words, describe

LOCALE = Path(__file__).resolve().parents[2] / "web" / "locale"
KINDS = ["conference.scheduled", "conference.updated", "conference.cancelled", "conference.start_requested",
         "conference.started", "conference.warned", "conference.extended", "conference.extend_refused",
         "conference.ended", "conference.failed", "conference.room_closed", "conference.interrupted",
         "conference.resumed", "conference.resume_failed", "participant.added", "participant.joined",
         "participant.left", "participant.failed", "participant.role", "participant.kicked", "recording.started",
         "recording.stopped", "recording.announced", "recording.ready", "recording.deleted", "recording.failed",
         "keypad.pressed", "participant.dialing", "participant.muted", "participant.unmuted", "conference.locked",
         "conference.unlocked", "something.new"]


def _catalogue(lang: str) -> dict[str, str]:
    with (LOCALE / lang / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        return {m.id: m.string for m in read_po(fp) if m.id}


def _ids() -> set[str]:
    found: set[str] = set()
    for kind in KINDS:
        for detail in ({}, {"immediate": True, "auto": True, "reason": "deadline", "role": "chair",
                            "origin": "dialin", "cause": 16, "minutes": 15}):
            sentence = describe(kind, detail)
            found.add(sentence.message_id)
            found |= {v for k, v in sentence.values.items() if k == "reason" and v}
            if sentence.cause:
                found.add(sentence.cause)
    found |= set(eventlog.END_REASONS.values()) | set(eventlog.FAILURE_REASONS.values())
    found |= set(eventlog.HANGUP_CAUSES.values())
    found |= {actor_words(a, 7) for a in ("engine", "operator", "account:7", "account:8")}
    return found


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_sentence_is_catalogued(lang: str) -> None:
    catalogue = _catalogue(lang)
    missing = sorted(i for i in _ids() if i not in catalogue or (lang == "ru" and not catalogue[i]))
    assert not missing, missing


def test_a_failed_call_reads_as_a_sentence_with_its_cause() -> None:
    sentence = describe("participant.failed", {"reason": "error", "cause": 16, "number": "375291000001"})
    assert sentence.message_id % sentence.values == "375291000001 was not reached: the call failed"
    assert sentence.cause == "normal call clearing"
    ru = _catalogue("ru")
    assert ru[sentence.message_id] % {**sentence.values, "reason": ru[sentence.values["reason"]]} == \
        "До 375291000001 не удалось дозвониться: вызов не удался"
