"""One command for the benchmarks: ``python -m bench all`` runs every benchmark and rewrites
bench/RESULTS.md; ``python -m bench dialout|dialin|ingest|scheduler|console|nodes [options]`` runs one of them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from bench import (
    _stack,
    bench_ami_ingest,
    bench_console,
    bench_dialin,
    bench_dialout,
    bench_nodes,
    bench_scheduler,
)
from bench._stack import machine, write_header
from engine import eventloop

# name -> module with add_arguments(parser) and async run(args) -> str (its RESULTS.md section)
BENCHMARKS: dict[str, ModuleType] = {
    "dialout": bench_dialout,
    "dialin": bench_dialin,
    "ingest": bench_ami_ingest,
    "scheduler": bench_scheduler,
    "console": bench_console,
    "nodes": bench_nodes,
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    top.add_argument("--results", type=Path, default=_stack.RESULTS,
                     help="the file whose sections are rewritten (default bench/RESULTS.md)")
    commands = top.add_subparsers(dest="command", required=True)
    every = commands.add_parser("all", help="run every benchmark with its defaults and rewrite bench/RESULTS.md")
    every.add_argument("--quick", action="store_true",
                       help="tiny sizes and one repeat: checks the plumbing, the figures mean nothing")
    every.add_argument("--skip", nargs="*", default=[], choices=sorted(BENCHMARKS),
                       help="benchmarks to leave out (their old sections stay)")
    for name, module in BENCHMARKS.items():
        sub = commands.add_parser(name, help=(module.__doc__ or "").split(":", 1)[0])
        module.add_arguments(sub)
    return top


# ``all --quick``: the options each benchmark runs with
QUICK: dict[str, list[str]] = {
    "dialout": ["--sizes", "10", "--repeats", "1", "--small-runs", "1"],
    "dialin": ["--rate", "2", "--seconds", "5", "--stay-ms", "7000"],  # the IVR takes ~4.6 s,
    "ingest": ["--events", "5000", "--repeats", "1"],
    "scheduler": ["--conferences", "500", "--burst", "100", "--repeats", "1"],
    "console": ["--viewers", "10", "--rate", "100", "--seconds", "3", "--repeats", "1"],
    "nodes": ["--rooms", "2", "--room-size", "5", "--repeats", "1", "--callers", "4", "--rate", "1"],
}


SETTLE_SECONDS = 180.0  # the longest wait for the previous benchmark's load to die down


async def settled_load(cores: int, quick: bool) -> float:
    """The 1-minute load average once it has fallen to half the number of cores (the previous
    benchmark's own processes have ended, but the average decays over a minute or two, and
    Asterisk and PostgreSQL finish their own clean-up after the benchmark stopped them), or after
    SETTLE_SECONDS when other work keeps it up."""
    deadline = time.monotonic() + (0 if quick else SETTLE_SECONDS)
    while os.getloadavg()[0] > cores / 2 and time.monotonic() < deadline:
        await asyncio.sleep(5)
    return os.getloadavg()[0]


async def run_all(skip: list[str], quick: bool = False) -> None:
    started = time.monotonic()
    where = machine()
    loads: dict[str, float] = {}
    failures: list[str] = []
    cores = os.cpu_count() or 1
    for name in BENCHMARKS:
        if name in skip:
            continue
        loads[name] = await settled_load(cores, quick)  # before the benchmark starts its own processes
        print(f"== {name}", flush=True)
        # each in a process of its own: no benchmark inherits another's heap (a larger heap makes
        # every garbage collection of the next one slower), tasks or event loop
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench", "--results", str(_stack.RESULTS), name,
            *(QUICK.get(name, []) if quick else []))
        code = await process.wait()
        if code:  # one broken benchmark must not stop the others
            failures.append(f"{name}: exited with code {code} (its output above says why)")
    busy = {name: load for name, load in loads.items() if load > cores}
    if busy:
        failures.append("not final: the 1-minute load average was above the number of cores at the start of " +
                        ", ".join(f"{name} ({load:.1f})" for name, load in busy.items()) +
                        " (other work was running); rerun on a quiet machine")
    command = "python -m bench all --quick (a plumbing check: the figures mean nothing)" if quick else \
        "python -m bench all"
    if skip:
        command += " --skip " + " ".join(skip)
    write_header(where, time.monotonic() - started, failures, command, skipped=skip)
    print(f"wrote {_stack.RESULTS}")


def main() -> None:
    args = parser().parse_args()
    logging.basicConfig(level=logging.WARNING)
    _stack.RESULTS = args.results
    if args.command == "all":
        eventloop.run(run_all(args.skip, args.quick))
    else:
        eventloop.run(BENCHMARKS[args.command].run(args))


if __name__ == "__main__":
    main()
