"""StatefulSet controller against the real apiserver (conftest's env), with the fake kubelet
(tests/controllers/fake_kubelet.py) marking pods Running and Ready after a short delay and
finishing deletions; driven by the client and by the real kubectl."""
from __future__ import annotations

import copy
import shutil
import subprocess

import pytest

from kproxy.api.resources import CONTROLLER_REVISIONS, EVENTS, PODS, STATEFUL_SETS
from tests.unit.set_workload_objects import STATEFUL_SET

WAIT = 60.0  # generous: the machine may be loaded; every wait ends as soon as it holds


@pytest.fixture
def kubelet_options() -> dict:
    return {"ready_after": lambda pod: 0.3, "finish_deletions": True}


def _ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


class Observer:
    """Polls the StatefulSet's pods, checking on every look that they form the ordinal prefix
    db-0..db-k with at most one of them not Ready (OrderedReady's guarantee)."""

    def __init__(self, client):
        self.client = client
        self.seen: list[list[str]] = []

    def look(self):
        pods = [p for p in self.client.list(PODS, "default")["items"] if p["metadata"]["name"].startswith("db-")]
        names = sorted((p["metadata"]["name"] for p in pods), key=lambda n: int(n.rsplit("-", 1)[1]))
        assert names == [f"db-{i}" for i in range(len(names))], names
        assert sum(1 for p in pods if not _ready(p)) <= 1, [(p["metadata"]["name"], _ready(p)) for p in pods]
        if not self.seen or self.seen[-1] != names:
            self.seen.append(names)
        return pods


def messages(client, reason):
    """The StatefulSet's Events of `reason`, in the order they were recorded."""
    events = [e for e in client.list(EVENTS, "default")["items"]
              if e["involvedObject"].get("name") == "db" and e["reason"] == reason]
    return [e["message"] for e in sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))]


def settled(client, replicas):
    sts = client.get(STATEFUL_SETS, "db", "default")
    s = sts.get("status") or {}
    ok = (s.get("observedGeneration") == sts["metadata"]["generation"] and s.get("replicas") == replicas
          and s.get("readyReplicas") == replicas and s.get("updatedReplicas") == replicas)
    return sts if ok else None


def test_ordered_creation_reverse_deletion_and_identity(env, kubelet):
    c = env.client
    c.create(STATEFUL_SETS, copy.deepcopy(STATEFUL_SET))
    watch = Observer(c)
    c.wait_for(lambda c: watch.look() and settled(c, 3), timeout=WAIT, interval=0.02)
    assert watch.seen[-3:] == [["db-0"], ["db-0", "db-1"], ["db-0", "db-1", "db-2"]] and watch.seen[0] in ([], ["db-0"])
    pod = c.get(PODS, "db-1", "default")
    labels = pod["metadata"]["labels"]
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("db-1", "db")
    assert (labels["statefulset.kubernetes.io/pod-name"], labels["apps.kubernetes.io/pod-index"]) == ("db-1", "1")
    sts = c.get(STATEFUL_SETS, "db", "default")
    assert labels["controller-revision-hash"] == sts["status"]["currentRevision"] == sts["status"]["updateRevision"]

    c.patch(STATEFUL_SETS, "db", {"spec": {"replicas": 0}}, "default")
    watch.seen.clear()
    c.wait_for(lambda c: watch.look() == [] and settled(c, 0), timeout=WAIT, interval=0.02)
    assert watch.seen[-1] == []
    assert c.wait_for(lambda c: len(m := messages(c, "SuccessfulDelete")) == 3 and m, timeout=WAIT) == [
        f"delete Pod db-{i} in StatefulSet db successful" for i in (2, 1, 0)]
    assert messages(c, "SuccessfulCreate") == [f"create Pod db-{i} in StatefulSet db successful" for i in (0, 1, 2)]


