"""Runs one engine in a process of its own, so a test can SIGKILL it mid-conference.

``python -m tests.support.engine_process <base64 pickle of (Settings, plan)>`` starts the engine,
plans the conference if one is given (``(owner_id, ConferencePlan)``, or a list of them), prints
one JSON line ``{"conference_id": ..., "conference_ids": [...]}`` and runs until killed. The
standby of an engine pair prints its line once it has taken over; an active engine that loses
its lease stops and exits with 3."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import sys
from typing import Any

from engine import eventloop
from engine.app import Engine


def encode(settings: Any, plan: Any = None) -> str:
    return base64.b64encode(pickle.dumps((settings, plan))).decode()


async def run(argument: str) -> None:
    settings, plan = pickle.loads(base64.b64decode(argument))  # noqa: S301 - written by our own test
    engine = Engine(settings)
    await engine.start()
    plans = [] if plan is None else plan if isinstance(plan, list) else [plan]
    ids = [(await engine.services.planning.plan(owner_id, conference_plan)).id
           for owner_id, conference_plan in plans]
    print(json.dumps({"conference_id": ids[0] if ids else None, "conference_ids": ids}), flush=True)
    await engine.deposed.wait()  # until killed, or until the active engine of a pair loses its lease
    await engine.stop()
    sys.exit(3)  # as `python -m engine run` does (engine/__main__.py EXIT_LEASE_LOST)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    eventloop.run(run(sys.argv[1]))
