"""Pure bookkeeping shared by the benchmarks: which calls of a run joined or ended otherwise,
when a run is over, and the min/median/max summary of repeated figures."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

TIMEOUT_REASON = "no outcome by the deadline"


@dataclass
class CallTally:
    """The calls of one run. A call counts once: the first of joined / failed wins, so a Hangup
    after a join changes nothing, and a second report of a failed call (its OriginateResponse and
    its Hangup, in either order) only adds to its reason. The run is over when every expected
    call joined or ended one way or another; the caller adds the deadline."""

    expected: int
    joined: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    last_join_at: float | None = None

    def join(self, call_id: str, at: float) -> None:
        if call_id in self.joined or call_id in self.failed:
            return
        self.joined.add(call_id)
        self.last_join_at = at

    def fail(self, call_id: str, reason: str) -> None:
        if call_id in self.joined:
            return
        known = self.failed.get(call_id)
        parts = set(known.split(" + ")) if known else set()
        self.failed[call_id] = " + ".join(sorted(parts | {reason}))

    @property
    def all_joined(self) -> bool:
        return len(self.joined) >= self.expected

    @property
    def finished(self) -> bool:
        return len(self.joined) + len(self.failed) >= self.expected

    def close(self) -> None:
        """The deadline passed: every call without an outcome counts as failed for that reason."""
        missing = self.expected - len(self.joined) - len(self.failed)
        for index in range(max(0, missing)):
            self.failed[f"<missing {index}>"] = TIMEOUT_REASON

    def reasons(self) -> Counter[str]:
        return Counter(self.failed.values())


@dataclass(frozen=True)
class Summary:
    minimum: float
    median: float
    maximum: float
    count: int

    def fmt(self, unit: str = "s", digits: int = 3) -> str:
        """'0.241 s (0.212–0.334)': the median, then min–max when there was more than one run."""
        if self.count == 0:
            return "—"
        text = f"{self.median:.{digits}f} {unit}".rstrip()
        if self.count > 1:
            text += f" ({self.minimum:.{digits}f}–{self.maximum:.{digits}f})"
        return text


def summarize(values: Sequence[float]) -> Summary:
    """min/median/max of a figure over the repeats (an empty list gives a summary of nothing)."""
    if not values:
        return Summary(float("nan"), float("nan"), float("nan"), 0)
    return Summary(min(values), statistics.median(values), max(values), len(values))


def ratio(numerator: Summary, denominator: Summary) -> str:
    if numerator.count == 0 or denominator.count == 0 or denominator.median <= 0:
        return "—"
    return f"{numerator.median / denominator.median:.2f}x"


def reasons_text(reasons: Counter[str]) -> str:
    """'2× OriginateResponse Reason 0, 1× hangup cause 34' (most frequent first), or '—'."""
    if not reasons:
        return "—"
    return ", ".join(f"{count}× {reason}" for reason, count in reasons.most_common())
