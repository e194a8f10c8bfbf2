"""Node heartbeats, the part of a kubelet the node lifecycle controller listens to.

`NodeHeartbeat` renews one Lease per node in kube-node-lease (creating it when missing) every
`interval` seconds and, like a kubelet, posts Ready=True on a node whose Ready condition is
not True. Nodes without a heartbeat are marked NotReady (and their pods not ready) by
kproxy.controllers.node after its grace period, so anything that registers Nodes without a
real kubelet (the lab) runs this for them:

    python -m kproxy.client.heartbeat --kubeconfig FILE --node-name node1 --node-name node2

Failures of one beat are logged and retried at the next one; SIGTERM/SIGINT end it (exit 0).
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import datetime
import logging
import signal
import sys
from typing import Any, Sequence

from kproxy.api.resources import LEASES, NODES
from kproxy.api.status import ApiError
from kproxy.client.errors import ApiConnectionError

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"


def _now_micro() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_posted_ready(node: dict, now: str) -> dict | None:
    """The node with Ready=True (reason KubeletReady), or None when it already is Ready."""
    new = copy.deepcopy(node)
    conditions = new.setdefault("status", {}).setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return None
            cond.update(status="True", reason="KubeletReady", message="kubelet is posting ready status",
                        lastHeartbeatTime=now, lastTransitionTime=now)
            return new
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                       "lastTransitionTime": now})
    return new


class NodeHeartbeat:
    def __init__(self, client: Any, node_names: Sequence[str], *, interval: float = 10.0,
                 lease_duration: int = 40, post_ready: bool = True):
        self.client = client
        self.node_names = list(node_names)
        self.interval = interval
        self.lease_duration = lease_duration
        self.post_ready = post_ready

    async def beat_once(self) -> None:
        """Renews every node's Lease (and Ready) once; raises the first failure after trying all."""
        first_error: Exception | None = None
        for name in self.node_names:
            try:
                await self._renew_lease(name)
                if self.post_ready:
                    await self._post_ready(name)
            except (ApiError, ApiConnectionError) as exc:
                first_error = first_error or exc
                log.warning("heartbeat of node %s failed: %s", name, exc)
        if first_error is not None:
            raise first_error

    async def _renew_lease(self, name: str) -> None:
        try:
            lease = await self.client.get(LEASES, name, LEASE_NAMESPACE)
        except ApiError as exc:
            if exc.code != 404:
                raise
            await self.client.create(LEASES, {
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": self.lease_duration,
                         "renewTime": _now_micro()}}, LEASE_NAMESPACE)
            return
        lease.setdefault("spec", {}).update(holderIdentity=name, leaseDurationSeconds=self.lease_duration,
                                            renewTime=_now_micro())
        await self.client.update(LEASES, lease)

    async def _post_ready(self, name: str) -> None:
        try:
            node = await self.client.get(NODES, name)
        except ApiError as exc:
            if exc.code == 404:
                return  # not registered (yet): nothing to post
            raise
        new = node_posted_ready(node, _now())
        if new is not None:
            await self.client.update_status(NODES, new)

    async def run(self, stop: asyncio.Event) -> None:
        """Beats every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            try:
                await self.beat_once()
            except (ApiError, ApiConnectionError):
                pass  # logged per node; the next beat retries
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except asyncio.TimeoutError:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kproxy.client.heartbeat",
                                     description="renew node Leases (and Ready) for nodes without a kubelet")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", action="append", required=True, help="repeat for several nodes")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between beats (default 10)")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from kproxy.client.kubeconfig import KubeconfigError
    from kproxy.client.rest import ApiClient

    async def body() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with ApiClient.from_kubeconfig(args.kubeconfig) as client:
            await NodeHeartbeat(client, args.node_name, interval=args.interval).run(stop)

    try:
        asyncio.run(body())
    except KubeconfigError as exc:
        print(f"heartbeat: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
