"""A SIPp dial-in caller whose keypad the test drives: each step's RFC 4733 digits are played
when the test sends the caller a SIP INFO (the "finger"), so a key is pressed only once the
test has seen the state it waits for, never after a fixed sleep."""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass

import jinja2

from engine.stack import free_port
from tests.support.dtmf import write_dtmf_pcap
from tests.support.sipp import SCENARIOS, SippFactory, SippProcess, free_media_port


async def send_info(sip_port: int, call_id: str, cseq: int) -> None:
    """Send a SIP INFO of dialog ``call_id`` to the SIPp on ``sip_port``: its "press the next key"."""
    info = (f"INFO sip:caller@127.0.0.1:{sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-{secrets.token_hex(6)}\r\n"
            f"From: <sip:test@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:caller@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} INFO\r\n"
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(info.encode(), ("127.0.0.1", sip_port))  # one datagram to this host: it never waits


@dataclass
class KeypadCaller:
    process: SippProcess
    call_id: str
    sip_port: int
    steps: list[str]
    pressed: int = 0

    async def press(self) -> str:
        """Play the next step's digits (returns them)."""
        digits = self.steps[self.pressed]
        self.pressed += 1
        await send_info(self.sip_port, self.call_id, 100 + self.pressed)
        return digits

    async def stop(self) -> None:
        await self.process.stop()


async def keypad_caller(factory: SippFactory, entry: str, steps: list[str], caller: str,
                        delay_ms: int = 1000, service: str = "7000") -> KeypadCaller:
    """A caller that keys ``entry`` (number and PIN) after ``delay_ms``, then each of ``steps``
    (e.g. ``"*1"``) on each ``press()``."""
    base = factory.next_base("keypad")
    entry_pcap = write_dtmf_pcap(entry, base.with_name(base.name + "-entry.pcap"))
    step_pcaps = [write_dtmf_pcap(digits, base.with_name(f"{base.name}-step{index}.pcap"),
                                  first_seq=1000 + 2000 * index, first_ts=160_000 + 8_000_000 * index)
                  for index, digits in enumerate(steps, start=1)]
    tag = f"keypad-{secrets.token_hex(8)}"
    call_id = f"{tag}-1@127.0.0.1"  # SIPp's Call-ID of its first (only) call, from -cid_str
    template = jinja2.Template((SCENARIOS / "caller_keypad.xml.j2").read_text())
    scenario = base.with_suffix(".xml")
    scenario.write_text(template.render(entry=entry, caller=caller, delay_ms=delay_ms,
                                        entry_pcap=entry_pcap, step_pcaps=step_pcaps))
    port = free_port(socket.SOCK_DGRAM)
    argv = ["sipp", f"127.0.0.1:{factory.asterisk_sip_port}", "-sf", str(scenario), "-s", service,
            "-m", "1", "-l", "1", "-i", "127.0.0.1", "-p", str(port), "-cid_str", f"{tag}-%u@%s",
            "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-nostdin",
            "-trace_err", "-error_file", f"{base}.err"]
    process = await SippProcess(argv, base.with_suffix(".log")).start()
    return KeypadCaller(process, call_id, port, steps)
