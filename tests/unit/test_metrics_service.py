"""Originate outcomes as the metrics service classifies them from a node's events (translated
from AMI messages), whichever order Asterisk sends the OriginateResponse and the dialplan's
VecheDialResult in."""

from __future__ import annotations

import asyncio
from collections import Counter

from engine.adapters.asterisk import MediaNodes, NodeEvent, translate
from engine.adapters.asterisk.ami import AmiEvent
from engine.adapters.db.metrics import MetricsRepository
from engine.services.bus import EventBus
from engine.services.metrics import MetricsService


class IdleAgi:
    """The FastAGI figures of a server that has seen no session."""

    listening = True
    active = 0
    sessions: Counter[str] = Counter()
    ended: Counter[str] = Counter()


def service(grace: float = 2.0) -> MetricsService:
    return MetricsService(MetricsRepository(None), bus=EventBus(), nodes=MediaNodes(), agi=IdleAgi(),  # type: ignore[arg-type]
                          dial_result_grace=grace)


def typed(event: AmiEvent) -> NodeEvent:
    node_event = translate(event)
    assert node_event is not None
    return node_event


def response(call_id: str, ok: bool = False, reason: str = "1", number: str = "375290000486") -> NodeEvent:
    return typed(AmiEvent("ast1", "OriginateResponse", {
        "Response": "Success" if ok else "Failure", "Reason": reason, "Uniqueid": call_id,
        "Channel": f"Local/{number}@veche-dialout-0000001;1"}))


def dial_result(call_id: str, status: str, cause: str) -> NodeEvent:
    return typed(AmiEvent("ast1", "UserEvent", {"UserEvent": "VecheDialResult", "Call": call_id,
                                                "DialStatus": status, "Cause": cause}))


def count(svc: MetricsService, outcome: str) -> float:
    return svc.metrics.registry.get_sample_value("veche_originates_total", {"node": "ast1", "outcome": outcome}) or 0


async def test_dial_result_first() -> None:
    svc = service()
    svc.on_node_event(dial_result("c1", "CHANUNAVAIL", "21"))
    svc.on_node_event(response("c1", reason="8"))
    assert count(svc, "rejected") == 1 and count(svc, "congestion") == 0


async def test_originate_response_first_waits_for_the_dial_result() -> None:
    svc = service()
    svc.on_node_event(response("c2", reason="5"))
    assert count(svc, "busy") == 0
    svc.on_node_event(dial_result("c2", "NOANSWER", "0"))
    assert count(svc, "no_answer") == 1 and count(svc, "busy") == 0


async def test_without_a_dial_result_the_reason_decides() -> None:
    svc = service(grace=0.05)
    svc.on_node_event(response("c3", reason="1", number="4412345"))  # refused by veche-dialout: no UserEvent
    assert count(svc, "failed") == 0
    deadline = asyncio.get_running_loop().time() + 5
    while count(svc, "failed") == 0 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)  # the grace period's timer counts it
    assert count(svc, "failed") == 1
    svc.on_node_event(dial_result("c3", "CONGESTION", "34"))  # a late dial result is not counted again
    assert count(svc, "failed") == 1 and count(svc, "congestion") == 0


async def test_answered_and_other_originates() -> None:
    svc = service()
    svc.on_node_event(response("c4", ok=True, reason="4"))
    announcer = typed(AmiEvent("ast1", "OriginateResponse", {"Response": "Success", "Uniqueid": "a1",
                                                             "Channel": "Local/play@veche-announce-00000002;1"}))
    svc.on_node_event(announcer)
    assert count(svc, "answered") == 1
    await svc.stop()
