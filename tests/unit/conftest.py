"""The fixture most rule tests share: the call and conference services over fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.fakes import Stack, build, note_running_tasks


@pytest.fixture(autouse=True)
async def _tasks_of_other_suites() -> None:
    """A unit test waits for its own tasks only (tests/unit/fakes.py ``quiet``)."""
    note_running_tasks()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    built = build(calls_per_second=0, minute_seconds=60.0)
    await built.start()
    yield built
    await built.stop()
