"""Dial-out benchmark: time from start to all N SIPp callees joined, for N = 10, 50, 100,
through the engine (plan an immediate conference) and through a raw AMI socket sending the same
Originates. Writes the "dialout" section of bench/RESULTS.md. Run: python -m bench.bench_dialout"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import statistics
import time

from bench._stack import bench_stack, machine, write_section
from bench.raw_ami import RawAmi, clear_room, originate_and_wait
from engine.adapters.ami import AmiEvent
from engine.app import Engine
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.services.bus import DomainEvent
from tests.support.factories import create_account

SIZES = (10, 50, 100)


def callees(size: int, run: int) -> list[str]:
    # 375 29 <run:2> <index:3> 00: answered by pstn.xml, never one of its special endings
    return [f"37529{run % 100:02d}{i:03d}00" for i in range(size)]


async def raw_runs(stack, sizes, repeats) -> dict[int, list[float]]:
    target = stack.settings.ami
    ami = await RawAmi.connect(target.host, target.port, target.username, target.secret)
    results: dict[int, list[float]] = {n: [] for n in sizes}
    try:
        for n in sizes:
            for rep in range(repeats):
                room = f"raw{n}x{rep}{secrets.token_hex(2)}"
                results[n].append(await originate_and_wait(ami, callees(n, rep), room))
                await clear_room(ami, room)
    finally:
        await ami.close()
    return results


async def engine_runs(stack, sizes, repeats, calls_per_second) -> dict[int, list[tuple[float, float]]]:
    engine = Engine(stack.settings.with_(calls_per_second=calls_per_second))
    await engine.start()
    service = engine.services["conferences"]
    results: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
    try:
        owner = await create_account(engine.pool, max_participants=max(sizes), max_concurrent_conferences=10,
                                     max_dialouts_per_minute=100000, max_concurrent_calls=max(sizes))
        for n in sizes:
            for rep in range(repeats):
                joined, connected = asyncio.Event(), asyncio.Event()
                counts = {"join": 0, "connected": 0}
                stamps: dict[str, float] = {}

                def on_join(event: AmiEvent, n=n, counts=counts, joined=joined, stamps=stamps) -> None:
                    if event.get("Uniqueid").startswith("vo-"):
                        counts["join"] += 1
                        if counts["join"] == n:
                            stamps["join"] = time.perf_counter()
                            joined.set()

                def on_bus(event: DomainEvent, n=n, counts=counts, connected=connected, stamps=stamps) -> None:
                    if event.kind == "participant.state" and event.data.get("state") == "connected":
                        counts["connected"] += 1
                        if counts["connected"] == n:
                            stamps["connected"] = time.perf_counter()
                            connected.set()

                engine.ami.subscribe(on_join, ("ConfbridgeJoin",))
                engine.bus.subscribe(on_bus)
                started = time.perf_counter()
                conference = await service.plan(owner, ConferencePlan(
                    subject=f"bench {n}", start=None, duration_minutes=30, max_participants=n,
                    participants=tuple(ParticipantPlan(c) for c in callees(n, 50 + rep))))
                await asyncio.wait_for(asyncio.gather(joined.wait(), connected.wait()), 120)
                engine.ami.unsubscribe(on_join)
                engine.bus.unsubscribe(on_bus)
                results[n].append((stamps["join"] - started, stamps["connected"] - started))
                await service.end(owner, conference.id)
    finally:
        await engine.stop()
    return results


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.3f}–{max(values):.3f})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls-per-second", type=float, default=1000.0,
                        help="the engine's dial-out pacing (default high: measure the engine, not the pacer)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    async with bench_stack() as stack:
        where = machine(stack.asterisk)
        raw = await raw_runs(stack, args.sizes, args.repeats)
        eng = await engine_runs(stack, args.sizes, args.repeats, args.calls_per_second)
    lines = [
        "## Dial-out: start to all N callees joined", "",
        f"Machine: {where}.", "",
        f"Median of {args.repeats} runs (min–max). Callees are SIPp (tests/sipp/pstn.xml) answering at once; "
        "every call is `Local/<n>@veche-dialout/n` -> PJSIP trunk -> ConfBridge with the quiet `veche_guest` "
        "profile. *Raw AMI*: one asyncio socket sends the N Originates and counts ConfbridgeJoin (no "
        "database, no panoramisk). *Engine*: `conferences.plan()` of an immediate conference (validation, "
        "PINs, rows, event log, Originates through the AmiAdapter, tracker writing every state), timed to "
        "the N-th ConfbridgeJoin and to the N-th `connected` stored in PostgreSQL. The engine ran with "
        f"calls_per_second={args.calls_per_second:g} so the pacer does not dominate (at the default 20/s, "
        "N callees need at least N/20 s by design).", "",
        "| N | raw AMI | engine: all joined | engine: all stored connected | ratio (joined) |",
        "|---|---|---|---|---|",
    ]
    for n in args.sizes:
        joined = [j for j, _ in eng[n]]
        stored = [c for _, c in eng[n]]
        ratio = statistics.median(joined) / statistics.median(raw[n])
        lines.append(f"| {n} | {fmt(raw[n])} | {fmt(joined)} | {fmt(stored)} | {ratio:.2f}x |")
    text = "\n".join(lines)
    print(text)
    write_section("dialout", text)


if __name__ == "__main__":
    asyncio.run(main())
