"""The private PostgreSQL of ``run`` is durable (fsync, synchronous_commit, full_page_writes on);
only the test harness turns them off. A pid file or a postmaster left by an engine that died
never stops the next start."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from engine.config import Settings
from engine.stack import PostgresCluster, local_postgres, process_cmdline

DURABILITY = ("fsync", "synchronous_commit", "full_page_writes")


async def durability(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        return {name: await conn.fetchval(f"SHOW {name}") for name in DURABILITY}
    finally:
        await conn.close()


async def test_run_starts_a_durable_postgres_and_restarts_an_orphan_started_otherwise(tmp_path: Path) -> None:
    settings = Settings(run_dir=tmp_path / "run")
    careless = PostgresCluster(settings.run_dir / "postgres", durable=False)
    careless.start()  # as if an older engine had started it without fsync and then died
    orphan_pid = careless.running_pid()
    cluster = local_postgres(settings)
    try:
        url = cluster.start()
        assert await durability(url) == dict.fromkeys(DURABILITY, "on")
        assert cluster.running_pid() not in (None, orphan_pid)
        assert process_cmdline(orphan_pid) == []  # gone (at most a zombie waiting for its reaper)
    finally:
        cluster.stop()
    assert cluster.running_pid() is None and not cluster.pid_file.exists()


async def test_a_stale_pid_file_is_cleaned_and_a_healthy_orphan_adopted(tmp_path: Path) -> None:
    cluster = local_postgres(Settings(run_dir=tmp_path / "run"))
    cluster.start()
    cluster.stop()
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    cluster.pid_file.write_text(f"{gone.pid}\n{cluster.data_dir}\n0\n{cluster.port}\n")
    os.chmod(cluster.pid_file, 0o600)
    again = local_postgres(Settings(run_dir=tmp_path / "run"))
    try:
        again.start()
        postmaster = again.running_pid()
        assert postmaster is not None
        third = local_postgres(Settings(run_dir=tmp_path / "run"))
        assert await durability(third.start()) == dict.fromkeys(DURABILITY, "on")
        assert third.running_pid() == postmaster and third.port == again.port  # adopted, not restarted
    finally:
        again.stop()
    assert again.running_pid() is None


async def test_the_test_harness_postgres_is_not_durable(database_url: str) -> None:
    if os.environ.get("DATABASE_URL"):  # a server the tests were given is configured by its owner
        pytest.skip("the tests run on the DATABASE_URL server given to them")
    assert await durability(database_url) == dict.fromkeys(DURABILITY, "off")
