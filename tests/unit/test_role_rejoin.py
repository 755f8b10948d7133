"""A role change re-enters the room through the AMI link: a channel value that is not one
exact channel is refused before anything is sent to Asterisk."""

from __future__ import annotations

import pytest

from engine.adapters.asterisk.ami import AmiLink
from engine.config import AmiTarget
from engine.domain.errors import AmiError


@pytest.mark.parametrize("channel", ["/.*/", "PJSIP/a-00000001\r\nAction: Originate", "", "a b"])
async def test_rejoin_refuses_what_is_not_one_channel(channel: str) -> None:
    adapter = AmiLink(AmiTarget(), "ast1")  # never connected: a refusal must come first
    with pytest.raises(AmiError, match="refusing"):
        await adapter.confbridge_rejoin(channel, "veche_chair")
