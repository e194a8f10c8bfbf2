"""Proxier health, with kube-proxy's semantics.

The proxier calls `queued_update()` whenever it has a change waiting for a sync and
`updated()` after every successful sync. The agent is healthy when it has synced at least once
and no queued update has waited longer than `timeout` (2 x the sync period). /healthz also
requires the Node to be eligible (not being deleted); /livez ignores eligibility.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable


def _rfc3339(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    body: dict

    @property
    def status(self) -> int:
        return 200 if self.healthy else 503


class ProxierHealth:
    def __init__(self, timeout: float, clock: Callable[[], float] = time.time) -> None:
        self.timeout = timeout
        self._clock = clock
        self.last_updated: float | None = None  # wall time of the last successful sync
        self.oldest_pending: float | None = None  # wall time the oldest unsynced change was queued
        self.node_eligible = True

    def queued_update(self) -> None:
        """A change is waiting for a sync (the oldest waiting one counts)."""
        if self.oldest_pending is None:
            self.oldest_pending = self._clock()

    def updated(self) -> None:
        """A sync succeeded: everything queued so far is programmed."""
        self.last_updated = self._clock()
        self.oldest_pending = None

    def _healthy(self, now: float) -> bool:
        if self.last_updated is None:
            return False
        return self.oldest_pending is None or now - self.oldest_pending <= self.timeout

    def _report(self, require_eligible: bool) -> HealthReport:
        now = self._clock()
        healthy = self._healthy(now) and (self.node_eligible or not require_eligible)
        body = {"lastUpdated": _rfc3339(self.last_updated), "currentTime": _rfc3339(now),
                "nodeEligible": self.node_eligible}
        return HealthReport(healthy, body)

    def healthz(self) -> HealthReport:
        return self._report(require_eligible=True)

    def livez(self) -> HealthReport:
        return self._report(require_eligible=False)
