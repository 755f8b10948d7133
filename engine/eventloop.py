"""The event loop every Veche process runs on: uvloop, whose loop, tasks and sockets cost the
engine a quarter to a third less CPU than asyncio's own in a dial-out burst (bench/README.md, "Ninth
round"), CPU the engine otherwise takes from Asterisk on the same cores."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A fresh loop of the kind ``run`` uses (for runners that make their own, e.g. the tests')."""
    import uvloop  # here: the Asterisk image renders its config through engine's commands without it

    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end on a new loop, as asyncio.run does."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
