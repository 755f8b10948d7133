"""The AMI link's lean paths (engine/adapters/asterisk/ami.py): events reach the subscribers
whole and in order however the bytes are cut, answers to actions still reach their actions, a
malformed block is skipped without stopping the link, and each Originate gets its own answer (or
fails when none comes or the link drops). A local asyncio server speaks AMI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.adapters.asterisk.ami import AmiEvent, AmiLink, _headers_of, _OneSendPerTurn
from engine.config import AmiTarget
from engine.domain.errors import AmiError, AmiUnavailable


class AmiSpeaker:
    """Banner, login accepted, actions answered; ``send`` writes raw bytes in the given pieces."""

    def __init__(self) -> None:
        self.writer: asyncio.StreamWriter | None = None
        self.ready = asyncio.Event()
        self.originates: list[str] = []  # each Originate as received
        self.on_originate = "queue"  # queue (Success), refuse (Error), ignore (no answer), hang up

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                block = (await reader.readuntil(b"\r\n\r\n")).decode()
                headers = dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line)
                action, action_id = headers.get("Action", ""), headers.get("ActionID", "")
                if action == "Login":
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\n\r\n".encode())
                    self.writer = writer
                    self.ready.set()
                elif action == "Originate":
                    self.originates.append(block)
                    if self.on_originate == "hang up":
                        writer.close()
                        return
                    if self.on_originate != "ignore":
                        answer = ("Success\r\nMessage: Originate successfully queued" if self.on_originate == "queue"
                                  else "Error\r\nMessage: Extension does not exist.")
                        writer.write(f"Response: {answer}\r\nActionID: {action_id}\r\n\r\n".encode())
                elif action == "ConfbridgeList":  # a list action: its events carry the ActionID
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\nEventList: start\r\n\r\n"
                                 f"Event: ConfbridgeList\r\nActionID: {action_id}\r\nConference: veche-1\r\n"
                                 "Channel: PJSIP/a-00000001\r\nUniqueid: 1.1\r\nMuted: No\r\n\r\n"
                                 f"Event: ConfbridgeListComplete\r\nActionID: {action_id}\r\n\r\n".encode())
                else:
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\n\r\n".encode())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def send(self, data: bytes, piece: int | None = None) -> None:
        assert self.writer is not None
        step = piece or len(data)
        for start in range(0, len(data), step):
            self.writer.write(data[start:start + step])
            await self.writer.drain()
            await asyncio.sleep(0)  # a separate read each


ORIGINATE = {"channel": "Local/375291234567@veche-dialout/n", "context": "veche-room", "exten": "join",
             "variables": {"VECHE_ROOM": "veche-0123456789abcdef", "VECHE_CALL": "vo-0123456789abcdef"},
             "timeout_ms": 35000, "caller_id": "375170000000", "other_channel_id": "vo-0123456789abcdef-2"}


@pytest.fixture
async def link() -> AsyncIterator[tuple[AmiLink, AmiSpeaker, list[AmiEvent]]]:
    speaker = AmiSpeaker()
    server = await asyncio.start_server(speaker.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    adapter = AmiLink(AmiTarget(port=port, secret="test"), "ast1", ping_interval=3600, action_timeout=0.5)
    received: list[AmiEvent] = []
    adapter.subscribe(received.append)
    await adapter.connect()
    await asyncio.wait_for(speaker.ready.wait(), 5)
    yield adapter, speaker, received
    await adapter.close()
    server.close()


async def arrived(received: list[AmiEvent], count: int) -> None:
    async def wait() -> None:
        while len(received) < count:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(wait(), 5)


async def test_events_cut_anywhere_arrive_whole_and_in_order(link) -> None:  # noqa: ANN001
    adapter, speaker, received = link
    name = "Иван Петров".encode()
    stream = (b"Event: ConfbridgeJoin\r\nConference: veche-1\r\nCallerIDName: " + name +
              b"\r\nUniqueid: 1.5\r\nChanVariable: VECHE_PARTICIPANT=vi-0123456789abcdef\r\n"
              b"ChanVariable: VECHE_ROLE=guest\r\n\r\n"
              b"Event: ConfbridgeTalking\r\nConference: veche-1\r\nUniqueid: 1.5\r\nTalkingStatus: on\r\n\r\n")
    await speaker.send(stream, piece=1)  # every byte its own read: a Cyrillic letter is cut in two
    await arrived(received, 2)
    join, talking = received
    assert (join.name, talking.name) == ("ConfbridgeJoin", "ConfbridgeTalking")
    assert join.get("CallerIDName") == "Иван Петров" and join.get("uniqueid") == "1.5"
    assert join.channel_variable("VECHE_PARTICIPANT") == "vi-0123456789abcdef"
    assert join.channel_variable("VECHE_ROLE") == "guest" and talking.get("TalkingStatus") == "on"


def test_a_header_found_in_the_block_is_the_one_the_split_headers_give() -> None:
    """An event off the socket answers get() and channel_variable() from its block; each answer
    is the one its split headers give, for every header of a recorded dial-out's events, names
    spelled otherwise or absent, repeated names and values holding ": "."""
    recorded = (Path(__file__).parents[2] / "bench" / "ami_stream.txt").read_text()  # LF line ends
    stream = ["\r\n".join(block.split("\n")) for block in recorded.split("\n\n")]
    edges = [
        "Event: Hangup\r\nCallerIDName: a: b\r\nUniqueid: 1.7\r\nChanVariable: VECHE_PARTICIPANTX=no\r\n"
        "ChanVariable: VECHE_PARTICIPANT=vi-1\r\nChanVariable: VECHE_PARTICIPANT=vi-2\r\nUniqueid: 1.8",
        "Event: Hangup\r\nno colon here\r\nCause:\r\nCause-txt: x\r\nCause: 16",
        "Event: ConfbridgeEnd",
    ]
    blocks = [b.strip("\r\n") for b in stream if b.strip()] + edges
    assert len(blocks) > 100
    for block in blocks:
        lazy = AmiEvent.from_block("ast1", block)
        split = AmiEvent("ast1", lazy.name, _headers_of(block))
        names = {line.partition(": ")[0] for line in block.split("\r\n")}
        for name in names | {n.lower() for n in names} | {"Absent", "Cause", "Event"}:
            assert lazy.get(name, "-") == split.get(name, "-"), (name, block)
            assert AmiEvent.from_block("ast1", block).get(name, "-") == split.get(name, "-"), (name, block)
        for variable in ("VECHE_PARTICIPANT", "VECHE_ROLE", "VECHE"):
            assert (AmiEvent.from_block("ast1", block).channel_variable(variable)
                    == split.channel_variable(variable)), (variable, block)
        assert lazy == split and lazy.name == split.headers.get("Event", "")
    first = AmiEvent.from_block("ast1", edges[0])
    assert first.get("Uniqueid") == "1.7,1.8" and first.get("CallerIDName") == "a: b"
    assert first.channel_variable("VECHE_PARTICIPANT") == "vi-1"


async def test_a_malformed_block_is_skipped_and_the_link_goes_on(link) -> None:  # noqa: ANN001
    adapter, speaker, received = link
    await speaker.send(b"Event: Hangup\r\nno colon here\r\n\xff\xfe: \xff\r\nUniqueid: 1.7\r\n\r\n"
                       b"garbage without any header\r\n\r\n"
                       b"Event: ConfbridgeEnd\r\nConference: veche-1\r\n\r\n")
    await arrived(received, 2)
    assert [e.name for e in received] == ["Hangup", "ConfbridgeEnd"] and received[0].get("Uniqueid") == "1.7"
    assert (await adapter.action("Ping")).get("Response") == "Success"


async def test_a_list_actions_events_answer_the_action_not_the_subscribers(link) -> None:  # noqa: ANN001
    adapter, speaker, received = link
    members = await adapter.confbridge_members("veche-1")
    assert [m.get("Channel") for m in members] == ["PJSIP/a-00000001"]
    assert received == []
    await speaker.send(b"Event: OriginateResponse\r\nActionID: action/answered-long-ago\r\nResponse: Success\r\n"
                       b"Uniqueid: vo-0123456789abcdef\r\n\r\n")  # an answered Originate's ActionID: an event
    await arrived(received, 1)
    assert received[0].get("Uniqueid") == "vo-0123456789abcdef"


async def test_a_burst_of_originates_is_answered_each_and_the_calls_events_still_arrive(link) -> None:  # noqa: ANN001
    adapter, speaker, received = link
    ids = [f"vo-{n:016x}" for n in range(20)]
    await asyncio.gather(*(adapter.originate(channel_id=i, **ORIGINATE) for i in ids))
    assert [b.split("ChannelId: ")[1].split("\r\n")[0] for b in speaker.originates] == ids
    first = dict(line.split(": ", 1) for line in speaker.originates[0].split("\r\n") if ": " in line)
    assert (first["Channel"], first["Async"], first["Timeout"], first["CallerID"]) == (
        "Local/375291234567@veche-dialout/n", "true", "35000", "375170000000")
    assert speaker.originates[0].count("Variable: ") == 2 and adapter._originating == {}
    action_id = first["ActionID"]
    await speaker.send(f"Event: OriginateResponse\r\nActionID: {action_id}\r\nResponse: Success\r\n"
                       f"Uniqueid: {ids[0]}\r\n\r\n".encode())  # the call's outcome: an event
    await arrived(received, 1)
    assert received[0].name == "OriginateResponse" and received[0].get("Uniqueid") == ids[0]


async def test_originates_prepared_ahead_leave_together_when_started(link) -> None:  # noqa: ANN001
    """A start prepares its dials while its claim is stored: preparing checks and writes out
    each Originate and sends nothing; starting them hands all to the socket in one turn, as
    ``originate`` would, ``send_now`` writes them at once, and each answer reaches its own."""
    adapter, speaker, _ = link
    ids = [f"vo-{n:016x}" for n in range(100, 105)]
    prepared = [adapter.prepare_originate(channel_id=i, **ORIGINATE) for i in ids]
    with pytest.raises(AmiError, match="refusing to originate"):
        adapter.prepare_originate(channel_id="vo-0123456789abcdef", **{**ORIGINATE, "channel": "PJSIP/trunk/1"})
    await adapter.action("Ping")
    assert speaker.originates == [] and adapter._originating == {}
    accepted = [adapter.start_originate(p) for p in prepared]
    socket = adapter._manager.protocol.transport
    assert len(socket._pending) == 5  # handed over, to be written at the next turn ...
    adapter.send_now()
    assert socket._pending == []  # ... or now, in one write
    await asyncio.gather(*accepted)
    assert [b.split("ChannelId: ")[1].split("\r\n")[0] for b in speaker.originates] == ids
    assert speaker.originates[0].count("Variable: ") == 2 and adapter._originating == {}


async def test_an_originate_prepared_while_the_link_was_up_is_not_sent_on_a_lost_link(link) -> None:  # noqa: ANN001
    adapter, speaker, _ = link
    prepared = adapter.prepare_originate(channel_id="vo-0123456789abcdef", **ORIGINATE)
    speaker.on_originate = "hang up"
    with pytest.raises(AmiUnavailable):
        await adapter.start_originate(prepared)
    speaker.ready.clear()
    await asyncio.wait_for(speaker.ready.wait(), 5)  # panoramisk logged in again; nothing is replayed
    assert (await adapter.action("Ping")).get("Response") == "Success"
    assert len(speaker.originates) == 1


async def test_an_originate_asterisk_refuses_raises(link) -> None:  # noqa: ANN001
    adapter, speaker, _ = link
    speaker.on_originate = "refuse"
    with pytest.raises(AmiError, match="Extension does not exist"):
        await adapter.originate(channel_id="vo-0123456789abcdef", **ORIGINATE)
    assert (await adapter.action("Ping")).get("Response") == "Success"


async def test_an_unanswered_originate_fails_after_the_action_timeout(link) -> None:  # noqa: ANN001
    adapter, speaker, _ = link
    speaker.on_originate = "ignore"
    with pytest.raises(AmiError, match="no answer"):
        await adapter.originate(channel_id="vo-0123456789abcdef", **ORIGINATE)
    assert adapter._originating == {} and adapter._pending == set()


async def test_an_originate_cut_off_by_a_lost_link_fails_and_is_never_sent_again(link) -> None:  # noqa: ANN001
    adapter, speaker, _ = link
    speaker.on_originate = "hang up"
    with pytest.raises(AmiUnavailable):
        await adapter.originate(channel_id="vo-0123456789abcdef", **ORIGINATE)
    speaker.ready.clear()
    await asyncio.wait_for(speaker.ready.wait(), 5)  # panoramisk logged in again
    assert len(speaker.originates) == 1
    with pytest.raises(AmiError, match="refusing to originate"):
        await adapter.originate(channel_id="vo-0123456789abcdef", **{**ORIGINATE, "channel": "PJSIP/trunk/1"})
    assert len(speaker.originates) == 1


class WrittenTransport(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def test_actions_of_one_turn_leave_in_one_write() -> None:
    """A burst's Originates wake Asterisk once: what the link writes in one turn of the event
    loop goes to the socket in one write, in order, after the turn; closing sends what waits."""
    transport = WrittenTransport()
    corked = _OneSendPerTurn(transport)
    for n in range(5):
        corked.write(b"Action: Originate %d\r\n\r\n" % n)
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"".join(b"Action: Originate %d\r\n\r\n" % n for n in range(5))]
    corked.write(b"Action: Logoff\r\n\r\n")
    corked.close()
    assert transport.writes[1:] == [b"Action: Logoff\r\n\r\n"] and transport.closed
    assert corked.is_closing()
