"""FastAGI routes: the entry point of dial-in calls. Each route hands the call to one service;
the rules (PINs, admission, brute-force guard) live in the service, not here."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine.agi import AgiCall

if TYPE_CHECKING:
    from engine.app import Engine
    from engine.services.dialin import DialinService

log = logging.getLogger(__name__)


def install_routes(engine: Engine, *, dialin: DialinService) -> None:
    """Register the routes the dialplan calls (``AGI(agi://host:port/dialin)``)."""
    assert engine.agi is not None, "the FastAGI server is built before the services"

    async def dialin_route(call: AgiCall) -> None:
        outcome = await dialin.answer(call)
        log.debug("dial-in call %s: %s", call.uniqueid, outcome)

    engine.agi.route("dialin", dialin_route)
