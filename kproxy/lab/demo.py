"""`kproxy lab demo`: the README's main job, the story of issue 19 on real pods.

Brings up a 2-node lab (apiserver with controllers and scheduler, a kubelet and an agent per
node), then runs, as a user would and printing each command first:

    kubectl create deployment web --image=kproxy.local/echo --replicas=3
    kubectl expose deployment web --port 80 --target-port 8080

sends requests from the client namespace to the Service's ClusterIP and prints how many each
pod answered; then, while a client keeps sending requests, `kubectl scale deployment web
--replicas=5` and `kubectl rollout restart deployment web`, and prints the answers per pod and
the failed requests. To make a rollout lose nothing, the Deployment is patched with a
readiness probe, a preStop sleep and maxSurge 1 / maxUnavailable 0 (printed as it happens).
kubectl runs as a subprocess with the lab's admin kubeconfig; without kubectl on the PATH the
same steps go through kproxy's own client and the output says so. The lab stays up.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import Counter

from kproxy.lab import pods, traffic
from kproxy.lab.lab import Lab, LabError, wait_until

APP = "web"
ROLLOUT_TIMEOUT = 180.0


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


class Steps:
    """The demo's cluster commands: kubectl with the lab's kubeconfig when it is installed,
    else the same requests through kproxy's client. Each prints its command line first."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.kubectl = shutil.which("kubectl")

    def _run(self, args: list[str]) -> None:
        if self.kubectl is None:
            print(f"$ kubectl {' '.join(args)}    [done through kproxy's client]", flush=True)
            return
        print(f"$ kubectl {' '.join(args)}", flush=True)
        env = {**os.environ, "KUBECONFIG": self.lab.kubeconfig}
        done = subprocess.run([self.kubectl, *args], env=env, capture_output=True, text=True, timeout=300)
        for line in (done.stdout + done.stderr).strip().splitlines():
            print(f"  {line}")
        if done.returncode != 0:
            raise LabError(f"kubectl {' '.join(args)} failed (exit {done.returncode})")

    def create_deployment(self, replicas: int) -> None:
        self._run(["create", "deployment", APP, "--image=kproxy.local/echo", f"--replicas={replicas}"])
        if self.kubectl is None:
            self.lab.apply(pods.simple_deployment(APP, replicas))

    def patch_for_zero_loss(self) -> None:
        patch = pods.zero_loss_patch()
        print("  (the demo adds a readiness probe on /healthz, a 2 s preStop sleep and maxSurge 1 /"
              " maxUnavailable 0, so that replacing pods loses no request)")
        self._run(["patch", "deployment", APP, "--type=strategic", "-p", json.dumps(patch, separators=(",", ":"))])
        if self.kubectl is None:
            from kproxy.api.resources import DEPLOYMENTS

            self.lab.client.patch(DEPLOYMENTS, APP, patch, "default", patch_type="strategic")

    def expose(self) -> dict:
        from kproxy.api.resources import SERVICES

        self._run(["expose", "deployment", APP, "--port", "80", "--target-port", "8080"])
        if self.kubectl is None:
            return self.lab.create_service(APP, selector={"app": APP},
                                           ports=[{"port": 80, "targetPort": 8080, "protocol": "TCP"}])
        return self.lab.client.get(SERVICES, APP, "default")

    def scale(self, replicas: int) -> None:
        self._run(["scale", "deployment", APP, f"--replicas={replicas}"])
        if self.kubectl is None:
            from kproxy.api.resources import DEPLOYMENTS

            self.lab.client.patch(DEPLOYMENTS, APP, {"spec": {"replicas": replicas}}, "default")

    def rollout_restart(self) -> None:
        self._run(["rollout", "restart", "deployment", APP])
        if self.kubectl is None:
            from kproxy.api.resources import DEPLOYMENTS

            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}
            self.lab.client.patch(DEPLOYMENTS, APP, patch, "default")

    def rollout_status(self) -> None:
        self._run(["rollout", "status", "deployment", APP, f"--timeout={int(ROLLOUT_TIMEOUT)}s"])
        if self.kubectl is None:
            from kproxy.api.resources import DEPLOYMENTS

            wait_until(lambda: pods.rollout_complete(self.lab.client.get(DEPLOYMENTS, APP, "default")),
                       ROLLOUT_TIMEOUT, "the rollout of deployment web")


