"""The audio command-line tools (ffmpeg, ffprobe, sox, soxi) run as subprocesses with a deadline:
one way to call them, one way to fail."""

from __future__ import annotations

import asyncio


async def run_tool(*argv: str, timeout: float) -> str:
    """Run a tool; its standard output, or RuntimeError with its complaint (also on a timeout,
    after the process is killed)."""
    process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"{argv[0]} took longer than {timeout:.0f} s") from None
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {process.returncode}: {err.decode(errors='replace').strip()[:300]}")
    return out.decode().strip()
