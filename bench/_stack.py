"""The real parts a benchmark runs on (private PostgreSQL, Asterisk 22, SIPp trunk far end) and
the RESULTS.md writer; shared by the benchmark scripts, not used by the test suite."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import secrets
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.config import AmiTarget, Settings
from engine.stack import AsteriskProcess, PostgresCluster, free_port, free_udp_port_pair
from tests.support.sipp import SippFactory, SippProcess

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"


@dataclass
class BenchStack:
    settings: Settings
    asterisk: AsteriskProcess
    sipp: SippFactory
    pstn: SippProcess


@contextlib.asynccontextmanager
async def bench_stack(**overrides: object) -> AsyncIterator[BenchStack]:
    """Postgres + Asterisk + the SIPp trunk far end on free ports, torn down afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="veche-bench-"))
    os.chmod(workdir, 0o755)  # postgres (another user) must traverse it
    rtp_start = 20000 + 2 * secrets.randbelow(10000)
    settings = Settings(
        ami=AmiTarget(port=free_port(), secret=secrets.token_hex(8)), sip_port=free_udp_port_pair(),
        agi_port=free_port(), web_port=free_port(), trunk_target=f"127.0.0.1:{free_udp_port_pair()}",
        rtp_start=rtp_start, rtp_end=rtp_start + 3999, ring_timeout=10, run_dir=workdir,
        node_id="bench", secret_key=secrets.token_hex(32),
    ).with_(**overrides)
    pg = PostgresCluster(workdir / "postgres", durable=False)  # throw-away data: speed over safety
    settings = settings.with_(database_url=pg.start())
    asterisk = AsteriskProcess(settings, name=f"bench-{os.getpid()}")  # an instance dir of its own
    pstn: SippProcess | None = None
    try:
        asterisk.start()
        sipp = SippFactory(workdir / "sipp", settings.sip_port)
        pstn = await sipp.pstn(int(settings.trunk_target.rsplit(":", 1)[1]))
        yield BenchStack(settings, asterisk, sipp, pstn)
    finally:
        if pstn is not None:
            await pstn.stop()
        asterisk.stop()
        pg.stop()


def machine(asterisk: AsteriskProcess | None = None) -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else cpu
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    version = asterisk.cli("core show version").strip().split(" built by")[0] if asterisk else ""
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout.strip().splitlines()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {cores} cores (nproc), {cpu}; load average at start "
            f"{load} (the machine was shared with other test runs); "
            f"Python {platform.python_version()}; {version or 'Asterisk ?'}; "
            f"{sipp[0].strip().rstrip('.') if sipp else 'SIPp ?'}")


def write_section(name: str, text: str) -> None:
    """Replace (or append) the section between ``<!-- name -->`` markers in RESULTS.md."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    current = RESULTS.read_text() if RESULTS.exists() else (
        "# Veche benchmarks\n\nWritten by the scripts in bench/ (see bench/README.md); each section "
        "notes the machine it ran on.\n")
    block = f"{start}\n{text.strip()}\n{end}"
    if start in current and end in current:
        before, rest = current.split(start, 1)
        after = rest.split(end, 1)[1]
        current = before + block + after
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(current)
