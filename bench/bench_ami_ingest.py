"""AMI ingest microbenchmark: replays a recorded AMI event stream (bench/ami_stream.txt, captured
from a real dial-out through the engine) over a local TCP socket, from an asyncio server that
speaks the AMI banner and login and then streams the events (no Asterisk), into

- the engine's AMI adapter (engine.adapters.asterisk.ami.AmiLink) with the call tracker
  (engine.services.calls.CallService.on_event) subscribed as the engine subscribes it, once with
  an in-memory repository that knows no participant (the AMI path alone) and once with the real
  ConferenceRepository on a private PostgreSQL (no participant has the stream's call ids: the
  tracker knows that from memory, without a lookup);
- panoramisk's bare Manager (its parser and its own dispatch) and the raw asyncio reader of
  bench/raw_ami.py, on the same stream in the same run, for comparison.

Everything runs in one process pinned to one core. Writes the "ingest" section of
bench/RESULTS.md. Run: python -m bench ingest [--events 50000] [--repeats 5];
python -m bench ingest --record [--calls 10] captures a new stream (needs Asterisk and SIPp)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panoramisk import Manager

from bench._stack import BENCH_DIR, bench_stack, command_line, machine, scratch_dir, write_section
from bench.outcome import Summary, summarize
from bench.raw_ami import RawAmi
from engine.adapters.asterisk.ami import AmiEvent, AmiLink
from engine.adapters.asterisk.events import AMI_EVENTS
from engine.adapters.db import create_pool
from engine.adapters.db.conferences import CallSlotRepository, ConferenceRepository
from engine.adapters.db.migrations import migrate
from engine.config import AmiTarget
from engine.services.bus import EventBus
from engine.services.calls import CallService
from engine.stack import PostgresCluster

STREAM = BENCH_DIR / "ami_stream.txt"
END_MARK = "VecheBenchEnd"
# Events of the AMI session itself, not of calls: left out of the recording.
SESSION_EVENTS = {"FullyBooted", "SuccessfulAuth", "ChallengeSent", "Shutdown", "Reload"}
BANNER = b"Asterisk Call Manager/9.0.0\r\n"


# ----------------------------------------------------------------- the stream


def load_stream(path: Path = STREAM) -> list[bytes]:
    """The recorded events, one AMI block each (CRLF line ends, blank-line terminated)."""
    text = path.read_text().replace("\r\n", "\n")
    blocks = [b.strip("\n") for b in text.split("\n\n") if b.strip()]
    return [("\r\n".join(b.split("\n")) + "\r\n\r\n").encode() for b in blocks if b.startswith("Event:")]


def payload(blocks: list[bytes], events: int) -> tuple[bytes, int]:
    """The stream repeated up to about ``events`` events, then the end mark; returns the bytes
    and the number of events in them (end mark included)."""
    copies = max(1, round(events / len(blocks)))
    body = b"".join(blocks) * copies
    end = f"Event: UserEvent\r\nUserEvent: {END_MARK}\r\n\r\n".encode()
    return body + end, copies * len(blocks) + 1


class ReplayServer:
    """A local AMI speaker: banner, login accepted, any other action answered with Success;
    streams ``data`` once the benchmark calls ``go()`` for the connection logged in last."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.logged_in: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(BANNER)
        try:
            while True:
                block = (await reader.readuntil(b"\r\n\r\n")).decode(errors="replace")
                headers = dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line)
                action_id = headers.get("ActionID", "")
                if headers.get("Action", "").lower() == "login":
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\n"
                                 "Message: Authentication accepted\r\n\r\n".encode())
                    await self.logged_in.put(writer)
                else:
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\n\r\n".encode())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


# ----------------------------------------------------------------- the consumers


@dataclass
class Consumer:
    """How one reader of the stream is connected, told about the end mark, and closed."""

    name: str
    connect: Callable[[int, asyncio.Future], Awaitable[Any]]
    close: Callable[[Any], Awaitable[None]]
    counts: dict[str, int] = field(default_factory=dict)
    finishing: Any = None  # the engine consumer's wait for its tracker to catch up


