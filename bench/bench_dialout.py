"""Dial-out benchmark: time from start to all N SIPp callees joined, through the engine (plan an
immediate conference) and through a raw AMI socket sending the same Originates to the same far
end. Every run has a deadline and ends when all N joined, every call ended one way or another, or
the deadline passed; failed calls are counted with their reason. Writes the "dialout" section of
bench/RESULTS.md. Run: python -m bench dialout [--sizes 10 100 300 500] [--repeats 3]"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

from bench._stack import (
    BenchStack,
    asterisk_complaints,
    asterisk_log_size,
    bench_stack,
    command_line,
    machine,
    write_section,
)
from bench.outcome import CallTally, ratio, reasons_text, summarize
from bench.raw_ami import DialOut, RawAmi, clear_room, originate_and_wait, track
from engine.adapters.asterisk.ami import AmiEvent
from engine.adapters.asterisk.contract import ROOM_EXTRA_MEMBERS, profile_for
from engine.app import Engine
from engine.domain.model import ConferencePlan, ParticipantPlan, Role
from engine.services.bus import DomainEvent
from tests.support.factories import create_account

SIZES = (10, 100, 300, 500)
TRACKED = ("OriginateResponse", "Hangup", "ConfbridgeJoin")
ROOM_END_SECONDS = 30.0


def settle_seconds(size: int) -> float:
    """How long each side waits after a run's room has ended before its next run, so that a run
    does not share the cores with the teardown of the one before (the calls' hangups in Asterisk
    and SIPp; the engine's end of the conference: states, log, mail, audit)."""
    return 0.2 + 0.002 * size


# Each side first runs untimed conferences of WARM_UP_CALLS callees: an engine's first
# conferences after its start pay its imports, and each pooled database connection pays its
# first statements (the prepare round trip of each, planning them, loading the server's
# catalogue caches, compiling the PL/pgSQL of dialout_grant and the triggers) the first time it
# serves a plan: 4-8 ms per plan. Which pooled connection a plan gets depends on which one the
# previous run's writes released last, so a pool of 20 serves plans on connections new to them
# for about its first 20 conferences; 30 reach the steady state a running engine is in.
WARM_UP_CALLS = 10
WARM_UP_CONFERENCES = 30

# Sizes up to SMALL_SIZE run at least --small-runs times a side: a run of ten calls takes about
# 20 ms, this shared box's runs of one and the same script range from 11 to 37 ms, and three of
# them cannot tell the engine's few milliseconds from the box's drift. Sizes up to MEDIUM_SIZE
# run at least MEDIUM_RUNS times: runs of a hundred calls (about 0.2 s) range from 0.17 to
# 0.36 s, so a median of three is one draw of that spread; nine keep the README's command of
# N = 100 within its three minutes.
SMALL_SIZE = 10
SMALL_RUNS = 15
MEDIUM_SIZE = 100
MEDIUM_RUNS = 9


def runs_for(size: int, repeats: int, small_runs: int = SMALL_RUNS) -> int:
    """How many runs each side makes at ``size``."""
    if size <= SMALL_SIZE:
        return max(repeats, small_runs)
    return max(repeats, MEDIUM_RUNS) if size <= MEDIUM_SIZE else repeats


def callees(size: int, run: int, busy_every: int = 0) -> list[str]:
    """375 29 <run:2> <index:3> 00 (above 1,000 callees 375 29 <run:1> <index:4> 00, twelve digits
    either way): answered by pstn.xml, never one of its special endings; with ``busy_every`` (10
    or more) every such callee ends in 486 instead, and is busy."""
    if size > 10_000:
        raise ValueError("at most 10,000 callees have numbers of their own")
    if size > 1000:
        numbers = [f"37529{run % 10}{i:04d}00" for i in range(size)]
    else:
        numbers = [f"37529{run % 100:02d}{i:03d}00" for i in range(size)]
    if busy_every:
        every = max(10, busy_every)  # 10 apart: the first two index digits keep them distinct
        numbers = [n[:-3] + "486" if i % every == every - 1 else n for i, n in enumerate(numbers)]
    return numbers


def deadline_for(size: int, given: float | None) -> float:
    """Seconds one run may take: given, or 30 s plus 0.2 s per callee."""
    return given if given is not None else 30.0 + 0.2 * size


@dataclass
class Run:
    """One run: seconds to the last join (None unless all joined), seconds to the last
    `connected` stored (engine only) and the tally of the calls."""

    joined: float | None
    stored: float | None
    tally: CallTally


@dataclass
class SizeResult:
    raw: list[Run] = field(default_factory=list)
    engine: list[Run] = field(default_factory=list)


class EngineCalls:
    """The engine's dial-out call ids of the current run: any ``vo-`` id not seen in earlier runs."""

    def __init__(self) -> None:
        self.old: set[str] = set()
        self.seen: set[str] = set()

    def __contains__(self, call_id: object) -> bool:
        if not isinstance(call_id, str) or not call_id.startswith("vo-") or call_id in self.old:
            return False
        self.seen.add(call_id)
        return True

    def next_run(self) -> None:
        self.old |= self.seen
        self.seen = set()


async def interleaved_runs(stack: BenchStack, sizes: list[int], repeats: int, deadline: float | None,
                           calls_per_second: float, busy_every: int, results: dict[int, SizeResult],
                           small_runs: int = SMALL_RUNS) -> None:
    """The raw script's runs and the engine's alternate, one of each per repeat and the order
    swapped every repeat: this box's speed drifts by tens of per cent over seconds (a shared
    virtual machine), and two blocks measured one after the other compared the drift more than
    the two programs. Both stay logged in, and each side runs alone with Asterisk's events, as the
    engine does in service: the other side's session has its events turned off (AMI ``Events``)
    during the run and the pause after it (events are fanned out to every session that takes
    them, and a second session slows Asterisk itself down)."""
    target = stack.settings.ami
    engine = Engine(stack.settings.with_(calls_per_second=calls_per_second, max_concurrent_calls=max(sizes)))
    await engine.start()
    ami = await RawAmi.connect(target.host, target.port, target.username, target.secret)
    await ami.set_events(False)
    dropping = _Dropping(ami)
    dropping.start()
    calls = EngineCalls()
    try:
        owner = await create_account(engine.pool, max_participants=max(sizes), max_concurrent_conferences=10,
                                     max_dialouts_per_minute=10**6, max_concurrent_calls=max(sizes))
        settings = engine.settings
        dial = DialOut(profile=profile_for(Role.GUEST, invited=True),
                       language=(await engine.services.accounts.get(owner)).language,
                       caller_id=settings.access_number, extra_members=ROOM_EXTRA_MEMBERS,
                       timeout_ms=(settings.ring_timeout + 5) * 1000)

        async def raw_side(n: int, numbers: list[str], room: str) -> Run:
            await engine.ami.action("Events", EventMask="off")
            await dropping.stop()
            await ami.set_events(True)
            try:
                seconds, tally = await originate_and_wait(ami, numbers, room, dial, deadline_for(n, deadline))
                if tally.joined:
                    await clear_room(ami, room, ROOM_END_SECONDS)
                await asyncio.sleep(settle_seconds(n))
            finally:
                await ami.set_events(False)
                dropping.start()
                await engine.ami.action("Events", EventMask="on")
            return Run(seconds if tally.all_joined else None, None, tally)

        async def engine_side(n: int, numbers: list[str]) -> Run:
            run = await _engine_run(engine, engine.services.planning, owner, n, numbers, calls,
                                    deadline_for(n, deadline))
            calls.next_run()
            await asyncio.sleep(settle_seconds(n))
            return run

        for warm in range(WARM_UP_CONFERENCES):  # untimed: see WARM_UP_CALLS
            await raw_side(WARM_UP_CALLS, callees(WARM_UP_CALLS, 80 + warm), f"rawwarm{warm}x{secrets.token_hex(2)}")
            await engine_side(WARM_UP_CALLS, callees(WARM_UP_CALLS, 30 + warm))
        for n in sizes:
            for rep in range(runs_for(n, repeats, small_runs)):
                raw_first = rep % 2 == 0
                for side in ("raw", "engine") if raw_first else ("engine", "raw"):
                    if side == "raw":
                        results[n].raw.append(await raw_side(n, callees(n, rep, busy_every),
                                                             f"raw{n}x{rep}{secrets.token_hex(2)}"))
                    else:
                        results[n].engine.append(await engine_side(n, callees(n, 50 + rep, busy_every)))
    finally:
        await dropping.stop()
        await ami.close()
        await engine.stop()


class _Dropping:
    """Reads the raw session whenever the raw script is not running (the answer to its events
    being turned off, and any event already on its way), so nothing piles up for its next run."""

    def __init__(self, ami: RawAmi) -> None:
        self.ami = ami
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.ami.drop_events(), name="raw-session-reader")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
                await self.task
            self.task = None


