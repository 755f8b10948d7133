"""FastAGI routes: the entry point of dial-in calls. Each route hands the call to one service;
the rules (PINs, admission, brute-force guard) live in the service, not here."""

from __future__ import annotations

import logging

from engine.agi import AgiCall, AgiServer
from engine.services.container import Services

log = logging.getLogger(__name__)


def install_routes(agi: AgiServer, services: Services) -> None:
    """Register the routes the dialplan calls (``AGI(agi://host:port/dialin)``)."""
    dialin = services.dialin

    async def dialin_route(call: AgiCall) -> None:
        outcome = await dialin.answer(call)
        log.debug("dial-in call %s: %s", call.uniqueid, outcome)

    agi.route("dialin", dialin_route)
