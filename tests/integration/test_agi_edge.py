"""The FastAGI edge over TCP: broken, hostile and unauthenticated sessions end alone (one log line,
one count per reason) while the engine keeps answering /healthz and real SIPp callers still get
in; the secret and the allow-list refuse before any database work; digits keyed during the first
prompt (heard by the dialplan's Read()) are kept."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from engine.agi import END_REASONS, AgiCall, AgiLimits, AgiServer
from engine.config import Settings
from engine.domain.errors import ConfigError
from engine.stack import free_port
from tests.support.dialin_factories import create_conference, random_caller

pytestmark = pytest.mark.stack

FUZZ_SESSIONS = 1000
CALL_SETUP_TIMEOUT = 40
SERVER_CLOSE_TIMEOUT = 20  # a refused session is closed by the server well before this


def header(script: str = "dialin", secret: str | None = None, first: str = "", **extra: str) -> bytes:
    """A header block like the one Asterisk sends for AGI(agi://host/SCRIPT,SECRET,FIRST)."""
    lines = {"agi_network": "yes", "agi_network_script": script, "agi_request": f"agi://127.0.0.1/{script}",
             "agi_channel": "PJSIP/fuzz-00000001", "agi_language": "en", "agi_type": "PJSIP",
             "agi_uniqueid": "1700000000.1", "agi_callerid": "375291234567", "agi_context": "veche-dialin",
             "agi_extension": "7000", "agi_priority": "4", **extra}
    if secret is not None:
        lines["agi_arg_1"] = secret
        lines["agi_arg_2"] = first
    return "".join(f"{key}: {value}\n" for key, value in lines.items()).encode() + b"\n"


async def ended_delta(server: AgiServer, before: Counter[str], at_least: int, timeout: float = 30) -> Counter[str]:
    """The sessions ended since ``before`` (per reason), once there are at least ``at_least``."""
    deadline = time.monotonic() + timeout
    while True:
        delta = Counter({reason: server.ended[reason] - before[reason] for reason in END_REASONS})
        if delta.total() >= at_least or time.monotonic() > deadline:
            return +delta
        await asyncio.sleep(0.05)


async def server_closes(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing (it sends nothing to a refused session)."""
    with contextlib.suppress(ConnectionError):
        return await asyncio.wait_for(reader.read(), SERVER_CLOSE_TIMEOUT)
    return b""


# ------------------------------------------------------------------ a session cut short

async def test_header_line_then_close_ends_the_session_and_the_engine_stays_responsive(engine, api_server) -> None:
    agi = engine.agi
    before = Counter(agi.ended)
    reader, writer = await asyncio.open_connection(engine.settings.agi_host, engine.settings.agi_port)
    writer.write(b"agi_network_script: dialin\n")
    await writer.drain()
    writer.close()
    delta = await ended_delta(agi, before, 1)
    assert delta == Counter(eof=1)

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(1.0)
    busy = (time.process_time() - cpu) / (time.monotonic() - wall)
    assert busy < 0.9, f"the engine's process is spinning ({busy:.0%} of a core)"
    async with aiohttp.ClientSession() as http:
        async with http.get(api_server.make_url("/healthz")) as response:
            assert response.status == 200, await response.text()
    exposition = (await engine.services.metrics.exposition()).decode()
    assert f'veche_fastagi_sessions_ended_total{{reason="eof"}} {float(agi.ended["eof"])}' in exposition
    assert agi.listening


# ------------------------------------------------------------------ authentication

async def test_wrong_or_missing_secret_is_refused_before_any_database_work(engine) -> None:
    agi, pool = engine.agi, engine.pool
    conference = await create_conference(pool, node_id=engine.settings.node_id)
    failures = await pool.fetchval("SELECT count(*) FROM dialin_failures")
    participants = await pool.fetchval("SELECT count(*) FROM participants")
    before, routed = Counter(agi.ended), agi.sessions["dialin"]
    wrong = "0" * len(engine.settings.agi_secret)
    for block in (header(secret=wrong, first="999999999"), header(secret=None),
                  header(secret="", first=conference.conference_number),
                  header(secret=engine.settings.agi_secret[:-1], first=conference.conference_number)):
        reader, writer = await asyncio.open_connection(engine.settings.agi_host, engine.settings.agi_port)
        writer.write(block)
        await writer.drain()
        assert await server_closes(reader) == b""  # no AGI command: nothing was asked, nothing looked up
        writer.close()
    assert await ended_delta(agi, before, 4) == Counter(bad_secret=4)
    assert agi.sessions["dialin"] == routed
    assert await pool.fetchval("SELECT count(*) FROM dialin_failures") == failures
    assert await pool.fetchval("SELECT count(*) FROM participants") == participants


async def own_server(secret: str, handler, **options) -> AgiServer:
    server = AgiServer("127.0.0.1", free_port(), secret, **options)
    server.route("dialin", handler)
    await server.start()
    return server


async def test_allow_list_refuses_other_sources_and_admits_listed_ones() -> None:
    reached: list[str] = []

    async def handler(call: AgiCall) -> None:
        reached.append(call.uniqueid)

    for allow, expected in ((("10.9.8.0/24", "192.0.2.7"), "not_allowed"), (("10.9.8.0/24", "127.0.0.0/8"),
                                                                           "completed")):
        server = await own_server("s3cret", handler, allow=allow)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(header(secret="s3cret"))
            await writer.drain()
            assert await server_closes(reader) == b""
            writer.close()
            assert await ended_delta(server, Counter(), 1) == Counter({expected: 1})
        finally:
            await server.stop()
    assert reached == ["1700000000.1"]

    parsed = Settings.from_env({"VECHE_AGI_ALLOW": " 10.0.0.5, 192.168.1.0/24,::1 "})
    assert parsed.agi_allow == ("10.0.0.5/32", "192.168.1.0/24", "::1/128")
    with pytest.raises(ConfigError, match="VECHE_AGI_ALLOW"):
        Settings.from_env({"VECHE_AGI_ALLOW": "10.0.0.5,evil.example"})
    with pytest.raises(ConfigError, match="VECHE_AGI_SECRET"):
        Settings.from_env({"VECHE_AGI_SECRET": "abc,def"})


# ------------------------------------------------------------------ caps and lifetimes

async def test_sessions_over_the_cap_are_refused_and_counted() -> None:
    release = asyncio.Event()
    inside: asyncio.Queue[str] = asyncio.Queue()

    async def handler(call: AgiCall) -> None:
        await inside.put(call.uniqueid)
        await release.wait()

    server = await own_server("s", handler, limits=AgiLimits(max_sessions=3))
    held = []
    try:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(header(secret="s"))
            await writer.drain()
            held.append((reader, writer))
            await asyncio.wait_for(inside.get(), 10)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(header(secret="s"))
        assert await server_closes(reader) == b""
        writer.close()
        assert await ended_delta(server, Counter(), 1) == Counter(too_many=1)
        release.set()
        for reader, writer in held:
            await server_closes(reader)
            writer.close()
        assert await ended_delta(server, Counter(), 4) == Counter(too_many=1, completed=3)
    finally:
        await server.stop()


async def test_session_lifetime_and_answer_lines_are_bounded() -> None:
    async def handler(call: AgiCall) -> None:
        await call.get_data("conf-getconfno")

    server = await own_server("s", handler, limits=AgiLimits(session_seconds=1.0, answer_bytes=100))
    try:
        answers = {"session_timeout": None, "bad_answer": b"200 result=" + b"1" * 200 + b"\n"}
        answers["hangup"] = b""  # EOF instead of an answer
        bad_utf8 = b"200 result=1 (\xff\xfe)\n"
        for expected, answer in (*answers.items(), ("bad_answer", bad_utf8), ("bad_answer", b"garbage\n")):
            before = Counter(server.ended)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(header(secret="s"))
            command = await asyncio.wait_for(reader.readline(), 10)
            assert command.startswith(b"GET DATA conf-getconfno")
            if answer == b"":
                writer.write_eof()
            elif answer is not None:
                writer.write(answer)
            await server_closes(reader)
            writer.close()
            assert await ended_delta(server, before, 1) == Counter({expected: 1}), expected
    finally:
        await server.stop()


# ------------------------------------------------------------------ fuzz: 1,000 hostile sessions

@dataclass(frozen=True)
class Hostile:
    kind: str
    payload: bytes
    trickle: bool = False  # one byte at a time, slower than the header timeout allows


def hostile_sessions(secret: str, count: int) -> list[Hostile]:
    """``count`` distinct hostile sessions drawn by hypothesis (seeded rounds, no shrinking: every
    drawn session is sent; the assertions are about the engine, afterwards)."""
    full = header(secret=secret)
    text_value = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=40)
    strategy = st.one_of(
        st.builds(lambda data: Hostile("random", data), st.binary(max_size=3000)),
        st.builds(lambda cut: Hostile("eof_mid_header", full[:cut]), st.integers(0, len(full) - 2)),
        st.builds(lambda size: Hostile("oversize_line", b"agi_network_script: dialin\nagi_x: " + b"a" * size + b"\n"),
                  st.integers(8200, 30000)),
        st.builds(lambda lines: Hostile("oversize_block", full[:-1] + b"".join(
            f"agi_v{i}: {'b' * 200}\n".encode() for i in range(lines)) + b"\n"), st.integers(41, 120)),
        st.builds(lambda junk: Hostile("non_utf8", full[:40] + b"agi_callerid: \xff" + junk + b"\n\n"),
                  st.binary(max_size=50)),
        st.builds(lambda line: Hostile("malformed", b"agi_network_script: dialin\n" + line.encode() + b"\n\n"),
                  text_value.filter(lambda v: ":" not in v or not v.startswith("agi_"))),
        st.builds(lambda script: Hostile("unknown_script", header(script, secret)),
                  st.one_of(st.from_regex(r"\A[a-z0-9/._?=-]{0,30}\Z"), text_value).filter(
                      lambda s: s.split("?", 1)[0].strip("/") != "dialin")),
        st.builds(lambda wrong: Hostile("bad_secret", header(secret=wrong, first="123456")),
                  st.one_of(st.from_regex(r"\A[ -~]{0,70}\Z"), st.text("0123456789abcdef", min_size=64,
                                                                          max_size=64)).filter(
                      lambda v: v.strip(" \t") != secret)),
        st.builds(lambda cut: Hostile("trickle", full[:cut], trickle=True), st.integers(5, 40)),
        st.just(Hostile("silent", b"", trickle=True)),
    )
    found: dict[Hostile, None] = {}
    for round_seed in range(50):
        if len(found) >= count:
            break

        @seed(round_seed)
        @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def collect(session: Hostile) -> None:
            found.setdefault(session, None)

        collect()
    sessions = list(found)
    slow = [s for s in sessions if s.trickle][:40]  # each lasts one header timeout: a few are enough
    fast = [s for s in sessions if not s.trickle][:count - len(slow)]
    assert len(fast) + len(slow) >= count, f"hypothesis drew only {len(fast) + len(slow)} sessions"
    return fast + slow


async def send_hostile(host: str, port: int, session: Hostile) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise AssertionError(f"the FastAGI port refused a connection: {exc}") from exc
    try:
        if session.trickle:
            for byte in session.payload:
                if reader.at_eof() or writer.is_closing():  # the server ended it (a reset closes the writer)
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.3)
            assert await server_closes(reader) == b""
        else:
            writer.write(session.payload)
            await writer.drain()
            writer.write_eof()
            assert await server_closes(reader) == b""
    except (ConnectionError, OSError):
        pass  # the server cut an oversize session while it was still being written
    finally:
        writer.close()


async def test_thousand_hostile_sessions_leave_healthz_and_a_real_dialin_untouched(engine, api_server,
                                                                                    sipp) -> None:
    agi, host, port = engine.agi, engine.settings.agi_host, engine.settings.agi_port
    sessions = hostile_sessions(engine.settings.agi_secret, FUZZ_SESSIONS)
    kinds = Counter(s.kind for s in sessions)
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id)
    before, routed = Counter(agi.ended), agi.sessions["dialin"]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    done = asyncio.Event()

    async def poll_healthz() -> None:
        async with aiohttp.ClientSession() as http:
            while not done.is_set():
                started = time.perf_counter()
                async with http.get(api_server.make_url("/healthz")) as response:
                    await response.read()
                    statuses[response.status] += 1
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)

    async def fuzz() -> None:
        gate = asyncio.Semaphore(20)  # well under the session cap: the real caller must get a slot

        async def one(session: Hostile) -> None:
            async with gate:
                await send_hostile(host, port, session)

        slow = [asyncio.create_task(send_hostile(host, port, s)) for s in sessions if s.trickle]
        await asyncio.gather(*(one(s) for s in sessions if not s.trickle), *slow)

    async def dial_in() -> None:
        joined = asyncio.ensure_future(engine.ami.wait_for_event(
            lambda e: e.name == "ConfbridgeJoin" and e.get("Conference") == conference.room,
            timeout=CALL_SETUP_TIMEOUT))
        await asyncio.sleep(0)
        caller = await sipp.caller(f"{conference.conference_number}#,,,{conference.chair_pin}#",
                                   caller=random_caller())
        try:
            await joined
        except TimeoutError:
            raise AssertionError(f"the dial-in caller never joined:\n{caller.log_text()[-2000:]}") from None
        finally:
            for member in await engine.ami.confbridge_members(conference.room):
                await engine.ami.hangup(member.get("Channel"))
            await caller.wait(CALL_SETUP_TIMEOUT)

    poller = asyncio.create_task(poll_healthz())
    started = time.monotonic()
    try:
        await asyncio.gather(fuzz(), dial_in())
    finally:
        done.set()
        await poller
    elapsed = time.monotonic() - started

    delta = await ended_delta(agi, before, len(sessions) + 1)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"\n{len(sessions)} hostile FastAGI sessions ({dict(kinds)}) in {elapsed:.1f} s; ended: {dict(delta)}; "
          f"/healthz: {len(latencies)} requests, median {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    assert statuses == Counter({200: len(latencies)}), statuses
    assert agi.sessions["dialin"] == routed + 1  # only the SIPp caller reached the route
    assert delta["completed"] == 1 and delta["error"] == 0
    assert delta.total() - delta["completed"] >= FUZZ_SESSIONS
    assert delta["bad_secret"] >= kinds["bad_secret"] and delta["header_timeout"] >= kinds["trickle"]
    assert agi.active == 0 and agi.listening


# ------------------------------------------------------------------ early digits

async def test_twenty_callers_keying_during_the_first_prompt_all_join(engine, sipp) -> None:
    conference = await create_conference(engine.pool, node_id=engine.settings.node_id, max_participants=25)
    callers = [random_caller() for _ in range(20)]
    # the conference number 200 ms after the answer (while the first prompt plays), the PIN later
    processes = await asyncio.gather(*(
        sipp.caller(f"{conference.conference_number}#,,,,{conference.guest_pin}#", caller=number, delay_ms=200)
        for number in callers))
    try:
        deadline = time.monotonic() + 60
        while True:
            members = await engine.ami.confbridge_members(conference.room)
            if len(members) >= len(callers) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        rows = await engine.pool.fetch("SELECT number FROM participants WHERE conference_id = $1 "
                                       "AND origin = 'dialin'", conference.id)
        assert sorted(r["number"] for r in rows) == sorted(callers)
        assert len(members) == len(callers), [p.log_text()[-500:] for p in processes][:2]
        outcomes = {o.caller: o for o in engine.services.dialin.outcomes if o.caller in callers}
        assert all(o.wrong_entries == 0 and o.participant_id for o in outcomes.values()), outcomes
        assert await engine.pool.fetchval("SELECT count(*) FROM dialin_failures WHERE caller = ANY($1)",
                                          callers) == 0
    finally:
        for member in await engine.ami.confbridge_members(conference.room):
            await engine.ami.hangup(member.get("Channel"))
        for process in processes:
            await process.stop()
