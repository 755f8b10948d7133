"""Live console fan-out benchmark: 200 viewers hold the SSE event stream of one running
conference (real HTTP clients against the real web app, in a process of their own) while 1,000
participant changes per second (ConfbridgeTalking on/off) come in over AMI from a local replay
server (as bench_ami_ingest does; no Asterisk) into the real engine on a private PostgreSQL;
reports the time from an AMI event written to its SSE message delivered to each viewer
(p50/p95/p99/max) and the engine's RSS before and after. Writes the "console" section of
bench/RESULTS.md. Run: python -m bench console"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import time
from array import array
from pathlib import Path

from aiohttp import web

from bench._stack import command_line, machine, raise_file_limit, rss_mb, scratch_dir, write_section
from bench.bench_ami_ingest import ReplayServer
from bench.outcome import summarize
from engine.app import Engine
from engine.config import AmiTarget, Settings
from engine.stack import PostgresCluster, free_port
from tests.support.dialin_factories import create_conference
from web.app import init_app

REPOSITORY = Path(__file__).resolve().parent.parent  # the viewers import bench from here
TICK_SECONDS = 0.01  # the sender writes what is due every 10 ms


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1000, help="participant changes (AMI events) per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--participants", type=int, default=100, help="connected participants taking turns")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=30.0,
                        help="seconds after the last event written that the viewers wait for it")


def talking_event(room: str, call_id: str, on: bool) -> bytes:
    return (f"Event: ConfbridgeTalking\r\nPrivilege: call,all\r\nChannel: PJSIP/bench-{call_id}\r\n"
            f"Uniqueid: {call_id}\r\nLinkedid: {call_id}\r\nConference: {room}\r\n"
            f"TalkingStatus: {'on' if on else 'off'}\r\nAdmin: No\r\n\r\n").encode()


async def add_participants(engine: Engine, conference_id: int, count: int) -> list[tuple[int, str]]:
    """``count`` connected dial-out participants with channel-like call ids: (id, call id)."""
    rows = await engine.pool.fetch(  # type: ignore[union-attr]
        "INSERT INTO participants (conference_id, number, role, origin, state, call_id, node_id, channel) "
        "SELECT $1, '37529' || lpad(i::text, 7, '0'), 'guest', 'dialout', 'connected', "
        "'1700000000.' || i, $2, 'PJSIP/bench-' || i FROM generate_series(1, $3) AS i "
        "RETURNING id, call_id", conference_id, engine.settings.node_id, count)
    # written here rather than by the engine's dial-out: the call tracker learns them as it does the
    # calls stored before its start
    await engine.services.calls.states.track_stored_calls()
    return sorted(((r["id"], r["call_id"]) for r in rows), key=lambda r: int(r[1].split(".")[1]))


async def one_run(engine: Engine, server: ReplayServer, url: str, token: str, room: str,
                  participants: list[tuple[int, str]], args: argparse.Namespace, workdir: Path) -> dict:
    total = int(args.rate * args.seconds)
    events = [talking_event(room, participants[i % len(participants)][1], (i // len(participants)) % 2 == 0)
              for i in range(total)]
    viewers = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.sse_viewers", "--url", url, "--token", token, "--viewers", str(args.viewers),
        "--events", str(total),
        "--deadline", str(args.seconds + args.deadline + 30), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, cwd=REPOSITORY)
    try:
        ready = (await asyncio.wait_for(viewers.stdout.readline(), 60)).decode().strip()  # type: ignore[union-attr]
        if ready != "ready":
            raise RuntimeError(f"the viewers did not all connect: {ready or 'no answer'}")
        rss_before = rss_mb()[0]
        writer = server.writer
        sent = array("d", [0.0]) * total
        started = time.monotonic()
        index = 0
        while index < total:
            due = min(total, int((time.monotonic() - started) * args.rate) + 1)
            if due > index:
                now = time.monotonic()
                writer.write(b"".join(events[index:due]))
                for i in range(index, due):
                    sent[i] = now
                index = due
            await asyncio.sleep(TICK_SECONDS)
        send_seconds = time.monotonic() - started
        path = workdir / "sent.bin"
        path.write_bytes(sent.tobytes())
        viewers.stdin.write(f"{path}\n".encode())  # type: ignore[union-attr]
        await viewers.stdin.drain()  # type: ignore[union-attr]
        line = await asyncio.wait_for(viewers.stdout.readline(), args.deadline + 120)  # type: ignore[union-attr]
        result = json.loads(line.decode())
        result.update(rss_before=rss_before, rss_after=rss_mb()[0], send_seconds=send_seconds, total=total)
        return result
    finally:
        if viewers.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                viewers.kill()
        await viewers.wait()


class _Server(ReplayServer):
    """The replay server, keeping the engine's AMI connection to write the benchmark's events to."""

    writer: asyncio.StreamWriter


async def run(args: argparse.Namespace) -> str:
    raise_file_limit()
    with scratch_dir("veche-console-") as workdir:
        cluster = PostgresCluster(workdir / "postgres", durable=False)
        server = _Server()
        await server.start()
        web_port = free_port()
        settings = Settings(
            ami=AmiTarget(port=server.port, secret=secrets.token_hex(8)), agi_port=free_port(), web_port=web_port,
            metrics_port=free_port(), run_dir=workdir, node_id="bench", secret_key=secrets.token_hex(32),
            sse_streams_per_account=args.viewers + 10, database_url=cluster.start())
        where = machine()
        engine = Engine(settings)
        runner: web.AppRunner | None = None
        runs: list[dict] = []
        try:
            await engine.start()
            server.writer = await asyncio.wait_for(server.logged_in.get(), 30)
            rss_idle = rss_mb()[0]
            conference = await create_conference(engine.pool, node_id=settings.node_id, max_participants=1000)
            participants = await add_participants(engine, conference.id, args.participants)
            token = (await engine.services.tokens.issue(conference.owner_id, "bench")).secret
            runner = web.AppRunner(init_app(engine.services))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", web_port).start()
            url = f"http://127.0.0.1:{web_port}/api/v1/conferences/{conference.id}/events"
            for _ in range(args.repeats):
                runs.append(await one_run(engine, server, url, token, conference.room, participants, args, workdir))
        finally:
            if runner is not None:
                await runner.cleanup()
            await engine.stop()
            await server.close()
            cluster.stop()
    ms = {key: summarize([r[key] * 1000 for r in runs if r["delivered"]]) for key in ("p50", "p95", "p99", "max")}
    lines = [
        f"## Live console fan-out: {args.viewers} SSE viewers, {args.rate} participant changes per second", "",
        f"Machine: {where}.", "",
        f"{args.repeats} run(s). One running conference with {args.participants} connected participants; "
        f"{args.viewers} viewers (aiohttp clients in a process of their own, bench/sse_viewers.py) hold its "
        "`GET /api/v1/conferences/{id}/events` stream with an API token of its owner, against the web app "
        "(`web.app.init_app`) on the real engine and a private PostgreSQL. A local AMI server (the replay "
        "server of the ingest benchmark; no Asterisk) writes ConfbridgeTalking on/off for the participants in "
        f"turn, {args.rate} per second for {args.seconds:g} s ({int(args.rate * args.seconds)} events, written "
        f"every {TICK_SECONDS * 1000:.0f} ms), into the engine's AMI adapter; the call tracker turns each into a "
        "`participant.talking` bus event (a participant lookup and a talking write in PostgreSQL each), which "
        "every stream sends. Latency: from the AMI event written to its SSE message read by a viewer "
        "(`time.monotonic`, one clock for both processes), over every viewer and event; median (min–max) "
        "over the runs.", "",
        "| deliveries | lost | p50 | p95 | p99 | max |", "|---|---|---|---|---|---|",
        f"| {sum(r['delivered'] for r in runs)} | {sum(r['lost'] for r in runs)} | {ms['p50'].fmt('ms', 1)} | "
        f"{ms['p95'].fmt('ms', 1)} | {ms['p99'].fmt('ms', 1)} | {ms['max'].fmt('ms', 1)} |", "",
        f"Engine RSS (the engine and web app run in the benchmark's process): {rss_idle:.0f} MiB started; "
        f"{summarize([r['rss_before'] for r in runs]).fmt('MiB', 0)} with the viewers connected, before the "
        f"events; {summarize([r['rss_after'] for r in runs]).fmt('MiB', 0)} after them.",
    ]
    errors = sorted({e for r in runs for e in r.get("errors", [])})
    if errors:
        lines += ["", f"Viewer errors: {'; '.join(errors)}."]
    text = "\n".join(lines)
    print(text)
    write_section("console", text)
    return text


def main() -> None:
    command_line(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
