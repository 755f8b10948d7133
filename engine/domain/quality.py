"""Call quality from RTCP numbers: Asterisk's CHANNEL(rtcp,all) parsed, and a simplified ITU-T
G.107 E-model turning jitter, loss and round-trip time into an estimated MOS and a verdict."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"
    UNKNOWN = "unknown"


# Equipment impairment Ie and packet-loss robustness Bpl per codec (ITU-T G.113 appendix I).
CODEC_IMPAIRMENT: dict[str, tuple[float, float]] = {
    "ulaw": (0.0, 25.1), "alaw": (0.0, 25.1), "g722": (0.0, 25.1), "slin": (0.0, 25.1),
    "opus": (0.0, 25.1), "g729": (11.0, 19.0), "gsm": (20.0, 10.0), "ilbc": (10.0, 32.0),
}
DEFAULT_IMPAIRMENT = (0.0, 25.1)
CODEC_DELAY_MS = 10.0  # packetisation and look-ahead added to the one-way delay
GOOD_MOS = 4.0
FAIR_MOS = 3.6


@dataclass(frozen=True)
class RtcpStats:
    """One call leg's media numbers as Asterisk reports them (jitter and rtt in ms)."""

    jitter_ms: float
    loss_percent: float
    rtt_ms: float
    packets: int  # packets received and sent; 0 means no media seen yet


def parse_rtcp_all(text: str) -> RtcpStats | None:
    """Parse ``ssrc=..;lp=..;rxjitter=..;rxcount=..;txjitter=..;txcount=..;rlp=..;rtt=..``.
    Jitter is the worse direction; loss is the worse of what we lost receiving (lp of
    rxcount+lp) and what the far end reported lost (rlp of txcount). None when not parseable."""
    values: dict[str, float] = {}
    for item in text.split(";"):
        key, sep, raw = item.strip().partition("=")
        if not sep:
            continue
        try:
            values[key] = float(raw)
        except ValueError:
            continue
    if "rxcount" not in values and "txcount" not in values:
        return None
    rx, tx = values.get("rxcount", 0.0), values.get("txcount", 0.0)
    lost_rx, lost_tx = max(0.0, values.get("lp", 0.0)), max(0.0, values.get("rlp", 0.0))
    loss_rx = 100.0 * lost_rx / (rx + lost_rx) if rx + lost_rx > 0 else 0.0
    loss_tx = 100.0 * lost_tx / tx if tx > 0 else 0.0
    jitter = max(values.get("rxjitter", 0.0), values.get("txjitter", 0.0)) * 1000.0
    return RtcpStats(jitter_ms=jitter, loss_percent=min(100.0, max(loss_rx, loss_tx)),
                     rtt_ms=max(0.0, values.get("rtt", 0.0)) * 1000.0, packets=int(rx + tx))


def codec_name(native_format: str) -> str:
    """``(alaw)`` or ``(ulaw|alaw)`` from CHANNEL(audionativeformat) -> ``alaw``."""
    return native_format.strip().strip("()").split("|")[0].strip()


def r_factor(jitter_ms: float, loss_percent: float, rtt_ms: float, codec: str = "") -> float:
    """Transmission rating R: 93.2 minus the delay impairment (one-way delay with a jitter
    buffer of twice the jitter) and the effective equipment impairment under packet loss."""
    delay = rtt_ms / 2.0 + 2.0 * jitter_ms + CODEC_DELAY_MS
    delay_impairment = 0.024 * delay + (0.11 * (delay - 177.3) if delay > 177.3 else 0.0)
    ie, bpl = CODEC_IMPAIRMENT.get(codec.lower(), DEFAULT_IMPAIRMENT)
    loss = max(0.0, loss_percent)
    ie_effective = ie + (95.0 - ie) * loss / (loss + bpl)
    return 93.2 - delay_impairment - ie_effective


def mos_from_r(r: float) -> float:
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)


def estimate_mos(jitter_ms: float, loss_percent: float, rtt_ms: float, codec: str = "") -> float:
    return round(mos_from_r(r_factor(jitter_ms, loss_percent, rtt_ms, codec)), 2)


def verdict(mos: float | None) -> Verdict:
    if mos is None:
        return Verdict.UNKNOWN
    if mos >= GOOD_MOS:
        return Verdict.GOOD
    if mos >= FAIR_MOS:
        return Verdict.FAIR
    return Verdict.POOR
