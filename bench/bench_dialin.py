"""Dial-in benchmark: SIPp callers at 30 calls per second for 60 s (1,800 calls) dial the access
number, key a valid conference number and guest PIN at once, stay a few seconds and hang up; no
call may fail. Reports the time from each caller's answer to its ConfbridgeJoin and the engine's
own AGI handling time per call (database and decisions, without the time spent waiting for the
caller's digits). Writes the "dialin" section of bench/RESULTS.md.
Run: python -m bench dialin [--rate 5 --seconds 10] (smaller for a quick run)"""

from __future__ import annotations

import argparse
import csv
import socket
import statistics
import time
from collections import Counter
from pathlib import Path

import jinja2

from bench._stack import bench_stack, command_line, machine, write_section
from bench.outcome import reasons_text
from engine.adapters.asterisk.ami import AmiEvent
from engine.app import Engine
from engine.stack import free_port
from tests.support.dialin_factories import create_conference
from tests.support.dtmf import write_dtmf_pcap
from tests.support.sipp import SCENARIOS, SippProcess, free_media_port


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def sipp_counts(stat_file: Path) -> dict[str, int]:
    rows: list[dict[str, str]] = []
    if stat_file.exists():
        with open(stat_file, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter=";"))
    last = rows[-1] if rows else {}
    return {key: int(last.get(key) or 0) for key in ("TotalCallCreated", "SuccessfulCall(C)", "FailedCall(C)")}


def answer_times(log: Path) -> dict[str, float]:
    """caller number -> wall-clock time of its answer, from the scenario's ``answered`` log lines."""
    times: dict[str, float] = {}
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[-4] == "answered":
                times[parts[-3]] = float(parts[-2]) + float(parts[-1]) / 1e6
    return times


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=30.0, help="new calls per second")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--stay-ms", type=int, default=8000, help="time from answer to the caller's BYE")
    parser.add_argument("--pin-pause-ms", type=int, default=600,
                        help="the caller's pause between the number's # and the PIN's first digit")


