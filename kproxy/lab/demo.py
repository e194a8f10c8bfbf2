"""`kproxy lab demo`: the README's main job.

Brings up a 2-node lab, creates Service "web" over three pods spread across the nodes, waits
until the proxy answers from all of them, sends requests from the client namespace to the
ClusterIP, prints how many each pod answered, and says how to look at the rules and how to
tear the lab down. The lab stays up afterwards.
"""
from __future__ import annotations

import importlib.util
from collections import Counter

from kproxy.lab import traffic
from kproxy.lab.lab import Lab, LabError, wait_until

DEMO_PODS = (("web-1", "node1"), ("web-2", "node2"), ("web-3", "node1"))


def format_counts(counts: Counter, total: int, failures: int) -> list[str]:
    """Pure: one line per pod with its share, then the failures line if any."""
    lines = []
    width = max((len(p) for p in counts), default=4)
    for pod in sorted(counts):
        n = counts[pod]
        lines.append(f"  {pod:{width}}  {n:4d}  {100.0 * n / total:5.1f}%  {'#' * round(40 * n / total)}")
    if failures:
        lines.append(f"  failed  {failures:4d}")
    return lines


def run_demo(name: str, base_dir: str, mode: str = "iptables", requests: int = 60) -> int:
    lab = Lab(name, base_dir=base_dir)
    print(f"bringing up lab {name!r}: 2 nodes, mode {mode} (apiserver, controllers, one agent per node)...")
    lab.up(nodes=2, mode=mode)
    try:
        for pod, node in DEMO_PODS:
            lab.add_pod(pod, node, labels={"app": "web"})
            print(f"  pod {pod} on {node} at {lab.pod(pod).ip}")
        svc = lab.create_service("web", selector={"app": "web"},
                                 ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}])
        ip = svc["spec"]["clusterIP"]
        print(f"  service web: ClusterIP {ip} port 80 -> pods port 8080")
        expected = {p for p, _ in DEMO_PODS}
        seen: set[str] = set()

        def all_pods_answer() -> bool:
            reply = traffic.tcp_reply(lab.client_netns, ip, 80, timeout=1.0)
            seen.add(reply.pod)
            return seen >= expected

        print("waiting for the agents to program the rules...")
        try:
            wait_until(all_pods_answer, 90, f"all of {sorted(expected)} to answer on {ip}:80", interval=0.05)
        except LabError as exc:
            raise LabError(f"{exc}; the lab is still up: see `kproxy lab status --name {name}` "
                           f"and the logs in {lab.log_dir}") from None
        counts: Counter = Counter()
        failures = 0
        for _ in range(requests):
            try:
                counts[traffic.tcp_reply(lab.client_netns, ip, 80).pod] += 1
            except traffic.TrafficError:
                failures += 1
        client_ns = lab.plan.client.netns
        print(f"\n{requests} requests from namespace {client_ns} to {ip}:80:")
        for line in format_counts(counts, requests, failures):
            print(line)
        node_ns = lab.plan.node("node1").netns
        print("\nlook at the rules:")
        print(f"  ip netns exec {node_ns} iptables-save -t nat | grep KUBE")
        if importlib.util.find_spec("kproxy.cli.rules") is not None:
            print(f"  kproxy rules --netns {node_ns}")
        print(f"  kproxy lab status --name {name}")
        print("try it yourself:")
        print(f"  ip netns exec {client_ns} python3 -c \"import socket; s=socket.create_connection(('{ip}', 80)); "
              f"s.sendall(b'hi\\n'); print(s.recv(100).decode())\"")
        print("tear down:")
        print(f"  kproxy lab down --name {name}    (or: make demo-down)")
        return 0 if failures == 0 else 1
    finally:
        lab.close()
