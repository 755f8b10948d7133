"""The one translation from AMI messages to a media node's typed events
(engine/adapters/asterisk/events.py), the dialplan contract's outcome mappings
(engine/adapters/asterisk/contract.py), and the node's intents over a fake of its AMI link."""

from __future__ import annotations

import pytest

from engine.adapters.asterisk import (
    AmiEvent,
    CallHungUp,
    CallPlaced,
    DialOutcome,
    MediaNode,
    MediaNodes,
    Muted,
    NodeBooted,
    NodeEvent,
    NodeShutdown,
    ParticipantJoined,
    ParticipantLeft,
    RecordingWritten,
    Ringing,
    RoomEnded,
    RoomStarted,
    Talking,
    contract,
    translate,
)
from engine.adapters.asterisk.events import member
from engine.domain.model import FailureReason, Role
from engine.domain.speech import Announcement
from tests.unit.fakes import FakeNode

TOKEN = "vi-0123456789abcdef"


def ami(name: str, **headers: str | list[str]) -> AmiEvent:
    return AmiEvent("ast1", name, dict(headers))


def test_a_join_with_the_dialin_token_names_channel_token_and_mute() -> None:
    event = translate(ami("ConfbridgeJoin", Uniqueid="1700000000.7", Channel="PJSIP/pstn-00000007",
                          Conference="veche-1", Muted="yes", ChanVariable=f"VECHE_PARTICIPANT={TOKEN}"))
    assert event == ParticipantJoined(node_id="ast1", call_id="1700000000.7", channel="PJSIP/pstn-00000007",
                                      token=TOKEN, room="veche-1", muted=True)
    assert event.identified and not event.announcer


def test_a_join_without_veche_participant_carries_no_token() -> None:
    event = translate(ami("ConfbridgeJoin", Uniqueid="vo-00000000000000aa",
                          Channel="Local/375291234567@veche-dialout-00000001;1", Conference="veche-1", Muted="no"))
    assert isinstance(event, ParticipantJoined)
    assert (event.token, event.muted, event.channel) == (None, False, "Local/375291234567@veche-dialout-00000001;1")


@pytest.mark.parametrize("variables", [["OTHER=a=b", "VECHE_PARTICIPANT="], "VECHE_PARTICIPANT=vi-forged",
                                       f"NOT_OURS={TOKEN}"])
def test_a_token_not_of_our_shape_is_no_token(variables: str | list[str]) -> None:
    event = translate(ami("ConfbridgeLeave", Uniqueid="1700000000.8", Conference="veche-1", ChanVariable=variables))
    assert isinstance(event, ParticipantLeft) and event.token is None


@pytest.mark.parametrize("channel", ["/.*/", "all", "PJSIP/pstn", "PJSIP/a-00000001\r\nAction: Originate", ""])
def test_a_channel_value_that_is_not_one_exact_channel_is_dropped(channel: str) -> None:
    event = translate(ami("ConfbridgeTalking", Uniqueid="1700000000.9", Channel=channel, Conference="veche-1",
                          TalkingStatus="on"))
    assert event == Talking(node_id="ast1", call_id="1700000000.9", channel=None, room="veche-1", on=True)


def test_mute_and_unmute() -> None:
    assert translate(ami("ConfbridgeMute", Uniqueid="1.1", Conference="r")) == Muted(
        node_id="ast1", call_id="1.1", room="r", on=True)
    assert translate(ami("ConfbridgeUnmute", Uniqueid="1.1", Conference="r")) == Muted(
        node_id="ast1", call_id="1.1", room="r", on=False)


def test_hangups_of_a_far_leg_and_of_a_dialin_caller() -> None:
    far = translate(ami("Hangup", Uniqueid="vo-00000000000000aa-2", Cause="17", Context="veche-trunk"))
    assert far == CallHungUp(node_id="ast1", call_id="vo-00000000000000aa", cause=17, far_leg=True)
    caller = translate(ami("Hangup", Uniqueid="1700000000.7", Cause="", Context="veche-dialin",
                           Channel="PJSIP/pstn-00000007"))
    assert caller == CallHungUp(node_id="ast1", call_id="1700000000.7", channel="PJSIP/pstn-00000007",
                                dialin=True)


def test_dial_progress_and_outcomes() -> None:
    assert translate(ami("DialBegin", Uniqueid="vo-00000000000000aa-2")) == Ringing(
        node_id="ast1", call_id="vo-00000000000000aa")
    placed = translate(ami("OriginateResponse", Uniqueid="vo-00000000000000aa", Response="Failure", Reason="5",
                           Channel="Local/375291234567@veche-dialout-00000001;1"))
    assert placed == CallPlaced(node_id="ast1", call_id="vo-00000000000000aa", answered=False, reason="5",
                                dialout=True)
    announcer = translate(ami("OriginateResponse", Uniqueid="an-00000000000000aa", Response="Success", Reason="4",
                              Channel="Local/play@veche-announce-00000002;1"))
    assert isinstance(announcer, CallPlaced) and announcer.answered and not announcer.dialout
    outcome = translate(ami("UserEvent", UserEvent="VecheDialResult", Call="vo-00000000000000aa",
                            DialStatus="CHANUNAVAIL", Cause="21"))
    assert outcome == DialOutcome(node_id="ast1", call_id="vo-00000000000000aa", status="CHANUNAVAIL", cause=21)
    assert outcome.failure == FailureReason.REJECTED
    assert DialOutcome(node_id="ast1", call_id="x", status="ANSWER").failure is None


