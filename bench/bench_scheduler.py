"""Scheduler benchmark: 10,000 conferences scheduled within the next hour, 1,000 of them starting
at the same moment; the start lag (the moment the engine decides to start a conference, stored as
its started_at, minus its starts_at) per conference, p50/p99/max, and the engine's RSS. Writes
the "scheduler" section of bench/RESULTS.md. Run: python -m bench scheduler"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench._stack import bench_stack, command_line, machine, rss_mb, write_section
from bench.outcome import Summary, summarize
from engine.app import Engine
from tests.support.factories import create_account

COLUMNS = ("owner_id", "subject", "node_id", "room", "conference_number", "chair_pin", "guest_pin",
           "starts_at", "duration_minutes", "ends_at", "max_participants", "state", "auto_invite")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conferences", type=int, default=10000, help="scheduled within the next hour")
    parser.add_argument("--burst", type=int, default=1000, help="of them, starting at one and the same moment")
    parser.add_argument("--lead", type=float, default=15.0,
                        help="seconds from scheduling to the burst (the engine sleeps until then)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=60.0,
                        help="seconds after the burst's moment by which every due conference must have started")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def rows(owner_id: int, node_id: str, repeat: int, total: int, burst: int, now: datetime,
         burst_at: datetime) -> list[tuple]:
    """``burst`` conferences at ``burst_at``, the others spread evenly from ``now`` + 1 s to the
    end of the hour; none has participants, so a start is the decision alone (no dialling)."""
    spread = total - burst
    span = 3600.0 - 1.0
    result = []
    for index in range(total):
        if index < burst:
            starts_at = burst_at
        else:
            starts_at = now + timedelta(seconds=1.0 + span * (index - burst) / max(1, spread))
        chair_pin = f"{secrets.randbelow(900000) + 100000}"
        guest_pin = f"{(int(chair_pin) + 1) % 900000 + 100000}"
        result.append((owner_id, "bench", node_id, f"veche-bs{repeat}-{index}", f"9{repeat % 10}{index:07d}",
                       chair_pin, guest_pin, starts_at, 60, starts_at + timedelta(minutes=60), 10, "scheduled",
                       False))
    return result


async def one_run(engine: Engine, owner_id: int, repeat: int, args: argparse.Namespace) -> dict:
    pool: asyncpg.Pool = engine.pool  # type: ignore[assignment]
    # the earlier run's conferences are over: only this run's are scheduled or running
    await pool.execute("UPDATE conferences SET state = 'ended', ended_at = now() "
                       "WHERE owner_id = $1 AND state IN ('scheduled', 'running')", owner_id)
    now = datetime.now(UTC)
    burst_at = (now + timedelta(seconds=args.lead)).replace(microsecond=0)
    records = rows(owner_id, engine.settings.node_id, repeat, args.conferences, args.burst, now, burst_at)
    await pool.copy_records_to_table("conferences", records=records, columns=COLUMNS)
    engine.services.scheduler.wake()  # as the conference service does after planning
    scheduled_rss = rss_mb()[0]
    if datetime.now(UTC) >= burst_at:
        raise RuntimeError(f"scheduling took longer than --lead {args.lead:g} s; raise it")
    deadline = time.monotonic() + (burst_at - datetime.now(UTC)).total_seconds() + args.deadline
    query = ("SELECT count(*) FILTER (WHERE started_at IS NULL) AS waiting, count(*) AS due FROM conferences "
             "WHERE owner_id = $1 AND room LIKE $2 AND starts_at <= $3")
    prefix = f"veche-bs{repeat}-%"
    while True:  # until the burst and everything due with it started, or the deadline
        await asyncio.sleep(0.25)
        if datetime.now(UTC) < burst_at:
            continue
        counts = await pool.fetchrow(query, owner_id, prefix, burst_at)
        if counts["waiting"] == 0 or time.monotonic() > deadline:
            break
    # counted: what was due by the burst, and what fell due after it but more than a second ago
    until = max(burst_at, datetime.now(UTC) - timedelta(seconds=1))
    lags = await pool.fetch(
        "SELECT extract(epoch FROM started_at - starts_at)::float8 AS lag, starts_at = $3 AS burst "
        "FROM conferences WHERE owner_id = $1 AND room LIKE $2 AND started_at IS NOT NULL AND starts_at <= $4",
        owner_id, prefix, burst_at, until)
    due = await pool.fetchval("SELECT count(*) FROM conferences WHERE owner_id = $1 AND room LIKE $2 "
                              "AND starts_at <= $3", owner_id, prefix, until)
    burst_lags = [r["lag"] for r in lags if r["burst"]]
    return {"lags": [r["lag"] for r in lags], "burst_lags": burst_lags, "due": due, "started": len(lags),
            "burst_started": len(burst_lags), "scheduled_rss": scheduled_rss, "after_rss": rss_mb()[0],
            "burst_span": max(burst_lags) - min(burst_lags) if burst_lags else float("nan")}


async def run(args: argparse.Namespace) -> str:
    async with bench_stack() as stack:
        where = machine(stack.asterisk)
        engine = Engine(stack.settings)
        await engine.start()
        try:
            idle_rss = rss_mb()[0]
            owner_id = await create_account(engine.pool, max_participants=50)
            runs = [await one_run(engine, owner_id, repeat, args) for repeat in range(args.repeats)]
        finally:
            await engine.stop()
    peak_rss = rss_mb()[1]

    def figure(name: str, share: float | None = None) -> Summary:
        if share is None:
            return summarize([r[name] for r in runs])
        return summarize([percentile(r[name], share) * 1000 for r in runs if r[name]])

    missed = sum(r["due"] - r["started"] for r in runs)
    lines = [
        f"## Scheduler: {args.conferences} conferences within the hour, {args.burst} at one moment", "",
        f"Machine: {where}.", "",
        f"{args.repeats} run(s) in one engine (real PostgreSQL and Asterisk; the engine's scheduler as "
        f"`engine.app.Engine` builds it). Each run writes {args.conferences} scheduled conferences of one "
        f"account straight to the database (COPY): {args.burst} start at one moment {args.lead:g} s ahead, "
        f"the rest evenly over the hour; then wakes the scheduler as planning does. None has participants, so "
        f"a start is the engine's decision alone (the dial-out pacing is excluded): the lag of a conference "
        f"is its stored `started_at` minus its `starts_at`. A run ends when every conference due by the burst "
        f"has started, or {args.deadline:g} s after the burst; the previous run's conferences are ended first. "
        "Figures are the median (min–max) over the runs.", "",
        "| | p50 | p99 | max |", "|---|---|---|---|",
        f"| start lag, the {args.burst} of the burst | {figure('burst_lags', 0.5).fmt('ms', 1)} | "
        f"{figure('burst_lags', 0.99).fmt('ms', 1)} | {figure('burst_lags', 1.0).fmt('ms', 1)} |",
        f"| start lag, every conference started in the run | {figure('lags', 0.5).fmt('ms', 1)} | "
        f"{figure('lags', 0.99).fmt('ms', 1)} | {figure('lags', 1.0).fmt('ms', 1)} |", "",
        f"Conferences due by a second before the end of a run that had not started: {missed} (over all runs). "
        f"Started per run: {', '.join(str(r['started']) for r in runs)} "
        f"(of them in the burst: {', '.join(str(r['burst_started']) for r in runs)}).", "",
        f"Engine RSS (the benchmark runs the engine in its own process): {idle_rss:.0f} MiB started and idle; "
        f"{figure('scheduled_rss').fmt('MiB', 0)} with the {args.conferences} conferences scheduled; "
        f"{figure('after_rss').fmt('MiB', 0)} after the burst; peak {peak_rss:.0f} MiB.",
    ]
    text = "\n".join(lines)
    print(text)
    write_section("scheduler", text)
    return text


def main() -> None:
    command_line(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
