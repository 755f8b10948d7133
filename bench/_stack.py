"""The real parts a benchmark runs on (private PostgreSQL, Asterisk 22, SIPp trunk far end) and
the RESULTS.md writer; shared by the benchmark scripts, not used by the test suite."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine import eventloop
from engine.config import AmiTarget, Settings, local_node_host
from engine.stack import (
    AsteriskProcess,
    KamailioProcess,
    PostgresCluster,
    free_port,
    free_port_on_hosts,
    free_udp_port_pair,
    local_nodes,
    with_instance_prompts,
)
from tests.support.sipp import SippFactory, SippProcess, free_media_port, pstn_scenario

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
# Wide enough for 500 callees at once with room to spare: every PJSIP call leg holds an RTP and
# an RTCP port, and a port freed by a hangup is not reused at once.
RTP_PORTS = 10000
# SIPp's own cap on open sockets and calls (its defaults stop short of a few hundred calls).
SIPP_MAX_SOCKET = 5000
SIPP_CALL_LIMIT = 5000


def raise_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit (Asterisk, SIPp and PostgreSQL,
    started from here, inherit it); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class BenchStack:
    settings: Settings
    asterisk: AsteriskProcess
    sipp: SippFactory
    pstn: SippProcess


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A folder for one benchmark's PostgreSQL cluster, Asterisk instance and SIPp files, removed
    afterwards: each run leaves 50-120 MB otherwise."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(workdir, 0o755)  # postgres (another user) must traverse it
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def bench_stack(**overrides: object) -> AsyncIterator[BenchStack]:
    """Postgres + Asterisk + the SIPp trunk far end on free ports, torn down afterwards."""
    raise_file_limit()
    with scratch_dir("veche-bench-") as workdir:
        rtp_start = 20000 + 2 * secrets.randbelow(10000)  # below 40000 + RTP_PORTS
        settings = Settings(
            ami=AmiTarget(port=free_port(), secret=secrets.token_hex(8)), sip_port=free_udp_port_pair(),
            agi_port=free_port(), web_port=free_port(), trunk_target=f"127.0.0.1:{free_udp_port_pair()}",
            rtp_start=rtp_start, rtp_end=rtp_start + RTP_PORTS - 1, ring_timeout=10, run_dir=workdir,
            node_id="bench", secret_key=secrets.token_hex(32),
        ).with_(**overrides)
        pg = PostgresCluster(workdir / "postgres", durable=False)  # throw-away data: speed over safety
        settings = settings.with_(database_url=pg.start())
        asterisk = AsteriskProcess(settings, name=f"bench-{os.getpid()}")  # an instance dir of its own
        try:
            asterisk.start()
            async with far_end(workdir, settings) as pstn:
                yield BenchStack(settings, asterisk, SippFactory(workdir / "sipp", settings.sip_port), pstn)
        finally:
            asterisk.stop()
            asterisk.remove()
            pg.stop()


@dataclass
class NodesStack:
    settings: Settings
    nodes: list[AsteriskProcess]
    front: KamailioProcess
    pstn: SippProcess


@contextlib.asynccontextmanager
async def nodes_stack(node_count: int, **overrides: object) -> AsyncIterator[NodesStack]:
    """Postgres + ``node_count`` Asterisk nodes on 127.0.0.11, 127.0.0.12, ... + Kamailio in front
    of them on 127.0.0.1 + the SIPp trunk far end behind Kamailio, torn down afterwards."""
    raise_file_limit()
    with scratch_dir("veche-bench-nodes-") as workdir:
        hosts = ("127.0.0.1", *(local_node_host(k) for k in range(1, node_count + 1)))
        rtp_start = 20000 + 2 * secrets.randbelow(10000)  # each node binds RTP on its own address
        settings = Settings(
            ami=AmiTarget(port=free_port_on_hosts(socket.SOCK_STREAM, hosts), secret=secrets.token_hex(8)),
            sip_port=free_port_on_hosts(socket.SOCK_DGRAM, hosts), agi_port=free_port(), web_port=free_port(),
            trunk_target=f"127.0.0.1:{free_udp_port_pair()}", rtp_start=rtp_start, rtp_end=rtp_start + RTP_PORTS - 1,
            ring_timeout=10, run_dir=workdir, node_count=node_count, secret_key=secrets.token_hex(32),
        ).with_(**overrides)
        pg = PostgresCluster(workdir / "postgres", durable=False)  # throw-away data: speed over safety
        settings = settings.with_(database_url=pg.start())
        settings = with_instance_prompts(settings, local_nodes(settings)[0].name)
        nodes = local_nodes(settings)
        front = KamailioProcess(settings)
        try:
            for node in nodes:
                node.start()
            front.start()
            async with far_end(workdir, settings) as pstn:
                yield NodesStack(settings, nodes, front, pstn)
        finally:
            front.stop()
            for node in nodes:
                node.stop()
                node.remove()
            pg.stop()


@contextlib.asynccontextmanager
async def far_end(workdir: Path, settings: Settings) -> AsyncIterator[SippProcess]:
    """The trunk's far end (tests/sipp/pstn.xml) at ``settings.trunk_target``, sized for hundreds
    of simultaneous callees, its files in ``workdir``/sipp; stopped afterwards."""
    workdir = workdir / "sipp"
    workdir.mkdir(parents=True, exist_ok=True)
    port = int(settings.trunk_target.rsplit(":", 1)[1])
    argv = ["sipp", "-sf", str(pstn_scenario(workdir / "pstn")), "-i", "127.0.0.1", "-p", str(port),
            "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-nostdin",
            "-max_socket", str(SIPP_MAX_SOCKET), "-l", str(SIPP_CALL_LIMIT),
            "-trace_err", "-error_file", str(workdir / "pstn.err")]
    pstn = await SippProcess(argv, workdir / "pstn.log").start()
    try:
        yield pstn
    finally:
        await pstn.stop()


_LOG_LINE = re.compile(r"^\[[^\]]*\]\s+(?P<level>WARNING|ERROR)\[[^\]]*\](?:\[[^\]]*\])?\s+(?P<text>.*)$")


def asterisk_log_size(asterisk: AsteriskProcess) -> int:
    path = asterisk.base / "log" / "messages.log"
    return path.stat().st_size if path.exists() else 0


def asterisk_complaints(asterisk: AsteriskProcess, since: int = 0, top: int = 6) -> str:
    """Asterisk's warnings and errors logged after byte ``since`` of its messages.log, alike
    lines counted together (numbers, ids and names blurred): what it said while a load ran."""
    path = asterisk.base / "log" / "messages.log"
    if not path.exists():
        return "—"
    with open(path, "rb") as handle:
        handle.seek(since)
        lines = handle.read().decode(errors="replace").splitlines()
    counts: dict[str, int] = {}
    for line in lines:
        match = _LOG_LINE.match(line)
        if match:
            text = re.sub(r"\b[\w.-]*\d[\w.-]*\b", "N", match["text"])
            key = f"{match['level']} {text}"
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return "none"
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    return "; ".join(f"{count}× `{text}`" for text, count in ranked[:top])


def _loop_name() -> str:
    """The event loop this process runs on (engine/eventloop.py), with its version."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "no event loop"
    module = type(loop).__module__.split(".")[0]
    version = getattr(sys.modules.get(module), "__version__", "")
    return f"{module} {version}".strip()


