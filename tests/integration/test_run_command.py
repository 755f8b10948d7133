"""The README's run command end to end: ``python -m engine run`` with no DATABASE_URL brings up
PostgreSQL, Asterisk and the engine, says where the web UI is, and Ctrl-C leaves nothing running.
After a crash (kill -9 of the engine, with or without its Asterisk) the next run comes up on the
first try and adopts what still runs: a running conference keeps its calls, nobody is dialled twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from engine.config import Settings
from engine.stack import (
    PROJECT_ROOT,
    AsteriskProcess,
    free_port,
    free_udp_port_pair,
    local_asterisk_name,
    process_cmdline,
    read_pid,
)
from tests.support.factories import random_phone
from tests.support.sipp import SippProcess, free_media_port, pstn_scenario

pytestmark = pytest.mark.stack

UP_LINE = re.compile(r"web UI at (http://127\.0\.0\.1:\d+/)")
PG_LINE = re.compile(r"DATABASE_URL=(\S+)")


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


@dataclass
class RunCommand:
    """``python -m engine run`` in a process of its own, on a run dir and ports chosen once, so
    that it can be started again the way an operator would after a crash."""

    run_dir: Path
    cache_dir: Path
    trunk_port: int = 0
    ports: dict[str, int] = field(default_factory=lambda: {
        "web": free_port(), "ami": free_port(), "agi": free_port(), "metrics": free_port()})
    sip_port: int = field(default_factory=free_udp_port_pair)
    rtp_start: int = field(default_factory=lambda: 10000 + 2 * secrets.randbelow(20000))
    process: asyncio.subprocess.Process | None = None
    stderr_task: asyncio.Future | None = None
    database_url: str | None = None

    @property
    def instance_conf(self) -> str:
        return f"/var/lib/veche/{local_asterisk_name(Settings(run_dir=self.run_dir))}/etc/asterisk.conf"

    @property
    def asterisk_pid_file(self) -> Path:
        return self.cache_dir / "rootfs" / self.instance_conf.lstrip("/").rsplit("/etc/", 1)[0] / "run/asterisk.pid"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}/"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("VECHE_") and k not in ("DATABASE_URL", "ASTERISK_AMI_URL")}
        env.update(
            VECHE_RUN_DIR=str(self.run_dir), VECHE_CACHE_DIR=str(self.cache_dir),
            VECHE_WEB_PORT=str(self.ports["web"]), VECHE_SIP_PORT=str(self.sip_port),
            VECHE_AMI_PORT=str(self.ports["ami"]), VECHE_AGI_PORT=str(self.ports["agi"]),
            VECHE_METRICS_PORT=str(self.ports["metrics"]),
            VECHE_RTP_START=str(self.rtp_start), VECHE_RTP_END=str(self.rtp_start + 999), VECHE_RING_TIMEOUT="10",
        )
        if self.trunk_port:
            env["VECHE_TRUNK_TARGET"] = f"127.0.0.1:{self.trunk_port}"
        return env

    async def start(self) -> None:
        """Start it and wait for its "Veche is up" line (it must come up on this one try)."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engine", "run", cwd=PROJECT_ROOT, env=self.env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        self.stderr_task = asyncio.ensure_future(self.process.stderr.read())
        url = None
        async with asyncio.timeout(120):
            while url is None:
                line = (await self.process.stdout.readline()).decode()
                assert line, f"engine exited before it was up: {(await self.stderr_task).decode()[-2000:]}"
                if match := UP_LINE.search(line):
                    url = match.group(1)
                if match := PG_LINE.search(line):
                    self.database_url = match.group(1)
            line = (await self.process.stdout.readline()).decode()
            if match := PG_LINE.search(line):
                self.database_url = match.group(1)
        assert url == self.url

    async def interrupt(self) -> None:
        """Ctrl-C in its terminal (SIGINT to the whole foreground group); it must exit cleanly."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)
        async with asyncio.timeout(60):
            code = await self.process.wait()
        assert code == 0, (await self.stderr_task).decode()[-2000:]

    async def sigkill(self) -> None:
        """kill -9 of the engine process only, as a crash."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()
        await self.stderr_task

    async def last_words(self) -> str:
        """The end of its stderr, for a failure's message (it is killed to read it to the end)."""
        if self.process is None or self.stderr_task is None:
            return ""
        if self.process.returncode is None:
            await self.sigkill()
        return (await self.stderr_task).decode(errors="replace")[-3000:]

    async def cleanup(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        for pid in asterisk_daemons(self.instance_conf):
            os.kill(pid, signal.SIGKILL)
        pid_file = self.run_dir / "postgres" / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
        shutil.rmtree(self.cache_dir / "rootfs" / self.instance_conf.lstrip("/").rsplit("/etc/", 1)[0],
                      ignore_errors=True)

    def postmaster(self) -> tuple[int, int]:
        """(pid, port) of its PostgreSQL, from postmaster.pid."""
        lines = (self.run_dir / "postgres" / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), int(lines[3])

    async def assert_nothing_left(self, pids: list[int]) -> None:
        for pid in pids:
            assert await exited(pid), f"process {pid} still runs"
        assert not (self.run_dir / "postgres" / "postmaster.pid").exists()
        assert processes_mentioning(str(self.run_dir / "postgres")) == []
        assert asterisk_daemons(self.instance_conf) == [], "Asterisk still runs"
        for port in self.ports.values():
            assert port_is_free(port), f"port {port} still taken"
        assert port_is_free(self.sip_port, socket.SOCK_DGRAM)


def asterisk_daemons(instance_conf: str) -> list[int]:
    """Pids of the Asterisk daemons (not ``-rx`` clients) running with this instance's configuration."""
    found = []
    for pid in processes_mentioning(instance_conf):
        argv = process_cmdline(pid)
        if argv and argv[0].endswith("asterisk") and not any(a.startswith("-r") for a in argv):
            found.append(pid)
    return found


def postmasters(data_dir: Path) -> list[int]:
    return [pid for pid in processes_mentioning(str(data_dir))
            if (argv := process_cmdline(pid)) and argv[0].endswith("/postgres")]


async def test_run_brings_up_the_stack_and_ctrl_c_stops_all_of_it(tmp_path: Path, settings: Settings) -> None:
    run = RunCommand(tmp_path / "run", settings.cache_dir)
    try:
        await run.start()
        async with aiohttp.ClientSession() as http, http.get(run.url + "healthz") as response:
            body = await response.json()
            assert response.status == 200, body
            assert body["healthy"] is True

        postmaster_pid, postgres_port = run.postmaster()
        asterisk_pids = asterisk_daemons(run.instance_conf)
        assert asterisk_pids, f"no Asterisk runs with {run.instance_conf}"
        assert not port_is_free(run.ports["ami"]) and not port_is_free(run.sip_port, socket.SOCK_DGRAM)
        await run.interrupt()
        await run.assert_nothing_left([postmaster_pid, *asterisk_pids])
        assert port_is_free(postgres_port), f"port {postgres_port} still taken"
    finally:
        await run.cleanup()


async def cli(database_url: str, *args: str, stdin: str = "") -> str:
    """``python -m engine ...`` against the run's database; its standard output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECHE_")}
    env["DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", *args, cwd=PROJECT_ROOT, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def api(run: RunCommand, token: str, method: str, path: str, body: object = None) -> dict:
    async with aiohttp.ClientSession() as http, http.request(
            method, run.url + "api/v1" + path, json=body, headers={"Authorization": f"Bearer {token}"}) as reply:
        data = await reply.json(content_type=None)
        assert reply.status < 300, (reply.status, data)
        return data


async def call_ids(database_url: str, conference_id: int) -> dict[int, tuple[str, str | None, int]]:
    """participant id -> (state, call id, attempts), as stored."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id, state, call_id, attempts FROM participants WHERE conference_id = $1",
                                conference_id)
    finally:
        await conn.close()
    return {r["id"]: (r["state"], r["call_id"], r["attempts"]) for r in rows}