class _NoParticipants(ConferenceRepository):
    """The tracker's repository with no participant and no room: each lookup answers at once."""

    def __init__(self) -> None:
        super().__init__(None)

    async def participant_by_call_id(self, call_id: str) -> None:
        return None

    async def get_by_room(self, room: str) -> None:
        return None

    async def get_participant(self, participant_id: int) -> None:
        return None

    async def live_call_ids(self) -> list[str]:
        return []


def _tracker(adapter: AmiLink, repo: ConferenceRepository, pool: Any) -> CallService:
    """The call tracker as engine.app.build_services builds it (settings, repository, media nodes,
    participant states, dial-out), subscribed to the node's events by its own start(). The
    dial-out's limit collaborators (number plans, limit guard) and prompts are left out: the
    tracker uses none of them."""
    from engine.adapters.asterisk import MediaNode, MediaNodes
    from engine.config import Settings
    from engine.services.dialout import DialOutService
    from engine.services.participant_states import ParticipantStates

    settings = Settings(node_id=adapter.node_id)
    nodes = MediaNodes([MediaNode(adapter)], default=adapter.node_id)
    states = ParticipantStates(repo, EventBus())
    dialout = DialOutService(settings, repo, CallSlotRepository(pool), nodes=nodes, states=states,
                             plans=None, guard=None)  # type: ignore[arg-type]
    return CallService(settings, repo, nodes=nodes, states=states, dialout=dialout, prompts=None)  # type: ignore[arg-type]


def engine_consumer(name: str, repo_factory: Callable[[], Awaitable[tuple[ConferenceRepository, Any]]]) -> Consumer:
    consumer = Consumer(name, None, None)  # type: ignore[arg-type]

    async def connect(port: int, done: asyncio.Future) -> Any:
        adapter = AmiLink(AmiTarget(port=port, secret="bench"), "bench", ping_interval=3600)
        repo, pool = await repo_factory()
        tracker = _tracker(adapter, repo, pool)
        consumer.counts.clear()

        async def handled() -> None:  # the tracker works in lanes of its own: the end is when they are empty
            await tracker.settled()
            if not done.done():
                done.set_result(time.perf_counter())

        def count(event: AmiEvent) -> None:
            consumer.counts["events"] = consumer.counts.get("events", 0) + 1
            if event.name == "UserEvent" and event.get("UserEvent") == END_MARK and not done.done():
                consumer.finishing = asyncio.ensure_future(handled())

        adapter.subscribe(count)
        await adapter.connect()
        await tracker.start()
        return adapter, tracker, pool

    async def close(handle: Any) -> None:
        adapter, tracker, pool = handle
        await tracker.stop()
        await adapter.close()
        if pool is not None:
            await pool.close()

    consumer.connect, consumer.close = connect, close
    return consumer


def panoramisk_consumer() -> Consumer:
    consumer = Consumer("panoramisk Manager (parser + its dispatch)", None, None)  # type: ignore[arg-type]

    async def connect(port: int, done: asyncio.Future) -> Any:
        consumer.counts.clear()
        manager = Manager(loop=asyncio.get_running_loop(), host="127.0.0.1", port=port, username="bench",
                          secret="bench", ping_delay=10**9, reconnect_timeout=3600,
                          log=logging.getLogger("bench.panoramisk"))

        def count(_manager: Manager, message: Any) -> None:
            consumer.counts["events"] = consumer.counts.get("events", 0) + 1
            if message.get("UserEvent") == END_MARK and not done.done():
                done.set_result(time.perf_counter())

        manager.register_event("*", count)
        await manager.connect()
        return manager

    async def close(manager: Any) -> None:
        manager.close()

    consumer.connect, consumer.close = connect, close
    return consumer


def raw_consumer() -> Consumer:
    consumer = Consumer("raw asyncio reader (bench/raw_ami.py)", None, None)  # type: ignore[arg-type]

    async def connect(port: int, done: asyncio.Future) -> Any:
        consumer.counts.clear()
        ami = await RawAmi.connect("127.0.0.1", port, "bench", "bench")

        async def read() -> None:
            while True:
                message = await ami.read()
                consumer.counts["events"] = consumer.counts.get("events", 0) + 1
                if message.get("UserEvent") == END_MARK:
                    done.set_result(time.perf_counter())
                    return

        return ami, asyncio.create_task(read())

    async def close(handle: Any) -> None:
        ami, task = handle
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await ami.close()

    consumer.connect, consumer.close = connect, close
    return consumer