def test_rolling_update_highest_first_down_to_partition(env, kubelet):
    c = env.client
    sts = copy.deepcopy(STATEFUL_SET)
    sts["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}
    c.create(STATEFUL_SETS, sts)
    c.wait_for(lambda c: settled(c, 3), timeout=WAIT)
    old = c.get(STATEFUL_SETS, "db", "default")["status"]["currentRevision"]

    c.patch(STATEFUL_SETS, "db", {"spec": {"template": {"spec": {"containers": [{"name": "app",
                                                                                 "image": "nginx:1.26"}]}}}},
            "default", "strategic")
    order: list[str] = []

    def images(c):
        pods = {p["metadata"]["name"]: p for p in c.list(PODS, "default")["items"]}
        for name, pod in pods.items():
            if pod["spec"]["containers"][0]["image"] == "nginx:1.26" and name not in order:
                order.append(name)
        s = c.get(STATEFUL_SETS, "db", "default")["status"]
        return s.get("updatedReplicas") == 2 and s.get("readyReplicas") == 3 and len(pods) == 3 and s

    status = c.wait_for(images, timeout=WAIT, interval=0.02)
    assert order == ["db-2", "db-1"]  # highest first; db-0 is below the partition
    assert c.get(PODS, "db-0", "default")["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert status["currentRevision"] == old != status["updateRevision"]
    assert status["currentReplicas"] == 1

    c.patch(STATEFUL_SETS, "db", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}, "default")
    status = c.wait_for(lambda c: (s := c.get(STATEFUL_SETS, "db", "default")["status"]).get(
        "currentRevision") == s.get("updateRevision") and s.get("currentReplicas") == 3 and s, timeout=WAIT)
    assert c.get(PODS, "db-0", "default")["spec"]["containers"][0]["image"] == "nginx:1.26"
    revisions = sorted(c.list(CONTROLLER_REVISIONS, "default")["items"], key=lambda r: r["revision"])
    assert [r["metadata"]["name"] for r in revisions] == [old, status["updateRevision"]]


def test_parallel_creates_at_once(env):
    """No kubelet: with Parallel every pod is created although none becomes ready."""
    c = env.client
    sts = copy.deepcopy(STATEFUL_SET)
    sts["spec"]["podManagementPolicy"] = "Parallel"
    c.create(STATEFUL_SETS, sts)
    c.wait_for(lambda c: sorted(p["metadata"]["name"] for p in c.list(PODS, "default")["items"])
               == ["db-0", "db-1", "db-2"], timeout=WAIT)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_get_scale_rollout(env, kubelet):
    c = env.client
    c.create(STATEFUL_SETS, copy.deepcopy(STATEFUL_SET))

    def kubectl(*args):
        r = subprocess.run(["kubectl", "--kubeconfig", env.server.kubeconfig, *args], capture_output=True, text=True,
                           timeout=WAIT)
        assert r.returncode == 0 and r.stderr == "", (args, r.stdout, r.stderr)
        return r.stdout

    assert "partitioned roll out complete: 3 new pods have been updated" in kubectl(
        "rollout", "status", "statefulset/db", "--timeout=60s")
    header, row = kubectl("get", "sts").splitlines()
    assert header.split() == ["NAME", "READY", "AGE"] and row.split()[:2] == ["db", "3/3"]
    kubectl("scale", "sts/db", "--replicas=1")
    c.wait_for(lambda c: settled(c, 1), timeout=WAIT)
    kubectl("set", "image", "sts/db", "app=nginx:1.27")
    kubectl("rollout", "status", "sts/db", "--timeout=60s")
    history = kubectl("rollout", "history", "statefulset/db").splitlines()
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2"]
    assert "db" in kubectl("get", "ds,sts")
    kubectl("delete", "statefulset", "db")
    c.wait_for(lambda c: not c.list(PODS, "default")["items"] and not c.list(CONTROLLER_REVISIONS, "default")["items"],
               timeout=WAIT)
