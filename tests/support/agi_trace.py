"""What the engine asked a dial-in caller, read from the real Asterisk's own log of the AGI
commands it received, and a caller who keys each further PIN once the engine asks for it again
(one more ``GET DATA``), as a person would, instead of after a fixed pause."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.keypad import keypad_caller
from tests.support.sipp import SippFactory

POLL_SECONDS = 0.1


class AgiTrace:
    """The AGI commands Asterisk received, read from a temporary logger channel of the real
    Asterisk with AGI debugging on (``<channel>AGI Rx << COMMAND``)."""

    def __init__(self, asterisk, name: str) -> None:
        self.asterisk = asterisk
        self.name = name
        self.path: Path = asterisk.base / "log" / name

    def __enter__(self) -> AgiTrace:
        out = self.asterisk.cli(f"logger add channel {self.name} verbose")
        assert "fail" not in out.lower(), out
        self.asterisk.cli("agi set debug on")
        return self

    def __exit__(self, *exc: object) -> None:
        self.asterisk.cli("agi set debug off")
        self.asterisk.cli(f"logger remove channel {self.name}")

    def offset(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def commands(self, since: int) -> list[str]:
        """The commands since byte ``since`` (one call at a time in the tests that read them)."""
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(since)
            text = handle.read().decode(errors="replace")
        return [match.group(1).strip() for match in re.finditer(r"AGI Rx << (.*)", text)]

    async def wait_for_questions(self, since: int, count: int, timeout: float,
                                 describe: Callable[[], str] = str) -> None:
        """Until the engine has sent ``count`` ``GET DATA`` commands since byte ``since``."""
        deadline = time.monotonic() + timeout
        while sum(c.startswith("GET DATA") for c in self.commands(since)) < count:
            assert time.monotonic() < deadline, f"the engine never asked {count} times:\n{describe()}"
            await asyncio.sleep(POLL_SECONDS)  # polled with a deadline: Asterisk's log file is the event


async def key_when_asked(sipp: SippFactory, trace: AgiTrace, entry: str, answers: Sequence[str], caller: str,
                         timeout: float = 45, entry_answers: int = 1) -> None:
    """A caller keys ``entry`` (the conference number, then the first PIN: ``entry_answers``
    answers to the engine's questions) after the first prompt, then each of ``answers`` once the
    engine asks again, and stays until Asterisk hangs up."""
    since = trace.offset()
    phone = await keypad_caller(sipp, entry, list(answers), caller=caller)
    try:
        for asked in range(entry_answers + 1, entry_answers + len(answers) + 1):
            await trace.wait_for_questions(since, asked, timeout, lambda: phone.process.log_text()[-2000:])
            await phone.press()
        assert await phone.process.wait(timeout) == 0, phone.process.log_text()[-2000:]
    finally:
        await phone.stop()