def machine(asterisk: AsteriskProcess | None = None) -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else cpu
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    version = asterisk.cli("core show version").strip().split(" built by")[0] if asterisk else ""
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout.strip().splitlines()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    busy = " (other work was running: figures are pessimistic)" if os.getloadavg()[0] > 1.0 else ""
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {cores} cores (nproc), {cpu}; load average at start "
            f"{load}{busy}; "
            f"open-file limit {files}; Python {platform.python_version()} on {_loop_name()}; "
            f"{version or 'Asterisk: see each section'}; "
            f"{sipp[0].strip().rstrip('.') if sipp else 'SIPp ?'}")


def write_header(where: str, seconds: float, failures: list[str], command: str = "python -m bench all",
                 skipped: list[str] | None = None) -> None:
    """The top of RESULTS.md after ``python -m bench all``: the machine and how the run went."""
    lines = ["## The run", "", f"`{command}`, finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
             f"after {seconds / 60:.1f} min. Machine: {where}.", ""]
    if failures:
        lines.append(f"Failed or doubtful: {'; '.join(failures)}.")
    if skipped:
        lines.append(f"Skipped (their sections below are older): {', '.join(skipped)}.")
    if not failures and not skipped:
        lines.append("Every section below comes from this run.")
    write_section("run", "\n".join(lines), first=True)


def write_section(name: str, text: str, first: bool = False) -> None:
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
    elif first:
        head, sep, rest = current.partition("\n<!-- ")
        current = head.rstrip() + "\n\n" + block + "\n" + (sep + rest if sep else "")
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(current)


def rss_mb() -> tuple[float, float]:
    """This process's resident set size now and its peak (VmRSS, VmHWM), in MiB: the engine's
    when the benchmark runs the engine in its own process."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def command_line(doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
                 run: Callable[[argparse.Namespace], Awaitable[object]]) -> None:
    """Run one benchmark from the command line (``python -m bench.bench_<name> [options]``)."""
    parser = argparse.ArgumentParser(description=doc)
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING)
    eventloop.run(run(parser.parse_args()))