async def run(args: argparse.Namespace) -> str:
    total = int(args.rate * args.seconds)
    async with bench_stack() as stack:
        where = machine(stack.asterisk)
        engine = Engine(stack.settings)
        await engine.start()
        try:
            conference = await create_conference(engine.pool, node_id=stack.settings.node_id,
                                                  max_participants=total + 10)
            base = stack.settings.run_dir / "dialin-bench"
            pcap = write_dtmf_pcap(f"{conference.conference_number}#,{conference.guest_pin}#",
                                   base.with_suffix(".pcap"), pause_ms=args.pin_pause_ms)
            scenario = base.with_suffix(".xml")
            template = jinja2.Template((SCENARIOS / "caller_hangup.xml.j2").read_text())
            # each caller logs the moment of its answer (the 200 OK), to time the answer to its join
            scenario.write_text(template.render(pcap=pcap, delay_ms=300, stay_ms=args.stay_ms).replace(
                '<recv response="200" rtd="true"/>',
                '<recv response="200" rtd="true"><action><gettimeofday assign_to="s,us"/>'
                '<log message="answered 3752988[call_number] [$s] [$us]"/></action></recv>', 1))
            stat_file = base.with_suffix(".stat.csv")
            argv = ["sipp", f"127.0.0.1:{stack.settings.sip_port}", "-sf", str(scenario), "-s",
                    stack.settings.access_number, "-r", f"{args.rate:g}", "-m", str(total), "-l", str(total),
                    "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)), "-mi", "127.0.0.1",
                    "-mp", str(free_media_port()), "-nostdin", "-trace_stat", "-stf", str(stat_file),
                    "-fd", "5", "-trace_logs", "-log_file", str(base.with_suffix(".answers")),
                    "-trace_err", "-error_file", str(base.with_suffix(".err"))]
            joined_at: dict[str, float] = {}  # caller number -> wall-clock time its ConfbridgeJoin arrived

            def on_join(event: AmiEvent) -> None:
                if event.get("Conference") == conference.room:
                    joined_at.setdefault(event.get("CallerIDNum"), time.time())

            engine.ami.subscribe(on_join, ("ConfbridgeJoin",))
            dialin = engine.services.dialin
            dialin.outcomes.clear()
            dialin.outcomes_kept = total + 100
            started = time.monotonic()
            process = await SippProcess(argv, base.with_suffix(".log")).start()
            try:
                code: int | str = await process.wait(args.seconds + args.stay_ms / 1000 + 120)
            except TimeoutError:  # the deadline: stop SIPp and report what it counted so far
                await process.stop()
                code = "killed at the deadline"
            elapsed = time.monotonic() - started
            counts = sipp_counts(stat_file)
            outcomes = list(dialin.outcomes)
        finally:
            await engine.stop()
        answered = answer_times(base.with_suffix(".answers"))
    joins = len(joined_at)
    to_join = [joined_at[caller] - at for caller, at in answered.items() if caller in joined_at]
    admitted = [o for o in outcomes if o.participant_id is not None]
    engine_ms = [o.engine_seconds * 1000 for o in admitted]
    total_s = [o.total_seconds for o in admitted]
    lines = [
        f"## Dial-in: {args.rate:g} callers per second for {args.seconds} s", "",
        f"Machine: {where}.", "",
        f"SIPp (tests/sipp/caller_hangup.xml.j2) placed {counts['TotalCallCreated']} calls at {args.rate:g}/s "
        f"to the access number; each keyed the conference number and guest PIN as RFC 4733 events, stayed "
        f"{args.stay_ms / 1000:g} s after the answer and hung up (about {args.rate * args.stay_ms / 1000:.0f} "
        f"calls up at once, all in one ConfBridge room). Wall time {elapsed:.1f} s, SIPp exit code {code}.", "",
        "| calls | successful (SIPp) | failed (SIPp) | admitted by the engine | ConfbridgeJoin seen |",
        "|---|---|---|---|---|",
        f"| {counts['TotalCallCreated']} | {counts['SuccessfulCall(C)']} | {counts['FailedCall(C)']} | "
        f"{len(admitted)} | {joins} |", "",
        "Engine's AGI handling time per admitted call (FastAGI session minus the time spent playing prompts "
        "and waiting for digits: conference lookup, PIN check, seat count, participant row, SET VARIABLE "
        "round trips):", "",
        "| p50 | p95 | p99 | max | mean |", "|---|---|---|---|---|",
    ]
    if engine_ms:
        lines.append(f"| {percentile(engine_ms, 0.5):.1f} ms | {percentile(engine_ms, 0.95):.1f} ms | "
                     f"{percentile(engine_ms, 0.99):.1f} ms | {max(engine_ms):.1f} ms | "
                     f"{statistics.mean(engine_ms):.1f} ms |")
        lines += ["", f"Whole IVR session per call (prompts and keying included): median "
                      f"{statistics.median(total_s):.2f} s, max {max(total_s):.2f} s."]
    if to_join:
        lines += ["", "Answer (the caller's 200 OK, SIPp's clock) to its ConfbridgeJoin (as the engine received it), "
                      "for callers keying the number 300 ms after the answer and the PIN "
                      f"{args.pin_pause_ms / 1000:g} s later, without waiting "
                      "for prompts:", "", "| callers | p50 | p95 | p99 | max |", "|---|---|---|---|---|",
                  f"| {len(to_join)} | {percentile(to_join, 0.5):.2f} s | {percentile(to_join, 0.95):.2f} s | "
                  f"{percentile(to_join, 0.99):.2f} s | {max(to_join):.2f} s |"]
    refused = Counter(str(o.refusal) if o.refusal is not None else "left before admission"
                      for o in outcomes if o.participant_id is None)
    wrong = sum(1 for o in outcomes if o.wrong_entries)
    lines += ["", f"Callers the engine did not admit: {reasons_text(refused)}; callers with a wrong entry "
                  f"(a digit lost on the way, then keyed again or refused): {wrong}."]
    text = "\n".join(lines)
    print(text)
    write_section("dialin", text)
    return text


def main() -> None:
    command_line(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
