"""DaemonSet controller against the real apiserver: the controllers (conftest's env), the
scheduler binding the pinned daemon pods, a heartbeat keeping the nodes Ready and the fake
kubelet (tests/controllers/fake_kubelet.py) marking pods Running and Ready; driven by the
client and by the real kubectl (rollout status|history, get)."""
from __future__ import annotations

import asyncio
import copy
import shutil
import subprocess

import pytest

from kproxy.api.resources import CONTROLLER_REVISIONS, DAEMON_SETS, EVENTS, NODES, PODS
from kproxy.client.heartbeat import NodeHeartbeat
from kproxy.client.rest import ApiClient
from kproxy.scheduler.loop import run_scheduler
from tests.controllers.fake_kubelet import FakeKubelet
from tests.controllers.loopthread import LoopThread
from tests.unit.set_workload_objects import DAEMON_SET

WAIT = 60.0  # generous: the machine may be loaded; every wait ends as soon as it holds


class SchedulerAndHeartbeat(LoopThread):
    """The scheduler (binds the daemon pods) and a heartbeat for `node_names` (which the test
    may extend), so the node lifecycle controller keeps the nodes Ready."""

    name = "scheduler-heartbeat"

    def __init__(self, kubeconfig: str):
        self._kubeconfig = kubeconfig
        self.heartbeat: NodeHeartbeat | None = None
        super().__init__()

    async def body(self, stop: asyncio.Event) -> None:
        async with ApiClient.from_kubeconfig(self._kubeconfig) as client:
            self.heartbeat = NodeHeartbeat(client, [], interval=0.3)
            self.started()
            await asyncio.gather(run_scheduler(client, stop, leader_elect=False), self.heartbeat.run(stop))


@pytest.fixture
def cluster(env):
    helpers = SchedulerAndHeartbeat(env.server.kubeconfig)
    kubelet = FakeKubelet(env.server.kubeconfig, ready_after=lambda pod: 0.2, finish_deletions=True)
    try:
        yield helpers
    finally:
        kubelet.stop()
        helpers.stop()
        assert helpers.error is None, f"scheduler or heartbeat crashed: {helpers.error!r}"


