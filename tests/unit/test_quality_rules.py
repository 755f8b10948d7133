"""The E-model estimate and the parser of Asterisk's CHANNEL(rtcp,all)."""

from __future__ import annotations

from engine.domain.quality import Verdict, codec_name, estimate_mos, parse_rtcp_all, verdict

SAMPLE = ("ssrc=1986507853;themssrc=3739283087;lp=0;rxjitter=0.000000;rxcount=234;txjitter=0.000375;"
          "txcount=350;rlp=0;rtt=0.000000;rxmes=0.000000;txmes=88.087887")


def test_parse_asterisk_rtcp_all() -> None:
    stats = parse_rtcp_all(SAMPLE)
    assert stats is not None
    assert stats.packets == 584 and stats.loss_percent == 0.0 and stats.rtt_ms == 0.0
    assert abs(stats.jitter_ms - 0.375) < 1e-9


def test_loss_is_the_worse_direction() -> None:
    stats = parse_rtcp_all("lp=10;rxcount=90;rlp=5;txcount=100;rxjitter=0.02;txjitter=0.01;rtt=0.1")
    assert stats is not None
    assert stats.loss_percent == 10.0 and stats.jitter_ms == 20.0 and stats.rtt_ms == 100.0


def test_unparseable_is_none() -> None:
    assert parse_rtcp_all("") is None
    assert parse_rtcp_all("garbage") is None


def test_codec_name() -> None:
    assert codec_name("(alaw)") == "alaw"
    assert codec_name("(ulaw|alaw)") == "ulaw"


def test_mos_falls_with_impairments() -> None:
    clean = estimate_mos(0, 0, 0, "alaw")
    assert 4.3 <= clean <= 4.5 and verdict(clean) == Verdict.GOOD
    lossy = estimate_mos(20, 5, 100, "alaw")
    assert verdict(lossy) in (Verdict.FAIR, Verdict.POOR) and lossy < clean
    awful = estimate_mos(80, 20, 600, "ulaw")
    assert verdict(awful) == Verdict.POOR
    assert estimate_mos(0, 0, 0, "g729") < clean  # a compressing codec costs quality
    assert verdict(None) == Verdict.UNKNOWN