async def _engine_run(engine: Engine, service, owner, n: int, numbers: list[str],  # noqa: ANN001
                      calls: EngineCalls, deadline: float) -> Run:
    tally = CallTally(n)
    stored: list[float] = []
    # over when every call has an outcome and every joined call is stored connected; the
    # callbacks settle it, so the harness costs the engine's process no task or timer per event
    over = asyncio.get_running_loop().create_future()

    def check() -> None:
        if tally.finished and len(stored) >= len(tally.joined) and not over.done():
            over.set_result(None)

    def on_ami(event: AmiEvent) -> None:
        track(tally, event, calls, None, time.perf_counter())
        check()

    def on_bus(event: DomainEvent) -> None:
        if event.kind == "participant.state" and event.data.get("state") == "connected":
            stored.append(time.perf_counter())
            check()

    engine.ami.subscribe(on_ami, TRACKED)
    engine.bus.subscribe(on_bus)
    conference = None
    started = time.perf_counter()
    try:
        conference = await service.plan(owner, ConferencePlan(
            subject=f"bench {n}", start=None, duration_minutes=30, max_participants=n,
            participants=tuple(ParticipantPlan(c) for c in numbers)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(over, max(0.0, started + deadline - time.perf_counter()))
    finally:
        engine.ami.unsubscribe(on_ami)
        engine.bus.unsubscribe(on_bus)
    tally.close()
    joined = tally.last_join_at - started if tally.all_joined and tally.last_join_at else None
    stored_s = max(stored) - started if joined is not None and len(stored) >= n else None
    if conference is not None:
        ended = asyncio.get_running_loop().create_future()

        def on_end(event: AmiEvent) -> None:
            if event.get("Conference") == conference.room and not ended.done():
                ended.set_result(None)

        engine.ami.subscribe(on_end, ("ConfbridgeEnd",))
        try:
            await engine.services.live.end(owner, conference.id)
            if tally.joined:
                await asyncio.wait_for(ended, ROOM_END_SECONDS)
        except TimeoutError:
            logging.warning("room %s did not end within %.0f s", conference.room, ROOM_END_SECONDS)
        finally:
            engine.ami.unsubscribe(on_end)
    return Run(joined, stored_s, tally)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help="numbers of callees N")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small-runs", type=int, default=SMALL_RUNS,
                        help=f"runs per side at sizes of at most {SMALL_SIZE} callees, at least (default {SMALL_RUNS})")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds one run may take (default 30 + 0.2 per callee)")
    parser.add_argument("--calls-per-second", type=float, default=0.0,
                        help="the engine's dial-out pacing (default 0: unpaced, as the raw script sends; "
                             "measure the engine, not the pacer)")
    parser.add_argument("--busy-every", type=int, default=0,
                        help="make every K-th callee (K >= 10) busy, to see failed calls counted")


