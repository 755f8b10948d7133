"""The SMS channel's place in the notifier: configured by an operator's gateway setting, and until
a gateway exists it says so ("not available") instead of pretending to send."""

from __future__ import annotations

from engine.config import Settings
from engine.domain.errors import ConfigError


class SmsGateway:
    name = "sms"

    def __init__(self, settings: Settings) -> None:
        self.configured = settings.sms_gateway
        # No gateway protocol is implemented yet, so even a configured one is not usable.
        self.available = False
        self.unavailable_reason = (
            f"SMS gateway {self.configured!r} is configured but no driver for it exists in this build"
            if self.configured else "SMS is currently not available (no gateway configured)")

    async def send(self, number: str, text: str) -> None:
        raise ConfigError(self.unavailable_reason)