def ready_pods(lab: Lab) -> set[str]:
    from kproxy.api.resources import PODS

    items = lab.client.list(PODS, "default", label_selector=f"app={APP}")["items"]
    return {p["metadata"]["name"] for p in items
            if not p["metadata"].get("deletionTimestamp") and pods.condition(p, "Ready") == "True"}


def run_demo(name: str, base_dir: str, mode: str = "iptables", requests: int = 60) -> int:
    lab = Lab(name, base_dir=base_dir)
    print(f"bringing up lab {name!r}: 2 nodes, mode {mode} (apiserver with controllers and scheduler,"
          " a kubelet and an agent per node)...", flush=True)
    lab.up(nodes=2, mode=mode)
    try:
        return _story(lab, name, requests)
    except (LabError, TimeoutError) as exc:
        raise LabError(f"{exc}; the lab is still up: see `kproxy lab status --name {name}` "
                       f"and the logs in {lab.log_dir}") from None
    finally:
        lab.close()


def _story(lab: Lab, name: str, requests: int) -> int:
    steps = Steps(lab)
    print(f"kubeconfig: {lab.kubeconfig}")
    if steps.kubectl is None:
        print("kubectl is not installed: the same steps go through kproxy's client")
    steps.create_deployment(3)
    steps.patch_for_zero_loss()
    svc = steps.expose()
    ip = svc["spec"]["clusterIP"]
    steps.rollout_status()
    expected = wait_until(lambda: (found if len(found := ready_pods(lab)) == 3 else None), ROLLOUT_TIMEOUT,
                          "three ready pods of deployment web")
    print(f"service web: ClusterIP {ip} port 80 -> pods port 8080; waiting for the agents to program it...")
    seen: set[str] = set()

    def all_pods_answer() -> bool:
        seen.add(traffic.tcp_reply(lab.client_netns, ip, 80, timeout=1.0).pod)
        return seen >= expected

    wait_until(all_pods_answer, 90, f"all of {sorted(expected)} to answer on {ip}:80", interval=0.05)
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

    print(f"\nnow a client in {client_ns} sends requests without pause while the Deployment changes:", flush=True)
    with traffic.ContinuousClient(client_ns, ip, 80) as client:
        client.wait_for_more(20)
        steps.scale(5)
        steps.rollout_status()
        steps.rollout_restart()
        steps.rollout_status()
        wait_until(lambda: len(ready_pods(lab)) == 5 and ready_pods(lab) <= set(_current_pods(lab)), ROLLOUT_TIMEOUT,
                   "the old pods to be gone")
        client.wait_for_more(50)
    print(f"\n{client.total} requests during scale and rollout restart:")
    for line in format_counts(client.answers, client.total, 0):
        print(line)
    print(f"  failed requests: {len(client.failures)}")
    for failure in client.failures[:5]:
        print(f"    {failure}")
    failures += len(client.failures)

    node_ns = lab.plan.node("node1").netns
    print("\nlook around:")
    print(f"  KUBECONFIG={lab.kubeconfig} kubectl get pods -o wide")
    print(f"  kproxy rules --netns {node_ns}")
    print(f"  ip netns exec {node_ns} iptables-save -t nat | grep KUBE")
    print(f"  kproxy lab status --name {name}")
    print("try it yourself:")
    print(f"  ip netns exec {client_ns} python3 -c \"import socket; s=socket.create_connection(('{ip}', 80)); "
          f"s.sendall(b'hi\\n'); print(s.recv(100).decode())\"")
    print("tear down:")
    print(f"  kproxy lab down --name {name}    (or: make demo-down)")
    return 0 if failures == 0 else 1


def _current_pods(lab: Lab) -> list[str]:
    """Pods of the Deployment's current ReplicaSet (its pod-template-hash)."""
    from kproxy.api.resources import PODS, REPLICA_SETS

    sets = lab.client.list(REPLICA_SETS, "default", label_selector=f"app={APP}")["items"]
    newest = max(sets, key=lambda rs: int((rs["metadata"].get("annotations") or {})
                                          .get("deployment.kubernetes.io/revision", "0")))
    template_hash = (newest["metadata"].get("labels") or {}).get("pod-template-hash")
    items = lab.client.list(PODS, "default", label_selector=f"app={APP},pod-template-hash={template_hash}")["items"]
    return [p["metadata"]["name"] for p in items]
