"""The toll-fraud guard: alerts the operator when an account keeps hitting its limits (number
plan, dial-outs per minute, participants, concurrent conferences, API requests)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from typing import Any

from engine.metrics import VecheMetrics
from engine.services.audit import AuditLog

log = logging.getLogger(__name__)

# This many refused actions of one account and kind within the window raise an alert.
ALERT_THRESHOLD = 5
ALERT_WINDOW_SECONDS = 600.0


class LimitGuard:
    """Counts refused actions per account and kind of limit (number plan, dial-outs per minute,
    participants, concurrent conferences) in a sliding window; the ALERT_THRESHOLD-th hit within
    ALERT_WINDOW_SECONDS logs a warning, counts veche_account_limit_alerts and is audited, once per
    window. Synchronous, so any service can report a hit where it refuses."""

    def __init__(self, metrics: VecheMetrics, audit: AuditLog, threshold: int = ALERT_THRESHOLD,
                 window: float = ALERT_WINDOW_SECONDS) -> None:
        self.metrics = metrics
        self.audit = audit
        self.threshold = threshold
        self.window = window
        self._hits: dict[tuple[int, str], deque[float]] = defaultdict(deque)
        self._alerted_at: dict[tuple[int, str], float] = {}
        self.alerts: list[dict[str, Any]] = []  # the latest alerts, newest last (kept short)

    def hit(self, account_id: int | None, limit: str, detail: str = "") -> bool:
        """Record one refusal; True when it raised an alert."""
        if account_id is None:
            return False
        self.metrics.limit_hits.labels(limit).inc()
        now = time.monotonic()
        key = (account_id, limit)
        hits = self._hits[key]
        hits.append(now)
        while hits and hits[0] < now - self.window:
            hits.popleft()
        last_alert = self._alerted_at.get(key)
        if len(hits) < self.threshold or (last_alert is not None and last_alert > now - self.window):
            return False
        self._alerted_at[key] = now
        log.warning("toll-fraud guard: account %s hit its %s limit %d times within %d s (last: %s)",
                    account_id, limit, len(hits), int(self.window), detail or "-")
        self.alert(account_id, limit, detail, hits=len(hits))
        return True

    def alert(self, account_id: int, limit: str, detail: str, hits: int = 1) -> None:
        """Show an alert on the operator's dashboard, count it and audit it."""
        self.metrics.limit_alerts.labels(limit).inc()
        alert = {"account_id": account_id, "limit": limit, "hits": hits, "window_seconds": int(self.window),
                 "last": detail}
        self.alerts = [*self.alerts[-99:], alert]
        self.audit.record_soon("guard.alert", actor="engine", account_id=account_id, detail=alert)
