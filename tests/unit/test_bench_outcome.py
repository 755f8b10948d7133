"""The benchmarks' bookkeeping: when a run is over, how failed calls are counted, and the
min/median/max summary (bench/outcome.py, bench/raw_ami.py:track)."""

from __future__ import annotations

import math
from collections import Counter

from bench.outcome import TIMEOUT_REASON, CallTally, ratio, reasons_text, summarize
from bench.raw_ami import track


def test_run_is_over_when_every_call_joined_or_ended() -> None:
    tally = CallTally(3)
    tally.join("a", 1.0)
    tally.fail("b", "OriginateResponse Reason 0")
    assert not tally.finished and not tally.all_joined
    tally.join("c", 2.5)
    assert tally.finished and not tally.all_joined
    assert tally.last_join_at == 2.5
    assert tally.reasons() == Counter({"OriginateResponse Reason 0": 1})


def test_first_outcome_of_a_call_wins() -> None:
    tally = CallTally(2)
    tally.join("a", 1.0)
    tally.fail("a", "hangup cause 16")  # the Hangup after the join is not a failure
    tally.fail("b", "hangup cause 34")
    tally.join("b", 2.0)  # nor is a late join of a call already failed
    tally.join("a", 3.0)
    assert tally.joined == {"a"} and tally.failed == {"b": "hangup cause 34"}
    tally.fail("b", "OriginateResponse Reason 8")  # both reports of one failure, in any order
    tally.fail("b", "hangup cause 34")
    assert tally.failed == {"b": "OriginateResponse Reason 8 + hangup cause 34"}
    assert tally.last_join_at == 1.0


def test_deadline_counts_the_calls_without_outcome() -> None:
    tally = CallTally(4)
    tally.join("a", 1.0)
    tally.fail("b", "OriginateResponse Reason 8")
    tally.close()
    assert tally.finished and not tally.all_joined
    assert tally.reasons() == Counter({TIMEOUT_REASON: 2, "OriginateResponse Reason 8": 1})
    assert reasons_text(tally.reasons()) == f"2× {TIMEOUT_REASON}, 1× OriginateResponse Reason 8"


def test_track_follows_joins_failed_originates_and_hangups_of_either_leg() -> None:
    tally = CallTally(4)
    calls = {"raw-r-c0", "raw-r-c1", "raw-r-c2", "raw-r-c3"}
    events = [
        {"Event": "ConfbridgeJoin", "Uniqueid": "raw-r-c0", "Conference": "r"},
        {"Event": "ConfbridgeJoin", "Uniqueid": "raw-r-c9", "Conference": "r"},  # not ours
        {"Event": "ConfbridgeJoin", "Uniqueid": "raw-r-c1", "Conference": "other"},  # another room
        {"Event": "OriginateResponse", "Uniqueid": "raw-r-c1", "Response": "Failure", "Reason": "0"},
        {"Event": "Hangup", "Uniqueid": "raw-r-c2-2", "Cause": "34", "Cause-txt": "Circuit/channel congestion"},
        {"Event": "OriginateResponse", "Uniqueid": "raw-r-c3", "Response": "Success", "Reason": "4"},
    ]
    for at, event in enumerate(events):
        track(tally, event, calls, "r", float(at))
    assert tally.joined == {"raw-r-c0"}
    assert tally.failed == {"raw-r-c1": "OriginateResponse Reason 0",
                            "raw-r-c2": "hangup cause 34 (Circuit/channel congestion)"}
    assert not tally.finished  # raw-r-c3 was answered and has not joined yet
    track(tally, {"Event": "ConfbridgeJoin", "Uniqueid": "raw-r-c3", "Conference": "r"}, calls, "r", 9.0)
    track(tally, {"Event": "Hangup", "Uniqueid": "raw-r-c3", "Cause": "16"}, calls, "r", 10.0)
    assert tally.finished and tally.last_join_at == 9.0 and len(tally.failed) == 2


def test_summary_min_median_max_and_ratio() -> None:
    figure = summarize([0.3, 0.1, 0.2, 0.5])
    assert (figure.minimum, figure.median, figure.maximum, figure.count) == (0.1, 0.25, 0.5, 4)
    assert figure.fmt() == "0.250 s (0.100–0.500)"
    assert summarize([2.0]).fmt() == "2.000 s"
    assert summarize([52345.6, 50000.0]).fmt("", 0) == "51173 (50000–52346)"
    empty = summarize([])
    assert empty.count == 0 and math.isnan(empty.median) and empty.fmt() == "—"
    assert ratio(summarize([0.6]), summarize([0.5])) == "1.20x"
    assert ratio(empty, summarize([0.5])) == "—"


def test_asterisk_complaints_are_counted_alike(tmp_path) -> None:  # noqa: ANN001
    from types import SimpleNamespace

    from bench._stack import asterisk_complaints

    log = tmp_path / "log" / "messages.log"
    log.parent.mkdir()
    old = "[2026-11-26 00:56:40.001] WARNING[1][C-00000001] chan.c: before the run\n"
    log.write_text(old + "".join(
        f"[2026-11-26 00:56:41.{i:03d}] WARNING[2{i}][C-0000{i:04x}] taskprocessor.c: Taskprocessor "
        f"'stasis/m:manager:core-0000{i:04x}' queue reached {500 + i} scheduled tasks (high water mark: 500).\n"
        for i in range(3)) + "[2026-11-26 00:56:42.000] ERROR[7] channel.c: Channel Unique ID 'raw-x-c0028' "
        "already in use\n[2026-11-26 00:56:42.001] NOTICE[7] loader.c: not a complaint\n")
    text = asterisk_complaints(SimpleNamespace(base=tmp_path), since=len(old))
    assert text == ("3× `WARNING taskprocessor.c: Taskprocessor 'stasis/m:manager:N' queue reached N scheduled "
                    "tasks (high water mark: N).`; 1× `ERROR channel.c: Channel Unique ID 'N' already in use`")