async def measure(server: ReplayServer, consumer: Consumer, data: bytes, events: int,
                  deadline: float) -> float | None:
    """Events per second from the first byte sent to the end mark delivered (None: the deadline
    passed first or events were lost)."""
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    while not server.logged_in.empty():
        server.logged_in.get_nowait()
    handle = await asyncio.wait_for(consumer.connect(server.port, done), 30)
    try:
        writer = await asyncio.wait_for(server.logged_in.get(), 30)
        await asyncio.sleep(0.2)  # let the login's own follow-ups settle before the clock starts
        consumer.counts.clear()
        started = time.perf_counter()
        writer.write(data)
        try:
            ended = await asyncio.wait_for(done, deadline)
        except TimeoutError:
            logging.warning("%s: no end mark within %.0f s", consumer.name, deadline)
            return None
        received = consumer.counts.get("events", 0)
        if received < events:
            logging.warning("%s: %d of %d events", consumer.name, received, events)
            return None
        return events / (ended - started)
    finally:
        await consumer.close(handle)


# ----------------------------------------------------------------- recording


async def record(calls: int, path: Path = STREAM) -> int:
    """Capture the AMI events of one real dial-out of ``calls`` callees through the engine
    (plan, all joined, end) into ``path``; returns the number of events written."""
    from engine.app import Engine
    from engine.domain.model import ConferencePlan, ParticipantPlan
    from engine.services.bus import DomainEvent
    from tests.support.factories import create_account

    # pstn.xml by the last three digits: 201 answers and sends audio (talking events), 486 is busy,
    # 603 declines, anything else answers silently
    endings = ["201", "100"] * (calls // 2) + ["201"] * (calls % 2)
    if calls >= 6:
        endings[-2:] = ["486", "603"]
    numbers = [f"3752907{index:02d}{ending}" for index, ending in enumerate(endings)]
    answering = sum(1 for ending in endings if ending not in ("486", "603"))
    blocks: list[str] = []
    async with bench_stack() as stack:
        target = stack.settings.ami
        capture = await RawAmi.connect(target.host, target.port, target.username, target.secret)

        async def listen() -> None:
            while True:
                raw = (await capture.reader.readuntil(b"\r\n\r\n")).decode(errors="replace")
                name = raw.split("\r\n", 1)[0]
                if name.startswith("Event: ") and name[7:] not in SESSION_EVENTS:
                    blocks.append(raw.replace("\r\n", "\n"))

        listener = asyncio.create_task(listen())
        engine = Engine(stack.settings.with_(calls_per_second=1000))
        await engine.start()
        try:
            owner = await create_account(engine.pool, max_participants=calls, max_dialouts_per_minute=10**6)
            connected = 0
            all_in = asyncio.Event()

            def on_bus(event: DomainEvent) -> None:
                nonlocal connected
                if event.kind == "participant.state" and event.data.get("state") == "connected":
                    connected += 1
                    if connected >= answering:
                        all_in.set()

            engine.bus.subscribe(on_bus)
            service = engine.services.planning
            conference = await service.plan(owner, ConferencePlan(
                subject="ingest recording", start=None, duration_minutes=30, max_participants=calls,
                participants=tuple(ParticipantPlan(n) for n in numbers)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_in.wait(), 30 + calls)
            await asyncio.sleep(4.0)  # a little conversation: talking events
            with contextlib.suppress(TimeoutError):
                ended = engine.ami.wait_for_event(
                    lambda e: e.name == "ConfbridgeEnd" and e.get("Conference") == conference.room, 30)
                ending = asyncio.ensure_future(ended)
                await engine.services.live.end(owner, conference.id)
                await ending
            await asyncio.sleep(1.0)  # the last Hangups
        finally:
            await engine.stop()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
            await capture.close()
    await asyncio.to_thread(path.write_text, "".join(blocks))
    return len(blocks)


# ----------------------------------------------------------------- the run


@contextlib.contextmanager
def one_core() -> Iterator[str]:
    """Pin this process to one CPU for the block (the benchmarks after it get all CPUs back)."""
    try:
        before = os.sched_getaffinity(0)
        cpu = min(before)
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        yield "not pinned"
        return
    try:
        yield f"pinned to CPU {cpu}"
    finally:
        os.sched_setaffinity(0, before)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=50000, help="events per repeat (the stream repeated)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds one repeat may take")
    parser.add_argument("--no-db", action="store_true", help="skip the variant with PostgreSQL")
    parser.add_argument("--record", action="store_true",
                        help="capture a new bench/ami_stream.txt from a real dial-out first")
    parser.add_argument("--calls", type=int, default=10, help="callees of the recorded dial-out")


async def run(args: argparse.Namespace) -> str:
    if args.record or not STREAM.exists():
        count = await record(args.calls)
        print(f"recorded {count} events into {STREAM}")
    blocks = load_stream()
    data, events = payload(blocks, args.events)
    where = machine()
    consumers = [raw_consumer(), panoramisk_consumer(),
                 engine_consumer("engine: AmiLink + tracker, in-memory repository", _null_repo)]
    cluster: PostgresCluster | None = None
    scratch = contextlib.ExitStack()
    if not args.no_db:
        workdir = scratch.enter_context(scratch_dir("veche-ingest-"))
        cluster = PostgresCluster(workdir / "postgres", durable=False)
        url = cluster.start()

        async def real_repo() -> tuple[ConferenceRepository, Any]:
            pool = await create_pool(url)
            async with pool.acquire() as conn:
                await migrate(conn)
            return ConferenceRepository(pool), pool

        consumers.append(engine_consumer("engine: AmiLink + tracker, PostgreSQL repository", real_repo))
    server = ReplayServer()
    await server.start()
    rates: dict[str, list[float]] = {c.name: [] for c in consumers}
    lost: dict[str, int] = {c.name: 0 for c in consumers}
    try:
        with one_core() as pinned:
            for _ in range(args.repeats):
                for consumer in consumers:  # interleaved, so a noisy moment hits every reader alike
                    rate = await measure(server, consumer, data, events, args.deadline)
                    if rate is None:
                        lost[consumer.name] += 1
                    else:
                        rates[consumer.name].append(rate)
    finally:
        await server.close()
        if cluster is not None:
            cluster.stop()
        scratch.close()
    kinds = Counter(b.split(b"\r\n", 1)[0].decode()[7:] for b in blocks)
    mix = ", ".join(f"{name} {count}" for name, count in kinds.most_common())
    reference = summarize(rates[consumers[1].name])
    lines = [
        "## AMI ingest: events per second on one core", "",
        f"Machine: {where}; {pinned}.", "",
        f"Stream: bench/ami_stream.txt, {len(blocks)} events recorded from a real dial-out of "
        "callees through the engine (some answering with audio, one busy, one declining; the events the "
        f"engine's AMI user received through the eventfilter of the recording: {mix}; the filter now also "
        f"keeps DialEnd and HangupRequest in Asterisk, and the engine skips them), repeated to {events} events per "
        "run and written at once by a local asyncio AMI server (banner, login, then the stream) in the same "
        "process; the clock runs from the first byte written to the end mark delivered. "
        f"{args.repeats} repeats, the readers interleaved; median (min–max) events/s. The tracker is the "
        "call tracker (`CallService`), subscribed to the node's typed events made from "
        f"{', '.join(AMI_EVENTS)}: with the in-memory repository (no participant known, every lookup "
        "answered at once) the row shows the AMI path alone (split into blocks, AmiEvent, delivery, log "
        "context, translate, the tracker's lanes and routing); with PostgreSQL the stream's call ids were "
        "given to no participant, so the tracker answers from memory, as the engine does for any call it "
        "does not follow (no database round trip per event). Target (issue 13, item 4): 50,000 events/s "
        "for the engine's rows.", "",
        "| reader | events/s | vs panoramisk | runs lost |", "|---|---|---|---|",
    ]
    for consumer in consumers:
        figure: Summary = summarize(rates[consumer.name])
        share = (f"{figure.median / reference.median:.2f}x" if figure.count and reference.count else "—")
        lines.append(f"| {consumer.name} | {figure.fmt('', 0)} | {share} | {lost[consumer.name]} |")
    text = "\n".join(lines)
    print(text)
    write_section("ingest", text)
    return text


async def _null_repo() -> tuple[ConferenceRepository, Any]:
    return _NoParticipants(), None


def main() -> None:
    command_line(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
