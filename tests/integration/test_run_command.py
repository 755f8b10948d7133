"""The README's run command end to end: ``python -m engine run`` with no DATABASE_URL brings up
PostgreSQL, Asterisk and the engine, says where the web UI is, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from engine.config import Settings
from engine.stack import PROJECT_ROOT, free_port, free_udp_port_pair, local_asterisk_name

pytestmark = pytest.mark.stack

UP_LINE = re.compile(r"web UI at (http://127\.0\.0\.1:\d+/)")


def processes_mentioning(fragment: str) -> list[int]:
    """Pids whose command line contains ``fragment``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


async def exited(pid: int, timeout: float = 10.0) -> bool:
    """True once process ``pid`` (not our child) has exited, awaited through a pidfd."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(pidfd, lambda: gone.done() or gone.set_result(True))
    try:
        return await asyncio.wait_for(gone, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def port_is_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    """Nothing is bound to ``port`` (TIME_WAIT leftovers of closed connections do not count)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_run_brings_up_the_stack_and_ctrl_c_stops_all_of_it(tmp_path: Path, settings: Settings) -> None:
    run_dir = tmp_path / "run"
    ports = {"web": free_port(), "ami": free_port(), "agi": free_port()}
    sip_port = free_udp_port_pair()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VECHE_") and k not in ("DATABASE_URL", "ASTERISK_AMI_URL")}
    env.update(
        VECHE_RUN_DIR=str(run_dir),
        VECHE_CACHE_DIR=str(settings.cache_dir),
        VECHE_WEB_PORT=str(ports["web"]),
        VECHE_METRICS_PORT=str(free_port()),
        VECHE_SIP_PORT=str(sip_port),
        VECHE_AMI_PORT=str(ports["ami"]),
        VECHE_AGI_PORT=str(ports["agi"]),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "run", cwd=PROJECT_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    stderr_task = asyncio.ensure_future(process.stderr.read())
    instance_conf = f"/var/lib/veche/{local_asterisk_name(Settings(run_dir=run_dir))}/etc/asterisk.conf"
    try:
        url = None
        async with asyncio.timeout(120):
            while url is None:
                line = (await process.stdout.readline()).decode()
                assert line, f"engine exited before it was up: {(await stderr_task).decode()[-2000:]}"
                if match := UP_LINE.search(line):
                    url = match.group(1)
        assert url == f"http://127.0.0.1:{ports['web']}/"

        async with aiohttp.ClientSession() as http, http.get(url + "healthz") as response:
            body = await response.json()
            assert response.status == 200, body
            assert body["healthy"] is True

        postmaster_pid = int((run_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        postgres_port = int((run_dir / "postgres" / "postmaster.pid").read_text().splitlines()[3])
        asterisk_pids = processes_mentioning(instance_conf)
        assert asterisk_pids, f"no Asterisk runs with {instance_conf}"
        assert not port_is_free(ports["ami"]) and not port_is_free(sip_port, socket.SOCK_DGRAM)

        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the whole foreground group
        async with asyncio.timeout(60):
            code = await process.wait()
        assert code == 0, (await stderr_task).decode()[-2000:]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert await exited(postmaster_pid), "PostgreSQL still runs"
    for pid in asterisk_pids:
        assert await exited(pid), "Asterisk still runs"
    assert not (run_dir / "postgres" / "postmaster.pid").exists()
    assert processes_mentioning(str(run_dir / "postgres")) == []
    assert processes_mentioning(instance_conf) == [], "Asterisk still runs"
    for port in (*ports.values(), postgres_port):
        assert port_is_free(port), f"port {port} still taken"
    assert port_is_free(sip_port, socket.SOCK_DGRAM)
    shutil.rmtree(settings.rootfs / instance_conf.lstrip("/").rsplit("/etc/", 1)[0], ignore_errors=True)
