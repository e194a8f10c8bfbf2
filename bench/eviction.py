"""What an eviction (pods/eviction) costs next to a plain pod DELETE, same server, same run.

Starts `kproxy apiserver --no-controllers` (plain HTTP on loopback, temporary data directory),
creates 2N running pods, half covered by a PodDisruptionBudget whose status allows N
disruptions (as the disruption controller would write it) and half by none, then removes
them one request at a time over one keep-alive connection, an eviction and a DELETE
alternating so both meet the same load. An eviction of a covered pod lists the namespace's
budgets, spends one disruption with a conditional status write, marks the pod DisruptionTarget
and deletes it; the DELETE is the baseline. Timing is informational: no thresholds.

    python -m bench.eviction [--pods 200]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from typing import Any

import aiohttp

from bench.apiserver_vs_etcd import running_apiserver

NS = "default"
PODS = f"/api/v1/namespaces/{NS}/pods"
PDBS = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets"


async def call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    async with session.request(method, url, json=body) as resp:
        return resp.status, await resp.json()


async def running_pod(session: aiohttp.ClientSession, base: str, name: str, app: str) -> None:
    _, pod = await call(session, "POST", base + PODS, {"metadata": {"name": name, "labels": {"app": app}},
                                                       "spec": {"containers": [{"name": "c", "image": "x"}]}})
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    status, _ = await call(session, "PUT", f"{base}{PODS}/{name}/status", pod)
    assert status == 200, status


async def run(base: str, n: int) -> tuple[float, float]:
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            await running_pod(session, base, f"guarded-{i}", "guarded")
            await running_pod(session, base, f"plain-{i}", "plain")
        selector = {"matchLabels": {"app": "guarded"}}
        _, pdb = await call(session, "POST", base + PDBS, {"metadata": {"name": "guarded"},
                                                           "spec": {"maxUnavailable": n, "selector": selector}})
        pdb["status"] = {"disruptionsAllowed": n, "currentHealthy": n, "desiredHealthy": 0, "expectedPods": n,
                         "observedGeneration": 1}
        await call(session, "PUT", f"{base}{PDBS}/guarded/status", pdb)
        evicting = deleting = 0.0
        for i in range(n):
            start = time.perf_counter()
            status, _ = await call(session, "POST", f"{base}{PODS}/guarded-{i}/eviction", {
                "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": f"guarded-{i}"}})
            evicting += time.perf_counter() - start
            assert status == 201, status
            start = time.perf_counter()
            status, _ = await call(session, "DELETE", f"{base}{PODS}/plain-{i}")
            deleting += time.perf_counter() - start
            assert status == 200, status
        return evicting / n, deleting / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=200, help="pods evicted, and as many deleted")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-eviction-") as tmp, running_apiserver(tmp) as server:
        evict, delete = asyncio.run(run(server.url, args.pods))
    print(f"{'operation':34s} {'ms/request':>10s} {'vs baseline':>12s}")
    print(f"{'DELETE a pod (baseline)':34s} {delete * 1e3:10.2f} {1.0:11.2f}x")
    print(f"{'evict a pod within its budget':34s} {evict * 1e3:10.2f} {evict / delete:11.2f}x")


if __name__ == "__main__":
    main()
