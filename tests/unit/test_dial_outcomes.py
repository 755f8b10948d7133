"""How Asterisk's reports of a failed dial-out map to a failure reason and hangup cause."""

from __future__ import annotations

import pytest

from engine.adapters.asterisk.contract import failure_from
from engine.domain.model import FailureReason


@pytest.mark.parametrize(("dial_status", "dial_cause", "reason", "hangup", "expected"), [
    ("BUSY", 17, "0", None, (FailureReason.BUSY, 17)),
    ("CHANUNAVAIL", 21, "0", None, (FailureReason.REJECTED, 21)),
    ("NOANSWER", None, "0", None, (FailureReason.NO_ANSWER, 19)),
    ("CONGESTION", 34, "0", None, (FailureReason.CONGESTION, 34)),
    (None, None, "3", None, (FailureReason.NO_ANSWER, 19)),
    (None, None, "5", None, (FailureReason.BUSY, 17)),
    (None, None, "0", 28, (FailureReason.INVALID_NUMBER, 28)),
    (None, None, "0", None, (FailureReason.ERROR, None)),
])
def test_failure_from(dial_status, dial_cause, reason, hangup, expected) -> None:
    assert failure_from(dial_status, dial_cause, reason, hangup) == expected
