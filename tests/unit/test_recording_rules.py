"""The recording rules: which file a node may report, recorder ids, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.domain import recording as rules


def test_only_the_recorders_own_file_in_a_monitor_spool_is_accepted() -> None:
    call_id = rules.new_call_id()
    good = f"/var/lib/veche/test-1/spool/monitor/{call_id}.wav"
    assert str(rules.raw_path_in_root(good, call_id)) == good
    for bad in (f"/var/lib/veche/test-1/spool/monitor/{rules.new_call_id()}.wav",  # another recorder's
                f"/var/lib/veche/../../etc/spool/monitor/{call_id}.wav",
                f"/var/lib/veche/../spool/monitor/{call_id}.wav",
                f"/var/lib/veche/a/b/spool/monitor/{call_id}.wav",
                f"/etc/passwd\n/var/lib/veche/x/spool/monitor/{call_id}.wav",
                f"spool/monitor/{call_id}.wav", f"/var/lib/veche/x/spool/monitor/{call_id}.wav.gsm", ""):
        assert rules.raw_path_in_root(bad, call_id) is None, bad


def test_recorder_ids_and_retention() -> None:
    call_id = rules.new_call_id()
    assert rules.is_recorder(call_id) and rules.is_recorder(f"{call_id}-2")
    assert not rules.is_recorder("an-0123456789abcdef") and not rules.is_recorder("1700000000.12")
    now = datetime(2030, 1, 31, tzinfo=UTC)
    assert rules.expired_before(now, 30) == now - timedelta(days=30)
    assert rules.converted_name(7, call_id) == f"7-{call_id}.ogg"