async def test_engine_killed_mid_conference_restarts_and_adopts_its_calls(tmp_path: Path, settings: Settings) -> None:
    """kill -9 of the engine only: its PostgreSQL and Asterisk run on; the next run adopts both
    (same pids), the conference's two calls stay up and nobody gets a second INVITE."""
    run = RunCommand(tmp_path / "run", settings.cache_dir, trunk_port=free_udp_port_pair())
    far_end = await trunk_far_end(tmp_path, run)
    try:
        await run.start()
        assert run.database_url, "the run did not print its DATABASE_URL"
        phone = random_phone()
        await cli(run.database_url, "account", "create", phone, "--password-stdin", stdin="crash-only-restart-1\n")
        token = (await cli(run.database_url, "token", "create", phone)).strip()
        callees = [f"3752977{secrets.randbelow(10**5):05d}", f"3752978{secrets.randbelow(10**5):05d}"]
        conference = await api(run, token, "POST", "/conferences", {
            "subject": "Crash-only", "start": "now", "duration_minutes": 30, "max_participants": 2,
            "participants": [{"number": n} for n in callees]})

        async def connected() -> dict:
            current: dict = {}
            try:
                async with asyncio.timeout(60):
                    while True:
                        current = await api(run, token, "GET", f"/conferences/{conference['id']}")
                        if [p["state"] for p in current["participants"]] == ["connected", "connected"]:
                            return current
                        await asyncio.sleep(0.2)  # polled with a deadline: the API has no event to await here
            except TimeoutError:
                states = [(p["state"], p.get("failure_reason")) for p in current.get("participants", [])]
                raise AssertionError(f"the calls are not both connected after 60 s: {states}; "
                                     f"the engine's log ends: {await run.last_words()}") from None

        before = await connected()
        stored_before = await call_ids(run.database_url, conference["id"])
        postmaster_pid, _ = run.postmaster()
        [asterisk_pid] = asterisk_daemons(run.instance_conf)
        assert read_pid(run.asterisk_pid_file) == asterisk_pid

        await run.sigkill()
        assert asterisk_daemons(run.instance_conf) == [asterisk_pid]  # the crash left them running
        assert postmasters(run.run_dir / "postgres") == [postmaster_pid]

        await run.start()  # the first try comes up
        assert asterisk_daemons(run.instance_conf) == [asterisk_pid], "Asterisk was not adopted"
        assert postmasters(run.run_dir / "postgres") == [postmaster_pid], "PostgreSQL was not adopted"
        after = await api(run, token, "GET", f"/conferences/{conference['id']}")
        assert after["state"] == "running"
        assert [(p["id"], p["state"], p["joined_at"]) for p in after["participants"]] == \
            [(p["id"], p["state"], p["joined_at"]) for p in before["participants"]]
        assert await call_ids(run.database_url, conference["id"]) == stored_before
        assert all(attempts == 1 for _, _, attempts in stored_before.values())
        channels = await asyncio.to_thread(
            AsteriskProcess(Settings(cache_dir=run.cache_dir, run_dir=run.run_dir),
                            name=local_asterisk_name(Settings(run_dir=run.run_dir))).cli,
            "core show channels concise")
        for _, call_id, _ in stored_before.values():
            assert call_id and call_id in channels, f"call {call_id} is gone from Asterisk: {channels}"
        assert sorted(far_end.invited_numbers()) == sorted(callees), "a callee was dialled twice (or not at all)"

        await run.interrupt()
        await run.assert_nothing_left([postmaster_pid, asterisk_pid])
    finally:
        await run.cleanup()
        await far_end.stop()