def test_rooms_files_and_the_node_itself() -> None:
    assert translate(ami("ConfbridgeStart", Conference="veche-1")) == RoomStarted(node_id="ast1", room="veche-1")
    assert translate(ami("ConfbridgeEnd", Conference="veche-1")) == RoomEnded(node_id="ast1", room="veche-1")
    assert translate(ami("UserEvent", UserEvent="VecheRecording", Call="rc-00000000000000aa",
                         File="/x.wav")) == RecordingWritten(node_id="ast1", call_id="rc-00000000000000aa",
                                                             path="/x.wav")
    assert translate(ami("FullyBooted")) == NodeBooted(node_id="ast1")
    assert translate(ami("Shutdown")) == NodeShutdown(node_id="ast1")


@pytest.mark.parametrize("event", [
    ami("Newchannel", Uniqueid="1.1"), ami("VarSet", Variable="X"), ami("UserEvent", UserEvent="Other"),
    ami("DialBegin", Uniqueid="1700000000.1"), ami("ConfbridgeList", Uniqueid="1.1"), ami("")])
def test_events_the_engine_does_not_follow_are_ignored(event: AmiEvent) -> None:
    assert translate(event) is None


def test_a_room_member_from_a_list_entry() -> None:
    entry = member(ami("ConfbridgeList", Uniqueid="1700000000.7", Channel="PJSIP/pstn-00000007", Muted="Yes",
                       ChanVariable=f"VECHE_PARTICIPANT={TOKEN}"))
    assert (entry.call_id, entry.channel, entry.token, entry.muted, entry.identified) == (
        "1700000000.7", "PJSIP/pstn-00000007", TOKEN, True, True)


@pytest.mark.parametrize(("answered", "reason", "status", "cause", "expected"), [
    (True, "4", None, None, "answered"),
    (False, "8", "CHANUNAVAIL", 21, "rejected"),
    (False, "0", "CHANUNAVAIL", 1, "unavailable"),
    (False, "5", "NOANSWER", None, "no_answer"),
    (False, "5", None, None, "busy"),
    (False, "1", None, None, "failed"),
])
def test_the_metrics_outcome_of_a_dial(answered: bool, reason: str, status: str | None, cause: int | None,
                                       expected: str) -> None:
    assert contract.originate_outcome(answered, reason, status, cause) == expected


def test_the_contract_names() -> None:
    assert contract.dialout_channel("375291234567") == "Local/375291234567@veche-dialout/n"
    assert contract.profile_for(Role.GUEST, invited=True) == "veche_guest_invited"
    assert contract.profile_for(Role.GUEST, invited=False) == "veche_guest"
    assert contract.is_dialin_token(contract.new_dialin_token()) and not contract.is_dialin_token("vi-x")
    assert contract.is_dialout_id(contract.new_dialout_id()) and not contract.is_dialout_id("vo-00000000-2")


async def test_the_node_dials_plays_and_hangs_up_through_its_link() -> None:
    link = FakeNode()
    node = MediaNode(link)
    seen: list[NodeEvent] = []
    node.subscribe(seen.append)
    await node.dial("vo-00000000000000aa", "375291234567", room="veche-1", role=Role.CHAIR, language="ru",
                    max_members=12, ring_seconds=30, caller_id="100")
    sent = link.originates[-1]
    assert (sent["channel"], sent["other_channel_id"], sent["timeout_ms"]) == (
        "Local/375291234567@veche-dialout/n", "vo-00000000000000aa-2", 35000)
    assert sent["variables"]["VECHE_PROFILE"] == "veche_chair" and sent["variables"]["VECHE_MAX_MEMBERS"] == "12"
    call_id = await node.play("veche-1", Announcement("ru", ("beep",)), max_members=12, wait_seconds=5)
    assert link.originates[-1]["channel"] == contract.ANNOUNCE_CHANNEL and call_id.startswith("an-")
    assert any(isinstance(e, CallHungUp) and e.call_id == call_id for e in seen)  # played to the end
    assert await node.hangup(TOKEN, None, "PJSIP/pstn-00000007") is True
    assert link.hangups == ["PJSIP/pstn-00000007"]  # the dial-in token names no channel
    assert MediaNodes([node], default="ast1").node("elsewhere") is node


async def test_one_failing_subscriber_does_not_stop_the_others() -> None:
    link = FakeNode()
    node = MediaNode(link)
    seen: list[NodeEvent] = []

    def broken(event: NodeEvent) -> None:
        raise RuntimeError("boom")

    node.subscribe(broken)
    node.subscribe(seen.append)
    await link.emit("ConfbridgeStart", Conference="veche-1")
    assert seen == [RoomStarted(node_id="ast1", room="veche-1")]
