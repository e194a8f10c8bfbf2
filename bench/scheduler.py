"""Scheduler throughput, against a trivial round-robin binder in the same run.

    python -m bench.scheduler [--nodes 100] [--pods 1000] [--e2e-pods 300]

1. Decisions: `schedule()` (every filter and score) for --pods pods over --nodes nodes, each
   placed pod added to the snapshot, as pods/s; the baseline picks the next node in turn.
2. End to end against a real `kproxy apiserver --no-controllers`: --e2e-pods pods created at
   once, then bound by the scheduling loop (informers, decisions, POST pods/binding) or by the
   round-robin binder (list pending pods, POST pods/binding in turn); pods/s from the first
   create to the last pod seen bound. The difference is what the scheduler's decisions cost on
   top of the binding round trips both pay.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import tempfile
import time

from kproxy.api.resources import NODES, PODS
from kproxy.scheduler.framework import Scheduled, schedule
from kproxy.scheduler.snapshot import Snapshot


def node_obj(i: int) -> dict:
    name = f"node-{i:03d}"
    cpu = ("4", "16", "64")[i % 3]
    labels = {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": f"z{i % 3}"}
    return {"metadata": {"name": name, "labels": labels},
            "spec": {}, "status": {"allocatable": {"cpu": cpu, "memory": "256Gi", "pods": "110"},
                                   "capacity": {"cpu": cpu, "memory": "256Gi", "pods": "110"},
                                   "conditions": [{"type": "Ready", "status": "True"}]}}


def pod_obj(i: int) -> dict:
    return {"metadata": {"name": f"pod-{i:05d}", "namespace": "default", "labels": {"app": f"a{i % 10}"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"rs{i % 10}",
                                              "uid": f"rs-{i % 10}", "controller": True}]},
            "spec": {"containers": [{"name": "c", "image": "kproxy.local/echo",
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}


def decisions(nodes: int, pods: int) -> None:
    node_objs = [node_obj(i) for i in range(nodes)]
    rng = random.Random(1)
    snap = Snapshot.build(node_objs, [])
    start = time.perf_counter()
    for i in range(pods):
        p = pod_obj(i)
        result = schedule(p, snap, rng)
        assert isinstance(result, Scheduled), result
        snap = snap.with_pod(result.node, {**p, "spec": {**p["spec"], "nodeName": result.node}})
    ours = pods / (time.perf_counter() - start)
    names = itertools.cycle([n["metadata"]["name"] for n in node_objs])
    snap = Snapshot.build(node_objs, [])
    start = time.perf_counter()
    for i in range(pods):
        p = pod_obj(i)
        snap = snap.with_pod(next(names), p)
    baseline = pods / (time.perf_counter() - start)
    print(f"decisions, {pods} pods over {nodes} nodes: scheduler {ours:,.0f} pods/s, "
          f"round-robin {baseline:,.0f} pods/s (x{baseline / ours:.1f} cheaper)")


async def _bound_all(client, count: int) -> None:
    while True:
        items = (await client.list(PODS, "default"))["items"]
        if sum(1 for p in items if p["spec"].get("nodeName")) >= count:
            return
        await asyncio.sleep(0.05)


async def _create_pods(client, count: int, prefix: str) -> None:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with sem:
            p = pod_obj(i)
            p["metadata"]["name"] = f"{prefix}-{i:05d}"
            await client.create(PODS, p, namespace="default")
    await asyncio.gather(*(one(i) for i in range(count)))


async def _clear(client) -> None:
    for p in (await client.list(PODS, "default"))["items"]:
        await client.delete(PODS, p["metadata"]["name"], "default", grace_period_seconds=0)


async def end_to_end(kubeconfig: str, nodes: int, count: int) -> None:
    from kproxy.client.rest import ApiClient
    from kproxy.scheduler.loop import run_scheduler

    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        for i in range(nodes):
            n = node_obj(i)
            created = await client.create(NODES, {"metadata": n["metadata"], "spec": {}})
            await client.update_status(NODES, {**created, "status": n["status"]})

        # the scheduling loop
        stop = asyncio.Event()
        task = asyncio.create_task(run_scheduler(client, stop, leader_elect=False))
        start = time.perf_counter()
        await _create_pods(client, count, "s")
        await _bound_all(client, count)
        ours = count / (time.perf_counter() - start)
        stop.set()
        await task
        await _clear(client)

        # the baseline: bind whatever is pending to the next node in turn
        names = itertools.cycle([f"node-{i:03d}" for i in range(nodes)])
        start = time.perf_counter()
        creating = asyncio.create_task(_create_pods(client, count, "r"))
        bound = 0
        while bound < count:
            pending = [p for p in (await client.list(PODS, "default"))["items"] if not p["spec"].get("nodeName")]
            for p in pending:
                name = p["metadata"]["name"]
                await client.request("POST", PODS.object_path(name, "default") + "/binding",
                                     body={"kind": "Binding", "metadata": {"name": name},
                                           "target": {"kind": "Node", "name": next(names)}})
                bound += 1
            if not pending:
                await asyncio.sleep(0.01)
        await creating
        baseline = count / (time.perf_counter() - start)
    print(f"end to end, {count} pods over {nodes} nodes (create + bind): scheduler {ours:,.0f} pods/s, "
          f"round-robin binder {baseline:,.0f} pods/s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--e2e-pods", type=int, default=300)
    ap.add_argument("--e2e-nodes", type=int, default=10)
    args = ap.parse_args(argv)
    decisions(args.nodes, args.pods)
    from tests.apiserver.fixtures import start_apiserver
    with tempfile.TemporaryDirectory() as tmp:
        server = start_apiserver(tmp, ["--no-controllers"])
        try:
            asyncio.run(end_to_end(server.kubeconfig,
                                   args.e2e_nodes, args.e2e_pods))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
