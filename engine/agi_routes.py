"""FastAGI routes: the entry point of dial-in calls and of keypad commands in a room. Each route
hands the call to one service; the rules (PINs, admission, brute-force guard, who may press
which key) live in the services, not here."""

from __future__ import annotations

import logging

from engine.agi import ARG_FIRST_ENTRY, AgiCall, AgiServer
from engine.services.container import Services

log = logging.getLogger(__name__)

ARG_TOKEN = ARG_FIRST_ENTRY  # the handover route's argument after the secret: the dial-in's token


class _KeypadChannel:
    """The caller's channel as the keypad service sees it: play sounds and say numbers."""

    def __init__(self, call: AgiCall) -> None:
        self._call = call

    @property
    def uniqueid(self) -> str:
        return self._call.uniqueid

    async def play(self, *prompts: str) -> None:
        await self._call.play(*prompts)

    async def say_number(self, number: int) -> None:
        await self._call.command(f'SAY NUMBER {int(number)} ""')


def install_routes(agi: AgiServer, services: Services) -> None:
    """Register the routes the dialplan calls: ``AGI(agi://host:port/dialin)`` for a dial-in
    call, and ``AGI(agi://host:port/keypad)`` from the ConfBridge menus through the
    ``veche-keypad`` context (the key pressed after ``*`` is the extension)."""
    dialin = services.dialin
    keypad = services.keypad
    handover = services.handover
    node_id = services.settings.node_id

    async def dialin_route(call: AgiCall) -> None:
        outcome = await dialin.answer(call)
        log.debug("dial-in call %s: %s", call.uniqueid, outcome)

    async def handover_route(call: AgiCall) -> None:
        await handover.receive(call, call.headers.get(ARG_TOKEN, ""))

    async def keypad_route(call: AgiCall) -> None:
        key = call.headers.get("agi_extension", "")
        if call.headers.get("agi_context") != "veche-keypad" or len(key) != 1 or not key.isdigit():
            log.warning("keypad route called from %s/%s: ignored", call.headers.get("agi_context"), key[:20])
            return
        answer = await keypad.press(_KeypadChannel(call), key, call.node_id or node_id)
        log.info("keypad *%s of participant %s: %s %s", key, answer.participant_id, answer.action,
                 answer.error or "")

    agi.route("dialin", dialin_route)
    agi.route("keypad", keypad_route)
    agi.route("handover", handover_route)
