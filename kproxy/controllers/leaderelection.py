"""Lease-based leader election, so that two controller managers on one apiserver (say the
apiserver's in-process controllers and a `kproxy controllers` process) never both act.

Follows client-go's leaderelection with a coordination.k8s.io/v1 Lease:
- a candidate takes the Lease when it does not exist, has no holder (released), or its record
  has not changed for `lease_duration` seconds as measured on the candidate's own monotonic
  clock (so clock skew between machines does not matter);
- every write is optimistic (resourceVersion), so two candidates can never both win;
- the leader renews every `retry_period`; if it cannot renew within `renew_deadline` it stops
  leading (its work is stopped) and becomes a candidate again;
- a leader that stops cleanly releases the Lease, so a successor takes over at once.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import time
import uuid
from typing import Any, Awaitable, Callable

from kproxy.api.resources import LEASES
from kproxy.api.status import ApiError
from kproxy.client.errors import ApiConnectionError

log = logging.getLogger(__name__)


def _now_micro() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    def __init__(self, client: Any, *, name: str = "kproxy-controllers", namespace: str = "kube-system",
                 identity: str | None = None, lease_duration: float = 15.0, renew_deadline: float = 10.0,
                 retry_period: float = 2.0):
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.is_leader = False
        self._observed: tuple[Any, float] | None = None  # (holder, renewTime) and when it changed
        self._lease: dict | None = None

    # -- one attempt ----------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this candidate holds the Lease afterwards."""
        now = time.monotonic()
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except ApiError as exc:
            if exc.code != 404:
                raise
            lease = None
        if lease is None:
            try:
                self._lease = await self.client.create(LEASES, self._record(None), self.namespace)
            except ApiError as exc:
                if exc.code == 409:
                    return False  # someone else created it first
                raise
            self._observed = (self._record_key(self._lease), now)
            return True

        spec = lease.get("spec") or {}
        key = self._record_key(lease)
        if self._observed is None or self._observed[0] != key:
            self._observed = (key, now)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and now - self._observed[1] < duration:
            return False  # held by a live leader
        try:
            self._lease = await self.client.update(LEASES, self._record(lease))
        except ApiError as exc:
            if exc.code == 409:
                return False  # changed under us: someone else renewed or took it
            raise
        self._observed = (self._record_key(self._lease), now)
        return True

    @staticmethod
    def _record_key(lease: dict) -> tuple:
        spec = lease.get("spec") or {}
        return (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))

    def _record(self, current: dict | None) -> dict:
        now = _now_micro()
        if current is None:
            return {"metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_duration),
                             "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}
        lease = dict(current)
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if spec.get("holderIdentity") else 0)
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=max(1, int(self.lease_duration)), renewTime=now)
        lease["spec"] = spec
        return lease

    async def release(self) -> None:
        """Gives the Lease up (if still ours) so a successor need not wait for it to expire."""
        if self._lease is None:
            return
        lease = dict(self._lease)
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            return
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=_now_micro())
        lease["spec"] = spec
        try:
            await self.client.update(LEASES, lease)
        except (ApiError, ApiConnectionError) as exc:
            log.info("leader election: could not release %s/%s: %s", self.namespace, self.name, exc)
        self._lease = None

    # -- the loop -------------------------------------------------------------------------

    async def run(self, lead: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
        """Campaigns until `stop`; while leading, runs `lead(lost)` where `lost` is set when
        leadership ends (stop, or no renewal within renew_deadline). Releases on stop."""
        while not stop.is_set():
            if await self._attempt():
                await self._lead(lead, stop)
            else:
                await _wait(stop, self.retry_period)

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except (ApiError, ApiConnectionError) as exc:
            log.warning("leader election: %s", exc)
            return False

    async def _lead(self, lead: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
        self.is_leader = True
        log.info("leader election: %s leads %s/%s", self.identity, self.namespace, self.name)
        lost = asyncio.Event()
        work = asyncio.create_task(lead(lost))
        last_renew = time.monotonic()
        try:
            while not stop.is_set() and not work.done():
                await _wait(stop, self.retry_period)
                if stop.is_set():
                    break
                if await self._attempt():
                    last_renew = time.monotonic()
                elif time.monotonic() - last_renew >= self.renew_deadline or not await self._still_ours():
                    log.warning("leader election: %s lost %s/%s", self.identity, self.namespace, self.name)
                    break
        finally:
            self.is_leader = False
            lost.set()
            try:
                await asyncio.wait_for(asyncio.shield(work), 15)
            except asyncio.CancelledError:
                work.cancel()
                raise
            except Exception:  # the work crashed, or did not stop in time
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
            if stop.is_set():
                await self.release()

    async def _still_ours(self) -> bool:
        """After a failed renewal: False when the Lease now names someone else."""
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except (ApiError, ApiConnectionError):
            return True  # unknown; the renew deadline decides
        return (lease.get("spec") or {}).get("holderIdentity") == self.identity


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pass
