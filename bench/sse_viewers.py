"""The viewers of the console fan-out benchmark, in a process of their own so they do not share
the engine's event loop: N real HTTP SSE clients (aiohttp) on one conference's event stream.
Each records when its ``participant.talking`` events arrived (time.monotonic, one clock for every
process of the machine): per read, the running count and the time, so that 200 viewers of 1,000
events a second cost little more than the reads. Prints ``ready`` once every viewer has its
snapshot; after a line with the path of the send times on stdin, prints one JSON line with the
delivery latencies. Run by bench/bench_console.py, not by hand."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array

import aiohttp

from engine import eventloop

EVENT = b'"kind":"participant.talking"'


class Viewer:
    """What one viewer received: after each read, how many talking events it held in all and
    when (the stream keeps the bus's order, so the k-th event read is the sender's k-th)."""

    def __init__(self) -> None:
        self.ends = array("l")  # events received in all after each read
        self.times = array("d")  # when that read returned
        self.count = 0
        self.snapshot = asyncio.Event()
        self.error = ""

    def take(self, chunk: bytes, at: float) -> None:
        found = chunk.count(EVENT)
        if found:
            self.count += found
            self.ends.append(self.count)
            self.times.append(at)


async def watch(session: aiohttp.ClientSession, url: str, token: str, viewer: Viewer, total: int,
                deadline: float) -> None:
    try:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"},
                               timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
            if response.status != 200:
                viewer.error = f"HTTP {response.status}"
                viewer.snapshot.set()
                return
            pending = b""
            while viewer.count < total and time.monotonic() < deadline:
                try:
                    chunk = await asyncio.wait_for(response.content.readany(), max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
                if not chunk:
                    viewer.error = "stream closed by the server"
                    break
                at = time.monotonic()
                if not viewer.snapshot.is_set():
                    pending += chunk
                    if b"event: snapshot" in pending and b"\n\n" in pending.split(b"event: snapshot", 1)[1]:
                        viewer.snapshot.set()
                        viewer.take(pending, at)
                    continue
                viewer.take(chunk, at)
    except (aiohttp.ClientError, OSError) as exc:
        viewer.error = f"{type(exc).__name__}: {exc}"
        viewer.snapshot.set()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--deadline", type=float, required=True, help="seconds from start to give up")
    args = parser.parse_args()
    deadline = time.monotonic() + args.deadline
    viewers = [Viewer() for _ in range(args.viewers)]
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(watch(session, args.url, args.token, v, args.events, deadline)) for v in viewers]
        await asyncio.wait_for(asyncio.gather(*(v.snapshot.wait() for v in viewers)), args.deadline)
        errors = [v.error for v in viewers if v.error]
        print("ready" if not errors else f"failed {errors[0]} ({len(errors)} viewers)", flush=True)
        path = (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()
        await asyncio.wait(tasks, timeout=max(0.1, deadline - time.monotonic()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    sent = array("d")
    with open(path, "rb") as handle:
        sent.frombytes(handle.read())
    latencies: list[float] = []
    lost = 0
    for viewer in viewers:
        first = 0
        for end, arrived in zip(viewer.ends, viewer.times, strict=True):
            end = min(end, len(sent))
            latencies.extend(arrived - sent[index] for index in range(first, end))
            first = end
        lost += max(0, args.events - first)
    print(json.dumps({
        "delivered": len(latencies), "lost": lost, "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95), "p99": percentile(latencies, 0.99),
        "max": max(latencies) if latencies else float("nan"),
        "errors": sorted({v.error for v in viewers if v.error})}), flush=True)


if __name__ == "__main__":
    eventloop.run(main())
