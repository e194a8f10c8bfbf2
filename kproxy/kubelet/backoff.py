"""CrashLoopBackOff as kubelet applies it, as pure state with the clock passed in.

The first exit of a container restarts it at once; each further exit waits twice as long as
the one before, starting at `initial` (10 s) and capped at `maximum` (300 s). A container
that ran for at least twice the cap before it exited starts from scratch again (kubelet
forgets a backoff entry after 2 x maxContainerBackOff).
"""
from __future__ import annotations

from dataclasses import dataclass

INITIAL = 10.0
MAXIMUM = 300.0


@dataclass
class CrashBackoff:
    initial: float = INITIAL
    maximum: float = MAXIMUM
    delay: float = 0.0  # the wait the next exit brings
    not_before: float = 0.0  # the container may start again from this time on
    last_wait: float = 0.0  # the wait the last exit brought

    def exited(self, now: float, ran_for: float) -> float:
        """Records an exit at `now` after running `ran_for` seconds; returns the restart time."""
        if ran_for >= 2 * self.maximum:
            self.delay = 0.0
        self.not_before = now + self.delay
        self.last_wait = self.delay
        self.delay = self.initial if self.delay == 0 else min(self.maximum, self.delay * 2)
        return self.not_before

    def waiting(self, now: float) -> bool:
        """True while a restart is held back (the container is in CrashLoopBackOff)."""
        return now < self.not_before
