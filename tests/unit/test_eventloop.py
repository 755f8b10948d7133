"""Every Veche process and the tests run on the loop of engine/eventloop.py."""

import asyncio

import uvloop

from engine import eventloop


async def test_the_tests_run_on_the_engines_loop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


def test_run_returns_what_the_coroutine_returns_on_a_uvloop() -> None:
    async def kind() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert eventloop.run(kind()).startswith("uvloop")
