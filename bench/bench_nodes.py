"""Several-nodes benchmark: two Asterisk nodes behind Kamailio. (1) R immediate conferences of S
dial-out callees each (default 10 x 30 = 300) placed on 2 nodes vs on 1 node (the other drained):
time from the first start to all joined, failed calls with their reason, where each conference was
placed. (2) Dial-in through Kamailio vs straight to a node: answer to ConfbridgeJoin and the
engine's admission to the room, local callers apart from callers handed over to the conference's
node. Every run has a deadline. Writes the "nodes" section of bench/RESULTS.md.
Run: python -m bench nodes [--rooms 10 --room-size 30 --repeats 3 --callers 20]"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

import jinja2

from bench._stack import (
    NodesStack,
    asterisk_complaints,
    asterisk_log_size,
    command_line,
    machine,
    nodes_stack,
    write_section,
)
from bench.bench_dialin import answer_times, percentile, sipp_counts
from bench.bench_dialout import EngineCalls
from bench.outcome import CallTally, reasons_text, summarize
from bench.raw_ami import track
from engine.adapters.asterisk.ami import AmiEvent
from engine.app import Engine
from engine.domain.model import ConferencePlan, ParticipantPlan
from engine.stack import free_port
from tests.support.dtmf import write_dtmf_pcap
from tests.support.factories import create_account
from tests.support.portal import PASSWORD, random_account_phone
from tests.support.sipp import SCENARIOS, SippProcess, free_media_port

NODES = 2
TRACKED = ("OriginateResponse", "Hangup", "ConfbridgeJoin")
ROOM_END_SECONDS = 30.0
HANDOVER_CHANNEL = "PJSIP/internode-"  # a caller the node Kamailio chose handed over to the room's node


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rooms", type=int, default=10, help="immediate conferences started at once")
    parser.add_argument("--room-size", type=int, default=30, help="dial-out callees per conference")
    parser.add_argument("--repeats", type=int, default=3, help="runs per layout (2 nodes, 1 node), interleaved")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds one dial-out run may take (default 30 + 0.2 per callee)")
    parser.add_argument("--calls-per-second", type=float, default=1000.0, help="the engine's dial-out pacing")
    parser.add_argument("--callers", type=int, default=20, help="dial-in callers per path")
    parser.add_argument("--rate", type=float, default=1.0, help="new dial-in calls per second")
    parser.add_argument("--stay-ms", type=int, default=12000, help="time from a caller's answer to its BYE")
    parser.add_argument("--pin-pause-ms", type=int, default=1500,
                        help="the caller's pause between the number's # and the PIN's first digit")


# ----------------------------------------------------------------------------- dial-out


@dataclass
class DialoutRun:
    nodes: int  # nodes taking conferences (the other drained)
    joined: float | None  # seconds from the first start to the last join, None unless all joined
    planned: float  # seconds to start all the conferences (plan() of each)
    tally: CallTally
    placed: Counter[str] = field(default_factory=Counter)  # node id -> conferences placed there
    refused: list[str] = field(default_factory=list)  # conferences not started, with the reason


async def dialout_run(stack: NodesStack, engine: Engine, owner: int, nodes: int, rooms: int, size: int, rep: int,
                      calls: EngineCalls, deadline: float) -> DialoutRun:
    tally = CallTally(rooms * size)
    changed = asyncio.Event()

    def on_ami(event: AmiEvent) -> None:
        track(tally, event, calls, None, time.perf_counter())
        changed.set()

    links = list(engine.links.values())
    for link in links:
        link.subscribe(on_ami, TRACKED)
    conferences = []
    refused: list[str] = []
    started = time.perf_counter()
    try:
        for room in range(rooms):
            # 375 29 <run:2> <index:3> 00: answered at once by pstn.xml (never a special ending)
            numbers = [f"37529{(rep * 2 + nodes) % 100:02d}{room * size + i:03d}00" for i in range(size)]
            try:
                conferences.append(await engine.services.planning.plan(owner, ConferencePlan(
                    subject=f"bench nodes {room}", start=None, duration_minutes=30, max_participants=size,
                    participants=tuple(ParticipantPlan(n) for n in numbers))))
            except Exception as exc:  # noqa: BLE001 - a conference refused (no node fits) is a result
                refused.append(f"{type(exc).__name__}: {exc}")
                tally.expected -= size
        planned = time.perf_counter() - started
        stop_at = started + deadline
        while not tally.finished:
            left = stop_at - time.perf_counter()
            if left <= 0:
                break
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                break
    finally:
        for link in links:
            link.unsubscribe(on_ami)
    tally.close()
    joined = tally.last_join_at - started if tally.all_joined and tally.last_join_at and not refused else None
    await end_rooms(stack, engine, owner, conferences)
    return DialoutRun(nodes, joined, planned, tally, Counter(c.node_id for c in conferences), refused)


async def end_rooms(stack: NodesStack, engine: Engine, owner: int, conferences: list) -> None:
    """End the conferences (list[Conference]) and wait, with a deadline, until no node lists their
    rooms any more (a room nobody joined never existed)."""
    for conference in conferences:
        await engine.services.live.end(owner, conference.id)
    rooms = {c.room for c in conferences}
    stop_at = time.monotonic() + ROOM_END_SECONDS
    while True:
        listed = " ".join([await asyncio.to_thread(node.cli, "confbridge list") for node in stack.nodes])
        left = sorted(room for room in rooms if room in listed)
        if not left:
            return
        if time.monotonic() > stop_at:
            logging.warning("rooms %s did not end within %.0f s", left, ROOM_END_SECONDS)
            return
        await asyncio.sleep(0.5)  # Asterisk's CLI has no event to await; polled with a deadline


async def dialout_runs(stack: NodesStack, engine: Engine, args: argparse.Namespace) -> list[DialoutRun]:
    total = args.rooms * args.room_size
    owner = await create_account(engine.pool, max_participants=total, max_concurrent_conferences=args.rooms,
                                 max_dialouts_per_minute=10**6, max_concurrent_calls=total)
    operator = await engine.services.accounts.create(random_account_phone(), PASSWORD, role="operator")
    calls = EngineCalls()
    runs: list[DialoutRun] = []
    deadline = args.deadline if args.deadline is not None else 30.0 + 0.2 * total
    spare = engine.settings.media_nodes[-1].node_id
    for rep in range(args.repeats):
        for nodes in (NODES, 1):  # interleaved: the machine's other load falls on both alike
            await engine.services.nodes.set_draining(operator.id, spare, nodes < NODES)
            runs.append(await dialout_run(stack, engine, owner, nodes, args.rooms, args.room_size, rep, calls,
                                          deadline))
            calls.next_run()
            print(f"dial-out on {nodes} node(s), run {rep + 1}: {runs[-1].joined}", flush=True)
    await engine.services.nodes.set_draining(operator.id, spare, False)
    return runs


# ----------------------------------------------------------------------------- dial-in


@dataclass
class DialinPath:
    target: str  # "front" (Kamailio), "home" (the conference's node) or "other" (another node)
    name: str = ""  # what the callers dialled
    answered: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    code: int | str = "?"
    local: list[float] = field(default_factory=list)  # answer -> ConfbridgeJoin, seconds
    handed: list[float] = field(default_factory=list)
    admitted_local: list[float] = field(default_factory=list)  # engine's admission -> joined_at
    admitted_handed: list[float] = field(default_factory=list)
    missing: int = 0  # answered callers never seen joining


async def dialin_path(stack: NodesStack, engine: Engine, args: argparse.Namespace, path: DialinPath,
                      prefix: str) -> DialinPath:
    owner = await engine.services.accounts.create(random_account_phone(), PASSWORD)
    conference = await engine.services.planning.plan(owner.id, ConferencePlan(
        subject=f"dial-in {path.name}", start=None, duration_minutes=30, max_participants=args.callers + 5,
        participants=()))
    home, other = _home_and_other(engine, conference.node_id)
    host = {"front": stack.settings.sip_host, "home": home.sip_host, "other": other.sip_host}[path.target]
    path.name = {"front": f"Kamailio ({host})", "home": f"straight to the conference's node ({home.node_id}, {host})",
                 "other": f"straight to the other node ({other.node_id}, {host})"}[path.target]
    base = stack.settings.run_dir / f"dialin-{prefix}"
    pcap = write_dtmf_pcap(f"{conference.conference_number}#,{conference.guest_pin}#", base.with_suffix(".pcap"),
                           pause_ms=args.pin_pause_ms)
    template = jinja2.Template((SCENARIOS / "caller_hangup.xml.j2").read_text())
    scenario = base.with_suffix(".xml")
    # each caller logs the moment of its answer; the numbers of one path are its own
    scenario.write_text(template.render(pcap=pcap, delay_ms=1000, stay_ms=args.stay_ms).replace(
        '<recv response="200" rtd="true"/>',
        '<recv response="200" rtd="true"><action><gettimeofday assign_to="s,us"/>'
        '<log message="answered 3752988[call_number] [$s] [$us]"/></action></recv>', 1
    ).replace("3752988[call_number]", f"37529{prefix}[call_number]"))
    joined: dict[str, tuple[float, str]] = {}  # caller number -> (wall clock of its join, its channel)

    def on_join(event: AmiEvent) -> None:
        if event.get("Conference") == conference.room:
            joined.setdefault(event.get("CallerIDNum"), (time.time(), event.get("Channel", "")))

    links = list(engine.links.values())
    for link in links:
        link.subscribe(on_join, ("ConfbridgeJoin",))
    stat_file = base.with_suffix(".stat.csv")
    argv = ["sipp", f"{host}:{stack.settings.sip_port}", "-sf", str(scenario), "-s",
            stack.settings.access_number, "-r", f"{args.rate:g}", "-m", str(args.callers), "-l", str(args.callers),
            "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)), "-mi", "127.0.0.1",
            "-mp", str(free_media_port()), "-nostdin", "-trace_stat", "-stf", str(stat_file), "-fd", "5",
            "-trace_logs", "-log_file", str(base.with_suffix(".answers")),
            "-trace_err", "-error_file", str(base.with_suffix(".err"))]
    try:
        process = await SippProcess(argv, base.with_suffix(".log")).start()
        try:
            path.code = await process.wait(args.callers / args.rate + args.stay_ms / 1000 + 60)
        except TimeoutError:  # the deadline: stop SIPp and report what it counted so far
            await process.stop()
            path.code = "killed at the deadline"
    finally:
        for link in links:
            link.unsubscribe(on_join)
    path.counts = sipp_counts(stat_file)
    answered = answer_times(base.with_suffix(".answers"))
    path.answered = len(answered)
    for caller, at in answered.items():
        if caller not in joined:
            path.missing += 1
            continue
        join_at, channel = joined[caller]
        (path.handed if channel.startswith(HANDOVER_CHANNEL) else path.local).append(join_at - at)
    stored = await engine.services.planning.get(owner.id, conference.id)
    admitted = {e["participant_id"]: e["at"] for e in await engine.services.planning.events(owner.id, conference.id)
                if e["kind"] == "participant.dialin"}
    handed_numbers = {c for c, (_, channel) in joined.items() if channel.startswith(HANDOVER_CHANNEL)}
    for row in stored.participants:
        if row.joined_at is not None and row.id in admitted:
            seconds = (row.joined_at - admitted[row.id]).total_seconds()
            (path.admitted_handed if row.number in handed_numbers else path.admitted_local).append(seconds)
    await end_rooms(stack, engine, owner.id, [conference])
    print(f"dial-in {path.name}: {len(path.local)} local, {len(path.handed)} handed over, "
          f"{path.missing} not joined", flush=True)
    return path


def _home_and_other(engine: Engine, node_id: str) -> tuple:  # (NodeSpec, NodeSpec)
    nodes = engine.settings.media_nodes
    home = next(n for n in nodes if n.node_id == node_id)
    return home, next(n for n in nodes if n.node_id != node_id)


async def dialin_runs(stack: NodesStack, engine: Engine, args: argparse.Namespace) -> list[DialinPath]:
    paths = [DialinPath("front"), DialinPath("home"), DialinPath("other")]
    for index, path in enumerate(paths):
        await dialin_path(stack, engine, args, path, f"8{index}")
    return paths


# ----------------------------------------------------------------------------- report


def _spread(values: list[float], ms: bool = False) -> str:
    """'p50 / p95' of seconds, in s or in ms."""
    if not values:
        return "—"
    if ms:
        return f"{percentile(values, 0.5) * 1000:.0f} ms / {percentile(values, 0.95) * 1000:.0f} ms"
    return f"{percentile(values, 0.5):.2f} s / {percentile(values, 0.95):.2f} s"


def report(args: argparse.Namespace, where: str, runs: list[DialoutRun], paths: list[DialinPath],
           complaints: str) -> str:
    total = args.rooms * args.room_size
    lines = [
        f"## Several nodes: {total} callees in {args.rooms} rooms on 2 nodes vs 1; dial-in through Kamailio", "",
        f"Machine: {where}.", "",
        f"Two Asterisk 22 nodes (127.0.0.11, 127.0.0.12) behind Kamailio on 127.0.0.1, one engine, one SIPp "
        "carrier behind Kamailio (tests/sipp/pstn.xml, answering at once). Node capacity "
        f"{engine_capacity(args)} participants, calls_per_second={args.calls_per_second:g}.", "",
        f"### Dial-out: {args.rooms} immediate conferences of {args.room_size} callees", "",
        f"{args.repeats} run(s) per layout, the layouts interleaved. *2 nodes*: each conference placed by "
        "load (most free seats); *1 node*: the second node drained (`set_draining`), so all go to the first. "
        f"Time from the first `plan()` to the {total}-th ConfbridgeJoin (any node), median (min–max) over the "
        "complete runs; a run ends when all joined, every call ended, or its deadline passed "
        f"({args.deadline or 30 + 0.2 * total:g} s); *failed* lists every call that did not join, with its "
        "reason, summed over the runs.", "",
        "| nodes | all joined | starting the conferences | complete | failed | placed (conferences per node) |",
        "|---|---|---|---|---|---|",
    ]
    for nodes in (NODES, 1):
        mine = [r for r in runs if r.nodes == nodes]
        joined = summarize([r.joined for r in mine if r.joined is not None])
        planned = summarize([r.planned for r in mine])
        failed: Counter[str] = Counter()
        for r in mine:
            failed += r.tally.reasons()
            failed.update(r.refused)
        placed = "; ".join(", ".join(f"{node}×{count}" for node, count in sorted(r.placed.items())) for r in mine)
        lines.append(f"| {nodes} | {joined.fmt()} | {planned.fmt()} | "
                     f"{sum(r.joined is not None for r in mine)}/{len(mine)} | {reasons_text(failed)} | {placed} |")
    lines += [
        "", "Both nodes run on this one machine and share its cores, so the 2-node layout cannot mix faster "
            "here: the table shows that placement spreads the rooms evenly and what spreading costs (two AMI "
            "links, Kamailio's dispatcher), not the capacity a second server adds.",
        "", f"### Dial-in: through Kamailio vs straight to a node ({args.callers} callers per path)", "",
        f"SIPp callers (tests/sipp/caller_hangup.xml.j2) at {args.rate:g}/s dial the access number, key the "
        f"conference number 1 s after the answer and the guest PIN {args.pin_pause_ms / 1000:g} s after its `#` "
        f"(RFC 4733), stay {args.stay_ms / 1000:g} s. Each path has its own conference (placed by load). "
        "*Answer → join*: the caller's 200 OK (SIPp's clock) to its ConfbridgeJoin on the conference's node "
        "(the keying time is in it, the same on every path); *admission → room*: the engine's "
        "`participant.dialin` event (PIN accepted on the node that took the call) to the participant's "
        "`joined_at`, i.e. the hand-over alone. *Handed over*: the join came in on the inter-node trunk "
        f"(`{HANDOVER_CHANNEL}…`): the node Kamailio (or the caller) chose was not the conference's. "
        "Times are p50 / p95.", "",
        "| path | calls (SIPp ok / failed) | answered | not joined | local: answer → join | handed over: "
        "answer → join | local: admission → room | handed over: admission → room |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in paths:
        lines.append(
            f"| {p.name} | {p.counts.get('TotalCallCreated', 0)} ({p.counts.get('SuccessfulCall(C)', 0)} / "
            f"{p.counts.get('FailedCall(C)', 0)}; exit {p.code}) | {p.answered} | {p.missing} | "
            f"{_spread(p.local)} ({len(p.local)}) | {_spread(p.handed)} ({len(p.handed)}) | "
            f"{_spread(p.admitted_local, ms=True)} | {_spread(p.admitted_handed, ms=True)} |")
    local = [v for p in paths for v in p.admitted_local]
    handed = [v for p in paths for v in p.admitted_handed]
    if local and handed:
        lines += ["", f"Extra setup time of a hand-over (admission → room, p50 handed over minus p50 local): "
                      f"{(percentile(handed, 0.5) - percentile(local, 0.5)) * 1000:.0f} ms. The handed-over "
                      "caller's media flows caller → the node that took the call → inter-node trunk → the "
                      "conference's node: the first node bridges the RTP and stays in the media path (docs/deploy.md, "
                      "\"A caller on the other node\").",
                  "", "Where the hand-over's time goes (one handed-over caller traced with `pjsip set logger on` "
                      "and the engine's log, 2026-11-26): the inter-node INVITE, its digest challenge, the 200 OK"
                      " and the second FastAGI session (`handover` route) take about 15 ms together; the rest, "
                      "about 500 ms, lies between that AGI session's end and the ConfbridgeJoin on the "
                      "conference's node: ConfBridge answers the ringing inter-node leg, and Asterisk's answer "
                      "(`__ast_answer` in main/channel.c) then waits up to 500 ms for the first media frame. The "
                      "SIPp caller sends no RTP after its keys, so the wait runs out; a caller who sends audio (a"
                      " phone sends RTP every 20 ms) ends it with the first frame the forwarding node bridges "
                      "over, so the figure is an upper bound for silent callers."]
    lines += ["", f"Asterisk's warnings and errors during the runs (messages.log of both nodes): {complaints}."]
    return "\n".join(lines)


def engine_capacity(args: argparse.Namespace) -> int:
    """Seats per node: the whole dial-out load fits one node, so the 1-node layout is never refused."""
    return args.rooms * args.room_size + args.callers + 10


async def run(args: argparse.Namespace) -> str:
    total = args.rooms * args.room_size
    async with nodes_stack(NODES, node_capacity=engine_capacity(args)) as stack:
        where = machine(stack.nodes[0])
        log_start = [asterisk_log_size(n) for n in stack.nodes]
        engine = Engine(stack.settings.with_(calls_per_second=args.calls_per_second,
                                             max_concurrent_calls=total + args.callers + 10))
        await engine.start()
        try:
            runs = await dialout_runs(stack, engine, args)
            paths = await dialin_runs(stack, engine, args)
        finally:
            await engine.stop()
        complaints = "; ".join(f"{spec.node_id}: {asterisk_complaints(n, since)}" for spec, n, since
                               in zip(stack.settings.media_nodes, stack.nodes, log_start, strict=True))
    text = report(args, where, runs, paths, complaints)
    print(text)
    write_section("nodes", text)
    return text


def main() -> None:
    command_line(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