async def test_engine_and_asterisk_killed_next_run_comes_up(tmp_path: Path, settings: Settings) -> None:
    """kill -9 of the engine and of its Asterisk (PostgreSQL left running, Asterisk's pid file and
    control socket stale): the next run adopts PostgreSQL and starts one fresh Asterisk."""
    run = RunCommand(tmp_path / "run", settings.cache_dir)
    try:
        await run.start()
        postmaster_pid, _ = run.postmaster()
        [asterisk_pid] = asterisk_daemons(run.instance_conf)
        await run.sigkill()
        os.kill(asterisk_pid, signal.SIGKILL)
        assert await exited(asterisk_pid)
        assert read_pid(run.asterisk_pid_file) == asterisk_pid  # stale now

        await run.start()
        [fresh] = asterisk_daemons(run.instance_conf)
        assert fresh != asterisk_pid and read_pid(run.asterisk_pid_file) == fresh
        assert postmasters(run.run_dir / "postgres") == [postmaster_pid]
        async with aiohttp.ClientSession() as http, http.get(run.url + "healthz") as response:
            assert response.status == 200 and (await response.json())["healthy"] is True

        await run.interrupt()
        await run.assert_nothing_left([postmaster_pid, fresh])
    finally:
        await run.cleanup()


async def trunk_far_end(tmp_path: Path, run: RunCommand) -> SippProcess:
    """The SIPp far end of the run's trunk (tests/sipp/pstn.xml: everyone answers), logging every
    message it gets so the test can count INVITEs."""
    base = tmp_path / "pstn"
    argv = ["sipp", "-sf", str(pstn_scenario(base)), "-i", "127.0.0.1", "-p", str(run.trunk_port),
            "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-nostdin", "-max_socket", "2000",
            "-trace_msg", "-message_file", f"{base}.msg", "-trace_err", "-error_file", f"{base}.err"]
    return await SippProcess(argv, base.with_suffix(".log")).start()