def add_node(client, cluster, name, labels=None, taints=None):
    cluster.heartbeat.node_names.append(name)
    node = client.create(NODES, {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
                                 "spec": {"taints": taints} if taints else {}})
    capacity = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    node["status"] = {"capacity": capacity, "allocatable": capacity,
                      "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
    return client.update_status(NODES, node)


def daemon_pods(client, name="agent"):
    return [p for p in client.list(PODS, "default")["items"]
            if any(r.get("name") == name and r.get("kind") == "DaemonSet"
                   for r in p["metadata"].get("ownerReferences") or [])
            and not p["metadata"].get("deletionTimestamp")]


def placed(client, nodes, name="agent"):
    """The daemon pods when exactly one runs (bound, Ready) on each of `nodes` and no others."""
    pods = daemon_pods(client, name)
    where = sorted(p["spec"].get("nodeName") or "" for p in pods)
    ready = all(any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
                for p in pods)
    return pods if where == sorted(nodes) and ready else None


def settled(client, desired, name="agent"):
    ds = client.get(DAEMON_SETS, name, "default")
    s = ds.get("status") or {}
    ok = (s.get("observedGeneration") == ds["metadata"]["generation"] and s.get("desiredNumberScheduled") == desired
          and s.get("updatedNumberScheduled") == desired and s.get("numberAvailable") == desired
          and s.get("currentNumberScheduled") == desired)
    return ds if ok else None


def test_one_pod_per_node_following_nodes_and_taints(env, cluster):
    c = env.client
    for n in ("n1", "n2"):
        add_node(c, cluster, n)
    add_node(c, cluster, "gpu1", labels={"gpu": "true"})
    ds = copy.deepcopy(DAEMON_SET)
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    for n in ("n1", "n2"):
        c.patch(NODES, n, {"metadata": {"labels": {"kubernetes.io/os": "linux"}}})
    c.create(DAEMON_SETS, ds)
    pods = c.wait_for(lambda c: placed(c, ["n1", "n2"]), timeout=WAIT)
    pod = pods[0]
    assert pod["metadata"]["generateName"] == "agent-"
    assert pod["metadata"]["labels"]["controller-revision-hash"]
    keys = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
    assert {("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/unschedulable", "NoSchedule")} <= keys
    [term] = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    assert term["matchFields"][0]["values"] == [pod["spec"]["nodeName"]]
    c.wait_for(lambda c: settled(c, 2), timeout=WAIT)

    # a node joining with the label gets a pod; one losing it loses its pod
    add_node(c, cluster, "n3", labels={"kubernetes.io/os": "linux"})
    c.wait_for(lambda c: placed(c, ["n1", "n2", "n3"]), timeout=WAIT)
    c.patch(NODES, "n1", {"metadata": {"labels": {"kubernetes.io/os": None}}})
    c.wait_for(lambda c: placed(c, ["n2", "n3"]), timeout=WAIT)

    # NoSchedule keeps the running pod, NoExecute removes it; a tolerated taint changes nothing
    c.patch(NODES, "n2", {"spec": {"taints": [{"key": "maintenance", "effect": "NoSchedule"}]}})
    c.wait_for(lambda c: settled(c, 1) and c.get(DAEMON_SETS, "agent", "default")["status"].get(
        "numberMisscheduled") == 1, timeout=WAIT)
    assert placed(c, ["n2", "n3"])
    c.patch(NODES, "n2", {"spec": {"taints": [{"key": "maintenance", "effect": "NoExecute"}]}})
    c.wait_for(lambda c: placed(c, ["n3"]), timeout=WAIT)

    # a node that leaves takes its pod with it
    c.delete(NODES, "n3")
    c.wait_for(lambda c: daemon_pods(c) == [], timeout=WAIT)
    ds = c.wait_for(lambda c: (d := c.get(DAEMON_SETS, "agent", "default"))["status"].get(
        "desiredNumberScheduled") == 0 and d, timeout=WAIT)
    reasons = {e["reason"] for e in c.list(EVENTS, "default")["items"] if e["involvedObject"].get("name") == "agent"}
    assert {"SuccessfulCreate", "SuccessfulDelete"} <= reasons


def test_rolling_update_keeps_max_unavailable(env, cluster):
    c = env.client
    nodes = ["r1", "r2", "r3", "r4"]
    for n in nodes:
        add_node(c, cluster, n)
    c.create(DAEMON_SETS, copy.deepcopy(DAEMON_SET))
    c.wait_for(lambda c: settled(c, 4), timeout=WAIT)
    revisions = c.list(CONTROLLER_REVISIONS, "default")["items"]
    assert [r["revision"] for r in revisions] == [1]

    c.patch(DAEMON_SETS, "agent", {"spec": {"template": {"spec": {"containers": [{"name": "app",
                                                                                  "image": "nginx:1.26"}]}}}},
            "default", "strategic")
    worst = len(nodes)

    def done(c):
        nonlocal worst
        pods = daemon_pods(c)
        available = {p["spec"].get("nodeName") for p in pods
                     if any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions") or [])}
        worst = min(worst, len(available))
        images = {p["spec"]["containers"][0]["image"] for p in pods}
        return settled(c, 4) and images == {"nginx:1.26"} and len(pods) == 4

    c.wait_for(done, timeout=WAIT, interval=0.02)
    assert worst >= len(nodes) - 1  # maxUnavailable 1 (the default)
    revisions = sorted(c.list(CONTROLLER_REVISIONS, "default")["items"], key=lambda r: r["revision"])
    assert [r["revision"] for r in revisions] == [1, 2]
    assert revisions[1]["data"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"

    # a failed pod is replaced (after a backoff), with a Warning Event
    victim = daemon_pods(c)[0]
    c.update_status(PODS, {**victim, "status": {**victim["status"], "phase": "Failed"}})
    c.wait_for(lambda c: (pods := placed(c, nodes)) and victim["metadata"]["uid"] not in
               {p["metadata"]["uid"] for p in pods}, timeout=WAIT)
    assert any(e["reason"] == "FailedDaemonPod" and e["type"] == "Warning" and victim["metadata"]["name"] in e["message"]
               for e in c.list(EVENTS, "default")["items"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_get_rollout_status_and_history(env, cluster):
    c = env.client
    add_node(c, cluster, "k1")
    c.create(DAEMON_SETS, copy.deepcopy(DAEMON_SET))

    def kubectl(*args, timeout=WAIT):
        r = subprocess.run(["kubectl", "--kubeconfig", env.server.kubeconfig, *args], capture_output=True, text=True,
                           timeout=timeout)
        assert r.returncode == 0 and r.stderr == "", (args, r.stdout, r.stderr)
        return r.stdout

    out = kubectl("rollout", "status", "daemonset/agent", "--timeout=60s")
    assert 'daemon set "agent" successfully rolled out' in out
    c.wait_for(lambda c: settled(c, 1), timeout=WAIT)
    header, row = kubectl("get", "ds").splitlines()
    assert header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR",
                              "AGE"]
    assert row.split()[:7] == ["agent", "1", "1", "1", "1", "1", "<none>"]
    kubectl("annotate", "ds/agent", "kubernetes.io/change-cause=second image")
    kubectl("set", "image", "ds/agent", "app=nginx:1.27")
    kubectl("rollout", "status", "ds/agent", "--timeout=60s")
    history = kubectl("rollout", "history", "daemonset/agent").splitlines()
    assert history[0].strip() == "daemonset.apps/agent"
    assert [line.split(None, 1) for line in history[2:] if line.strip()] == [["1", "<none>"], ["2", "second image"]]
    assert "nginx:1.27" in kubectl("rollout", "history", "daemonset/agent", "--revision=2")
    assert "rolled back" in kubectl("rollout", "undo", "daemonset/agent")
    kubectl("rollout", "status", "ds/agent", "--timeout=60s")
    ds = c.get(DAEMON_SETS, "agent", "default")
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    history = kubectl("rollout", "history", "daemonset/agent").splitlines()
    assert [line.split(None, 1)[0] for line in history[2:] if line.strip()] == ["2", "3"]  # 1 came back as 3
    assert "agent" in kubectl("get", "controllerrevisions")
    assert "maxUnavailable" in kubectl("explain", "daemonset.spec.updateStrategy.rollingUpdate")
    # the garbage collector takes the pods and the history with the DaemonSet
    kubectl("delete", "daemonset", "agent", "--cascade=foreground")
    c.wait_for(lambda c: not daemon_pods(c) and not c.list(CONTROLLER_REVISIONS, "default")["items"], timeout=WAIT)
