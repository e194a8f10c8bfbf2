"""Keeping one ServicePort the agent cannot program from blocking every other one.

A backend renders and applies the whole state in one transaction, so one ServicePort whose
render raises, or whose rules the kernel refuses, fails the sync of all of them. This module is
the one place that finds such a ServicePort and sets it aside; the proxier calls it, backends
know nothing of it.

Guarantees:
- isolate() starts from `base` (the ServicePorts the kernel is known to hold) and tries the
  failed state's changes in halves (bisection): every trial that succeeds is kept (the kernel
  then holds base plus those changes), every trial of one ServicePort that fails makes it a
  culprit. A healthy ServicePort is therefore programmed after O(culprits x log(changes))
  trials. Every trial holds `base` plus some changes, so a ServicePort the kernel held keeps
  its rules throughout (on the first sync after a restart `base` is empty: what the kernel
  holds is not known then).
- A culprit is only blamed for a trial that held its change alone (never for the failure of a
  larger one), and only when the kernel can be programmed without it: when no trial
  succeeded, `base` alone is tried, and if that fails too the failure is the kernel's or the
  machine's (a transient error), not an object's, and isolate() raises it.
- Quarantine.effective() keeps a skipped ServicePort out of later states while it still
  compares equal to the value that failed: what the kernel held for it before (its previous
  value in `base`, if any) stays, so a bad update does not take a working Service down. A new
  value of the object is tried again, and so is every skipped one at a full sync (a periodic
  resync, or the one after a failure), so a transient refusal heals within one sync period.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

from kproxy.agent.state import ProxyState, ServicePort, differing_keys

RENDER = "render"  # the backend's render raised
KERNEL = "kernel"  # the kernel (or iptables-restore) refused the transaction
STAGES = (RENDER, KERNEL)
MAX_REASON = 400  # characters of an error kept for logs and Events


class Refused(Exception):
    """A trial failed because of what it contained; `stage` is RENDER or KERNEL."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason[:MAX_REASON]


@dataclass(frozen=True)
class Skipped:
    """A ServicePort set aside: the value that failed, where and why."""

    service_port: ServicePort
    stage: str
    reason: str


# Renders and applies one state; raises Refused when the state's content is refused, anything
# else when something outside the state failed. On success the kernel holds that state.
Attempt = Callable[[ProxyState], Awaitable[None]]


def with_services(state: ProxyState, services: Mapping[str, ServicePort]) -> ProxyState:
    """`state` with another set of ServicePorts (same node settings and revision)."""
    return dataclasses.replace(state, services=dict(services))


async def isolate(target: ProxyState, base: Mapping[str, ServicePort], attempt: Attempt,
                  failure: Refused) -> tuple[dict[str, ServicePort], dict[str, Skipped]]:
    """After `attempt(target)` failed with `failure`: programs every change of `target` over
    `base` that can be programmed (see module doc). Returns (the ServicePorts the kernel now
    holds, the culprits by key)."""
    current = dict(base)
    changes = sorted(differing_keys(target.services, current))
    if not changes:
        raise failure  # what the kernel held before fails now: not a new object's fault
    culprits: dict[str, Skipped] = {}

    async def trial(keys: list[str]) -> Refused | None:
        services = dict(current)
        for k in keys:
            sp = target.services.get(k)
            if sp is None:
                services.pop(k, None)
            else:
                services[k] = sp
        try:
            await attempt(with_services(target, services))
        except Refused as exc:
            return exc
        current.clear()
        current.update(services)
        return None

    async def search(keys: list[str], known: Refused | None) -> None:
        # one ServicePort is only blamed for a failure of its own trial
        refused = known if known is not None and len(keys) > 1 else await trial(keys)
        if refused is None:
            return
        if len(keys) == 1:
            culprits[keys[0]] = Skipped(target.services.get(keys[0]) or base[keys[0]], refused.stage, refused.reason)
            return
        mid = len(keys) // 2
        await search(keys[:mid], None)
        await search(keys[mid:], None)

    await search(changes, failure)
    if current == base:  # nothing applied yet: is the kernel usable at all?
        try:
            await attempt(with_services(target, base))
        except Refused:
            raise failure from None
    return current, culprits


class Quarantine:
    """The ServicePorts currently set aside, by key."""

    def __init__(self) -> None:
        self.skipped: dict[str, Skipped] = {}
        self._reported: dict[str, Skipped] = {}  # last culprit reported per key (logged once)

    def effective(self, state: ProxyState, base: Mapping[str, ServicePort],
                  retry: bool = False) -> tuple[ProxyState, set[str]]:
        """`state` with every skipped ServicePort that still equals its failed value replaced by
        its value in `base` (or left out). Entries whose ServicePort changed or went away, or
        all of them with `retry`, are released; their keys are returned (the caller must sync
        them)."""
        if not self.skipped:
            return state, set()
        released = set()
        services = dict(state.services)
        for key, skipped in list(self.skipped.items()):
            if retry or services.get(key) != skipped.service_port:
                del self.skipped[key]
                released.add(key)
            elif key in base:
                services[key] = base[key]
            else:
                del services[key]
        return with_services(state, services), released

    def add(self, culprits: Mapping[str, Skipped]) -> dict[str, Skipped]:
        """Records culprits; returns those that are news (not skipped before for that value and
        reason, including before a retry released them), the ones to log and report."""
        new = {k: s for k, s in culprits.items() if self._reported.get(k) != s}
        self.skipped.update(culprits)
        self._reported.update(culprits)
        return new

    def counts(self) -> dict[str, int]:
        """Skipped ServicePorts per stage."""
        out = dict.fromkeys(STAGES, 0)
        for s in self.skipped.values():
            out[s.stage] += 1
        return out
