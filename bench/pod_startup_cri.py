"""Pod startup with the containerd runtime, against the process runtime and against `ctr run`
of the same image, all measured in this run.

    python -m bench.pod_startup_cri [--pods 20]

A real apiserver (scheduler and controllers in-process), a node namespace with its own
containerd (kproxy.containerd.daemon) and the built-in base image (kproxy.images). For a batch
of 1 and of --pods pods running `sleep`, latency is from the create call to the first list
that shows the pod Running and Ready: once with `kproxy kubelet --runtime containerd`
(sandbox, CNI, container through CRI), once with the process runtime (kproxy.local/base run
as a process in a pod namespace). The baseline `ctr run -d` starts the same image's container
directly in containerd, without CNI or the API: its latency is from the batch start to ctr
returning. Namespaces are named kpb<pid>-... and removed at the end, with the containerd.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from bench.pod_startup import _ready, summary
from kproxy.api.resources import NODES, PODS
from kproxy.containerd.daemon import Containerd
from kproxy.lab import netsetup

POD_CIDR = "10.244.1.0/24"
IMAGE = "kproxy.local/base:latest"


def through_kubelet(client, count: int, batch: str, image: str, deadline: float = 300.0) -> list[float]:
    created: dict[str, float] = {}
    ready: dict[str, float] = {}
    for i in range(count):
        name = f"{batch}-{i}"
        created[name] = time.monotonic()
        client.create(PODS, {"metadata": {"name": name}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "c", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}},
            "default")
    end = time.monotonic() + deadline
    while len(ready) < count and time.monotonic() < end:
        for pod in client.list(PODS, "default")["items"]:
            name = pod["metadata"]["name"]
            if name in created and name not in ready and _ready(pod):
                ready[name] = time.monotonic() - created[name]
        time.sleep(0.02)
    if len(ready) < count:
        raise SystemExit(f"only {len(ready)} of {count} pods Ready within {deadline:g}s")
    for name in created:
        client.delete(PODS, name, "default")
    client.wait_for(lambda c: not [p for p in c.list(PODS, "default")["items"] if p["metadata"]["name"] in created],
                    timeout=deadline)
    return list(ready.values())


def ctr_run(socket: str, count: int, batch: str) -> list[float]:
    latencies = []
    start = time.monotonic()
    ids = [f"{batch}-{i}" for i in range(count)]
    ctr = ["ctr", "--address", socket, "--namespace", "k8s.io"]
    try:
        for cid in ids:
            subprocess.run([*ctr, "run", "-d", IMAGE, cid, "sleep", "3600"], check=True, capture_output=True)
            latencies.append(time.monotonic() - start)
    finally:
        for cid in ids:
            subprocess.run([*ctr, "task", "kill", "-s", "SIGKILL", cid], capture_output=True)
            for _ in range(100):
                if subprocess.run([*ctr, "task", "delete", cid], capture_output=True).returncode == 0:
                    break
                time.sleep(0.05)
            subprocess.run([*ctr, "container", "delete", cid], capture_output=True)
    return latencies


def kubelet(server, node_netns: str, tmp: str, runtime: list[str], name: str) -> subprocess.Popen:
    with open(os.path.join(tmp, f"kubelet-{name}.log"), "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "kproxy", "kubelet", "--kubeconfig", server.kubeconfig,
                                 "--node-name", "n1", "--netns", node_netns, "--pod-cidr", POD_CIDR,
                                 "--root-dir", os.path.join(tmp, f"kubelet-{name}"), *runtime],
                                stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=20)
    args = ap.parse_args(argv)
    if not 1 <= args.pods <= 250:
        ap.error("--pods must be 1-250 (one /24 pod CIDR)")
    from kproxy.client.sync import Client
    from tests.apiserver.fixtures import start_apiserver

    node_netns = f"kpb{os.getpid()}-node"
    running: subprocess.Popen | None = None
    daemon = Containerd(f"/run/kpb{os.getpid()}-containerd", node_netns, POD_CIDR)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_apiserver(tmp)
        client = Client.from_kubeconfig(server.kubeconfig)
        try:
            netsetup.add_namespace(node_netns)
            subprocess.run(["ip", "-n", node_netns, "-batch", "-"], check=True, text=True,
                           input="link set lo up\nlink add eth0 type veth peer name eth0p\nlink set eth0p up\n"
                                 "addr add 10.200.0.11/24 dev eth0\nlink set eth0 up\n")
            daemon.start()
            daemon.import_image("kproxy.local/base")
            results = []
            for count in (1, args.pods):
                results.append(summary(f"ctr run -d, {count} containers", ctr_run(daemon.socket, count, f"c{count}")))
            for name, runtime, image in (("containerd", ["--runtime", "containerd", "--containerd-socket",
                                                         daemon.socket], IMAGE),
                                         ("process", [], IMAGE)):
                running = kubelet(server, node_netns, tmp, runtime, name)
                client.wait_for(lambda c: c.get_or_none(NODES, "n1"), timeout=60)
                for count in (1, args.pods):
                    results.append(summary(f"kubelet {name}: create -> Ready, {count}",
                                           through_kubelet(client, count, f"{name[0]}{count}", image)))
                stop(running)
                running = None
            print("\n".join(results))
        finally:
            stop(running)
            client.close()
            server.stop()
            daemon.remove()
            for name in netsetup.list_namespaces():
                if name.startswith(node_netns):
                    netsetup.delete_namespace(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
