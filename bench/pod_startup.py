"""Pod startup latency through the kubelet, against starting the same processes directly.

    python -m bench.pod_startup [--pods 100]

A real apiserver (scheduler and controllers in-process) and one `kproxy kubelet` on a node
namespace. For a batch of 1 and of --pods pods (kproxy.local/echo, no readiness probe, no
image pull), each pod's latency is from its create call to the first time a list shows it
Running with Ready=True (upstream's pod startup SLO: p99 <= 5 s). The baseline does, in this
process, what the kubelet does for each pod without the API: the pod namespace and veth
(kproxy.lab.netsetup) and the echo process; its latency is from the batch start to that
process spawned. With the pods up, the kubelet's CPU use while nothing happens is sampled
(its per-pod loops wake for exits, probes and backoffs, else every 2 s). Namespaces are named
kpb<pid>-... and removed at the end, even on Ctrl-C.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from kproxy.api.resources import NODES, PODS
from kproxy.kubelet import podnet
from kproxy.kubelet.podnet import pod_plan
from kproxy.lab import netsetup

POD_CIDR = "10.244.1.0/24"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def summary(label: str, values: list[float]) -> str:
    return (f"{label:<34} n={len(values):<4} p50={percentile(values, 50) * 1000:8.0f} ms"
            f"  p99={percentile(values, 99) * 1000:8.0f} ms")


def _ready(pod: dict) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float = 10.0) -> float:
    """The share of one core `pid` uses over `seconds`."""
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - start)


def through_kubelet(client, count: int, batch: str, kubelet_pid: int, cpu: list[str],
                    deadline: float = 300.0) -> list[float]:
    created: dict[str, float] = {}
    ready: dict[str, float] = {}
    for i in range(count):
        name = f"{batch}-{i}"
        created[name] = time.monotonic()
        client.create(PODS, {"metadata": {"name": name}, "spec": {"terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "echo", "image": "kproxy.local/echo"}]}}, "default")
    end = time.monotonic() + deadline
    while len(ready) < count and time.monotonic() < end:
        for pod in client.list(PODS, "default")["items"]:
            name = pod["metadata"]["name"]
            if name in created and name not in ready and _ready(pod):
                ready[name] = time.monotonic() - created[name]
        time.sleep(0.02)
    if len(ready) < count:
        raise SystemExit(f"only {len(ready)} of {count} pods Ready within {deadline:g}s")
    cpu.append(f"kubelet CPU with {count} pods running idle: {idle_cpu(kubelet_pid) * 100:.1f}% of a core")
    for name in created:
        client.delete(PODS, name, "default")
    client.wait_for(lambda c: not [p for p in c.list(PODS, "default")["items"] if p["metadata"]["name"] in created],
                    timeout=deadline)
    return list(ready.values())


def directly(node_netns: str, count: int, prefix: str) -> list[float]:
    plans = [pod_plan(prefix, POD_CIDR, "default", f"direct-{i}", "n1", 2 + i) for i in range(count)]
    procs: list[subprocess.Popen] = []
    latencies = []
    start = time.monotonic()
    try:
        for plan in plans:
            podnet.attach_pod_network(plan, node_netns)
            procs.append(subprocess.Popen(["ip", "netns", "exec", plan.netns, sys.executable, "-m", "kproxy.lab.echo",
                                           "--name", plan.name], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
            latencies.append(time.monotonic() - start)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for plan in plans:
            podnet.detach_pod_network(plan, node_netns)
    return latencies


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=100)
    args = ap.parse_args(argv)
    if not 1 <= args.pods <= 250:
        ap.error("--pods must be 1-250 (one /24 pod CIDR)")
    from kproxy.client.sync import Client
    from tests.apiserver.fixtures import start_apiserver

    node_netns = f"kpb{os.getpid()}-node"
    kubelet: subprocess.Popen | None = None
    with tempfile.TemporaryDirectory() as tmp:
        server = start_apiserver(tmp)
        client = Client.from_kubeconfig(server.kubeconfig)
        try:
            netsetup.add_namespace(node_netns)
            # a veth with both ends in the node namespace stands for its uplink
            subprocess.run(["ip", "-n", node_netns, "-batch", "-"], check=True, text=True,
                           input="link add eth0 type veth peer name eth0p\nlink set eth0p up\n"
                                 "addr add 10.200.0.11/24 dev eth0\nlink set eth0 up\n")
            results = []
            for count in (1, args.pods):
                results.append(summary(f"direct: netns + process, {count} pods", directly(node_netns, count,
                                                                                      f"{node_netns}-direct-")))
            with open(os.path.join(tmp, "kubelet.log"), "ab") as log:
                kubelet = subprocess.Popen([sys.executable, "-m", "kproxy", "kubelet", "--kubeconfig",
                                            server.kubeconfig, "--node-name", "n1", "--netns", node_netns,
                                            "--pod-cidr", POD_CIDR, "--root-dir", os.path.join(tmp, "kubelet")],
                                           stdout=log, stderr=subprocess.STDOUT)
            client.wait_for(lambda c: c.get_or_none(NODES, "n1"), timeout=60)
            cpu: list[str] = []
            for count in (1, args.pods):
                results.append(summary(f"kubelet: create -> Ready, {count} pods",
                                       through_kubelet(client, count, f"b{count}", kubelet.pid, cpu)))
            print("\n".join(results + cpu))
        finally:
            if kubelet is not None:
                kubelet.send_signal(signal.SIGTERM)
                try:
                    kubelet.wait(60)
                except subprocess.TimeoutExpired:
                    kubelet.kill()
                    kubelet.wait()
            client.close()
            server.stop()
            for name in netsetup.list_namespaces():
                if name.startswith(node_netns):
                    netsetup.delete_namespace(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
