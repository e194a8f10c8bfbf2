"""A 1,000-replica Deployment, from create to fully Available, next to the same number of
plain pod creates, in the same run against the same kind of server.

Starts `kproxy apiserver --no-controllers` (temporary data directory, removed at the end),
runs the controllers in this process (as `kproxy controllers` does) and the simulated kubelet
the controller tests use (tests/controllers/fake_kubelet.py: marks each pod Running and Ready
through the status subresource at once), then measures:
  1. baseline: N pod creates from one client at the concurrency the ReplicaSet controller
     reaches (its slow-start batches double up to 500), into an empty namespace;
  2. a Deployment of N replicas: seconds until status.availableReplicas == N, and pod
     creations per second over that time (pods also go through the kubelet's status write
     and the controllers' status writes, so this is the whole loop, not only creates).
Timing is informational: no thresholds.

    python -m bench.deployment_rollout [--replicas 1000]
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import shutil
import tempfile
import time

from kproxy.api.resources import DEPLOYMENTS, NAMESPACES, PODS
from kproxy.client.rest import ApiClient
from kproxy.client.sync import Client
from tests.apiserver.fixtures import start_apiserver
from tests.controllers.conftest import ControllersThread
from tests.controllers.fake_kubelet import FakeKubelet
from tests.unit.workload_objects import DEPLOYMENT

POD = {"metadata": {"generateName": "plain-", "labels": {"app": "plain"}},
       "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}


async def plain_creates(kubeconfig: str, n: int, concurrency: int) -> float:
    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                await client.create(PODS, copy.deepcopy(POD), "baseline")
        start = time.monotonic()
        await asyncio.gather(*(one() for _ in range(n)))
        return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=1000)
    args = parser.parse_args()
    n = args.replicas
    tmp = tempfile.mkdtemp(prefix="kproxy-bench-deploy-")
    server = start_apiserver(tmp, ["--no-controllers"])
    kubelet = controllers = None
    try:
        with Client.from_kubeconfig(server.kubeconfig) as c:
            c.create(NAMESPACES, {"metadata": {"name": "baseline"}})
            base = asyncio.run(plain_creates(server.kubeconfig, n, min(500, n)))
            print(f"baseline: {n} plain pod creates in {base:.2f} s ({n / base:.0f} pods/s)")

            controllers = ControllersThread(server.kubeconfig, leader_elect=False)
            kubelet = FakeKubelet(server.kubeconfig)
            d = copy.deepcopy(DEPLOYMENT)
            d["spec"]["replicas"] = n
            start = time.monotonic()
            c.create(DEPLOYMENTS, d)

            def available(c: Client) -> bool:
                s = c.get(DEPLOYMENTS, "web", "default").get("status") or {}
                return s.get("availableReplicas") == n and s.get("updatedReplicas") == n
            c.wait_for(available, timeout=1800, interval=0.2)
            took = time.monotonic() - start
            print(f"deployment: {n} replicas created and Available in {took:.2f} s "
                  f"({n / took:.0f} pods/s, {took / base:.1f}x the plain creates)")
    finally:
        if kubelet is not None:
            kubelet.stop()
        if controllers is not None:
            controllers.stop()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
