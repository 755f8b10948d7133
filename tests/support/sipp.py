"""Runs SIPp as the trunk's far end (callees) and as dial-in callers, on loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from engine.stack import free_port, free_udp_port_pair
from tests.support.dtmf import write_dtmf_pcap

SCENARIOS = Path(__file__).resolve().parent.parent / "sipp"


def free_media_port() -> int:
    """An even UDP port with the next three free too: SIPp binds audio RTP there and video RTP
    two above (a busy video port makes SIPp exit with 254)."""
    for _ in range(50):
        port = free_udp_port_pair()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as video, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as video_rtcp:
                video.bind(("127.0.0.1", port + 2))
                video_rtcp.bind(("127.0.0.1", port + 3))
            return port
        except OSError:
            continue
    return free_udp_port_pair()


@dataclass
class SippProcess:
    """One SIPp process; ``await stop()`` ends it, ``await wait()`` waits for its own end."""

    argv: list[str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> SippProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=self._log,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        return self

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        finally:
            self._log.close()

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        if not self._log.closed:
            self._log.close()

    def invited_numbers(self) -> list[str]:
        """The numbers of every call this far end was invited to so far, in arrival order."""
        return [number for number, _ in self.invites()]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def message_path(self) -> Path:
        """SIPp's trace of every SIP message (the pstn far end writes one: -trace_msg)."""
        return self.log_path.with_suffix(".msg")

    def message_offset(self) -> int:
        """Where the message trace ends now: pass it to ``invites`` to see only what follows."""
        return self.message_path.stat().st_size if self.message_path.exists() else 0

    def invites(self, since: int = 0) -> list[tuple[str, str]]:
        """(dialled number, Call-ID) of every INVITE the far end received after offset
        ``since``, in arrival order, each call once (retransmissions dropped)."""
        if not self.message_path.exists():
            return []
        with open(self.message_path, "rb") as trace:
            trace.seek(since)
            text = trace.read().decode(errors="replace")
        seen: dict[str, str] = {}
        for block in re.split(r"^-{20,}.*$", text, flags=re.MULTILINE):
            if "message received" not in block:
                continue
            request = re.search(r"^INVITE sip:([0-9]+)@", block, flags=re.MULTILINE)
            call_id = re.search(r"^(?:Call-ID|i)\s*:\s*(\S+)", block, flags=re.MULTILINE | re.IGNORECASE)
            if request and call_id and call_id.group(1) not in seen:
                seen[call_id.group(1)] = request.group(1)
        return [(number, call_id) for call_id, number in seen.items()]


def pstn_scenario(base: Path) -> Path:
    """tests/sipp/pstn.xml rendered beside ``base`` (``base``.xml), with the keypad callee's
    digits in a pcap of their own."""
    scenario = base.with_suffix(".xml")
    keypad_pcap = write_dtmf_pcap("*1", base.with_name(base.name + "-keypad.pcap"))
    scenario.write_text(jinja2.Template((SCENARIOS / "pstn.xml").read_text()).render(keypad_pcap=keypad_pcap))
    return scenario


@dataclass
class SippFactory:
    """Builds SIPp processes against one Asterisk (its SIP port) in a work folder."""

    workdir: Path
    asterisk_sip_port: int
    _count: int = field(default=0)

    def next_base(self, what: str) -> Path:
        """A fresh numbered path in the work folder for one SIPp process's files."""
        self._count += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir / f"{self._count:04d}-{what}"

    async def pstn(self, port: int) -> SippProcess:
        """The trunk's far end on 127.0.0.1:port (see tests/sipp/pstn.xml for the number codes)."""
        base = self.next_base("pstn")
        argv = ["sipp", "-sf", str(pstn_scenario(base)), "-i", "127.0.0.1", "-p", str(port),
                "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-nostdin",
                "-max_socket", "2000", "-trace_err", "-error_file", f"{base}.err",
                "-trace_msg", "-message_file", f"{base}.msg"]
        return await SippProcess(argv, base.with_suffix(".log")).start()

    async def caller(self, digits: str, caller: str = "375291110000", delay_ms: int = 1000,
                     service: str = "7000", display: str = "Caller") -> SippProcess:
        """A dial-in caller that keys ``digits`` (``,`` pauses) once the first prompt plays;
        ``display`` is the name in its From header (the caller's own choice, so hostile input).
        res_agi drops the digits that arrive before the IVR's first GET DATA, so like a person the
        caller waits ``delay_ms`` after the answer (300 ms lost a first digit on a loaded machine)."""
        base = self.next_base("caller")
        pcap = write_dtmf_pcap(digits, base.with_suffix(".pcap"))
        template = jinja2.Template((SCENARIOS / "caller.xml.j2").read_text())
        scenario = base.with_suffix(".xml")
        scenario.write_text(template.render(digits=digits, caller=caller, pcap=pcap,
                                            delay_ms=delay_ms, display=display))
        argv = ["sipp", f"127.0.0.1:{self.asterisk_sip_port}", "-sf", str(scenario), "-s", service,
                "-m", "1", "-l", "1", "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)),
                "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-nostdin",
                "-trace_err", "-error_file", f"{base}.err"]
        return await SippProcess(argv, base.with_suffix(".log")).start()
