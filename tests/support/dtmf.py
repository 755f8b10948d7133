"""Writes one pcap per digit string with RFC 4733 events whose RTP timestamps and sequence
numbers rise, so Asterisk takes every digit (SIPp's shipped dtmf_2833_*.pcap share one
timestamp, and Asterisk drops a digit that follows another)."""

from __future__ import annotations

import struct
from pathlib import Path

EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
PAYLOAD_TYPE = 101
PACKET_MS = 20
SAMPLES_PER_PACKET = 8 * PACKET_MS


def _udp_frame(payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 40000, 40000, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    eth = b"\x00" * 12 + b"\x08\x00"
    return eth + ip + udp


def dtmf_packets(digits: str, digit_ms: int = 120, gap_ms: int = 120,
                 pause_ms: int = 600, first_seq: int = 1000, first_ts: int = 160_000) -> list[tuple[float, bytes]]:
    """(send time in seconds, RTP packet) for ``digits``; a ``,`` in the string is a pause.
    Several pcaps played one after the other on one call need rising ``first_seq``/``first_ts``."""
    packets: list[tuple[float, bytes]] = []
    seq, ts, clock = first_seq, first_ts, 0.0
    ssrc = 0x5EC4E
    for digit in digits:
        if digit == ",":
            clock += pause_ms / 1000
            ts += pause_ms * 8
            continue
        event = EVENT_CODES[digit.upper()]
        steps = max(1, digit_ms // PACKET_MS)
        for step in range(1, steps + 1):
            marker = 0x80 if step == 1 else 0
            duration = step * SAMPLES_PER_PACKET
            rtp = struct.pack("!BBHII", 0x80, marker | PAYLOAD_TYPE, seq & 0xFFFF, ts, ssrc)
            packets.append((clock, rtp + struct.pack("!BBH", event, 10, duration)))
            seq += 1
            clock += PACKET_MS / 1000
        for _ in range(3):  # the end packet, sent three times as RFC 4733 advises
            rtp = struct.pack("!BBHII", 0x80, PAYLOAD_TYPE, seq & 0xFFFF, ts, ssrc)
            packets.append((clock, rtp + struct.pack("!BBH", event, 0x80 | 10, steps * SAMPLES_PER_PACKET)))
            seq += 1
        clock += gap_ms / 1000
        ts += (digit_ms + gap_ms) * 8
    return packets


def write_dtmf_pcap(digits: str, path: Path, **timing: int) -> Path:
    """Write the events for ``digits`` as an Ethernet pcap that SIPp's play_pcap_audio replays."""
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for when, rtp in dtmf_packets(digits, **timing):
            frame = _udp_frame(rtp)
            sec = int(when)
            usec = int(round((when - sec) * 1_000_000))
            out.write(struct.pack("<IIII", 1_700_000_000 + sec, usec, len(frame), len(frame)))
            out.write(frame)
    return path