def _failures(runs: list[Run]) -> str:
    total: Counter[str] = Counter()
    for run in runs:
        total += run.tally.reasons()
    return reasons_text(total)


def _complete(runs: list[Run]) -> str:
    return f"{sum(1 for r in runs if r.joined is not None)}/{len(runs)}"


def report(args: argparse.Namespace, where: str, results: dict[int, SizeResult], complaints: str = "—") -> str:
    lines = [
        "## Dial-out: start to all N callees joined", "",
        f"Machine: {where}.", "",
        f"{args.repeats} run(s) per size and side ({runs_for(1, args.repeats, args.small_runs)} at sizes of at "
        f"most {SMALL_SIZE} callees and {runs_for(MEDIUM_SIZE, args.repeats)} at most {MEDIUM_SIZE}, whose "
        "runs of 20 ms and 0.2 s drift with the box more than they differ), "
        f"after {WARM_UP_CONFERENCES} untimed runs of {WARM_UP_CALLS} "
        "callees on each side (an engine's first conferences after its start pay its imports and each pooled "
        "connection's first statements), with a pause after each run for the teardown of its calls. The "
        "sides take turns (one run of each per repeat, the order swapped every repeat: this shared box's "
        "speed drifts over seconds); both stay logged in, and the side not running has its AMI events "
        "turned off, so each runs alone with Asterisk's events as the engine does in service; "
        "times are the median (min–max) over the runs in which all N joined (*complete*). "
        "Callees are SIPp (tests/sipp/pstn.xml) answering at once; every call is "
        "`Local/<n>@veche-dialout/n` -> PJSIP trunk -> ConfBridge with the quiet `veche_guest_invited` profile. "
        "*Raw AMI*: one asyncio socket sends the N Originates (with the engine's profile, language and "
        "caller id) and follows ConfbridgeJoin, OriginateResponse "
        "and Hangup (no database, no panoramisk). *Engine*: `conferences.plan()` of an immediate "
        "conference (validation, PINs, rows, event log, Originates through the AmiLink, tracker writing "
        "every state), timed to the N-th ConfbridgeJoin and to the N-th `connected` stored in PostgreSQL. "
        + (f"The engine ran with calls_per_second={args.calls_per_second:g}. " if args.calls_per_second else
           "The engine ran unpaced (calls_per_second=0), sending its Originates as the raw script does. ")
        + "A run ends when all N joined, every call ended one way or another (failed OriginateResponse, "
        "Hangup before the join), or its deadline passed (30 s + 0.2 s per callee unless `--deadline`); "
        "*failed* lists every call that did not join, with its reason, summed over the runs.", "",
        "| N | raw AMI: all joined | raw complete | raw failed | engine: all joined | engine: all stored "
        "connected | engine complete | engine failed | ratio (joined) | ratio (stored) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    sustained, broke = None, None
    for n in args.sizes:
        result = results[n]
        raw = summarize([r.joined for r in result.raw if r.joined is not None])
        joined = summarize([r.joined for r in result.engine if r.joined is not None])
        stored = summarize([r.stored for r in result.engine if r.stored is not None])
        lines.append(f"| {n} | {raw.fmt()} | {_complete(result.raw)} | {_failures(result.raw)} | {joined.fmt()} | "
                     f"{stored.fmt()} | {_complete(result.engine)} | {_failures(result.engine)} | "
                     f"{ratio(joined, raw)} | {ratio(stored, raw)} |")
        clean = all(r.joined is not None for r in result.raw + result.engine)
        if clean and broke is None:
            sustained = n
        elif not clean and broke is None:
            broke = n
    lines.append("")
    if broke is None:
        lines.append(f"Largest N measured with every call joined in every run: {sustained} "
                     "(no size failed; try larger sizes).")
    else:
        failing = results[broke]
        lines.append(f"Largest N with every call joined in every run: {sustained or 'none'}; N = {broke} "
                     f"was the first to lose calls (raw: {_failures(failing.raw)}; engine: "
                     f"{_failures(failing.engine)}).")
    lines += ["", f"Asterisk's warnings and errors during the runs (messages.log): {complaints}."]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    results = {n: SizeResult() for n in args.sizes}
    async with bench_stack() as stack:
        where = machine(stack.asterisk)
        log_start = asterisk_log_size(stack.asterisk)
        await interleaved_runs(stack, args.sizes, args.repeats, args.deadline, args.calls_per_second,
                               args.busy_every, results, args.small_runs)
        complaints = asterisk_complaints(stack.asterisk, log_start)
    text = report(args, where, results, complaints)
    print(text)
    write_section("dialout", text)
    return text


def main() -> None:
    command_line(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
