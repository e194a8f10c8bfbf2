"""Deployment controller against the real apiserver, with the fake kubelet
(tests/controllers/fake_kubelet.py) marking pods Running and Ready, driven by the client and
by the real kubectl (rollout status|history|undo|restart|pause|resume, scale, set image)."""
from __future__ import annotations

import copy
import random
import shutil

import pytest

from kproxy.api.resources import DEPLOYMENTS, PODS, REPLICA_SETS
from tests.controllers.fake_kubelet import FakeKubelet
from tests.unit.workload_objects import DEPLOYMENT


def replica_sets(client, name="web"):
    d = client.get(DEPLOYMENTS, name, "default")
    return sorted((rs for rs in client.list(REPLICA_SETS, "default")["items"]
                   if any(r["uid"] == d["metadata"]["uid"] for r in rs["metadata"].get("ownerReferences") or [])),
                  key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))


def wait_complete(client, name="web", replicas=3, timeout=60):
    def check(c):
        d = c.get(DEPLOYMENTS, name, "default")
        s = d.get("status") or {}
        ok = (s.get("observedGeneration") == d["metadata"]["generation"] and s.get("updatedReplicas") == replicas
              and s.get("availableReplicas") == replicas and s.get("replicas") == replicas)
        return d if ok else None
    return client.wait_for(check, timeout=timeout)


def condition(d, kind):
    return next(c for c in d["status"]["conditions"] if c["type"] == kind)


def test_rollout_and_new_template(env, kubelet):
    c = env.client
    c.create(DEPLOYMENTS, copy.deepcopy(DEPLOYMENT))
    d = wait_complete(c)
    assert condition(d, "Available")["status"] == "True"
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    [rs1] = replica_sets(c)
    pod_hash = rs1["metadata"]["labels"]["pod-template-hash"]
    assert rs1["metadata"]["name"] == f"web-{pod_hash}" and rs1["spec"]["selector"]["matchLabels"]["pod-template-hash"] == pod_hash
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

    c.patch(DEPLOYMENTS, "web", {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}},
            "default", "strategic")
    d = wait_complete(c)
    old, new = replica_sets(c)
    assert old["spec"]["replicas"] == 0 and new["spec"]["replicas"] == 3
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    pods = c.list(PODS, "default")["items"]
    assert len(pods) == 3 and all(p["metadata"]["labels"]["pod-template-hash"] != pod_hash for p in pods)


def test_recreate_and_history_limit(env, kubelet):
    c = env.client
    d = copy.deepcopy(DEPLOYMENT)
    d["spec"].update(strategy={"type": "Recreate"}, revisionHistoryLimit=1, replicas=2)
    c.create(DEPLOYMENTS, d)
    wait_complete(c, replicas=2)
    for image in ("nginx:1.26", "nginx:1.27"):
        c.patch(DEPLOYMENTS, "web", {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}},
                "default", "strategic")
        wait_complete(c, replicas=2)
    c.wait_for(lambda c: len(replica_sets(c)) == 2)  # the current one and one old one
    assert [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in replica_sets(c)] == [
        "nginx:1.26", "nginx:1.27"]


def test_progress_deadline_exceeded_when_pods_never_become_ready(env):
    c = env.client
    d = copy.deepcopy(DEPLOYMENT)
    d["spec"]["progressDeadlineSeconds"] = 2
    c.create(DEPLOYMENTS, d)

    def timed_out(c):
        status = c.get(DEPLOYMENTS, "web", "default").get("status") or {}
        cond = next((x for x in status.get("conditions") or [] if x["type"] == "Progressing"), None)
        return cond if cond and cond["reason"] == "ProgressDeadlineExceeded" else None
    cond = c.wait_for(timed_out, timeout=60)
    assert cond["status"] == "False"


@pytest.mark.parametrize("seed", [1, 2])
def test_rolling_update_bounds_with_random_readiness_delays(env, seed):
    """Every pod event of two rollouts, with a kubelet that makes each pod ready after a random
    delay: never more than replicas + maxSurge pods, never fewer than replicas - maxUnavailable
    ready ones (the fake kubelet's readiness is availability here: minReadySeconds is 0)."""
    rng = random.Random(seed)
    kubelet = FakeKubelet(env.server.kubeconfig, ready_after=lambda pod: rng.uniform(0.0, 0.6))
    try:
        c = env.client
        d = copy.deepcopy(DEPLOYMENT)
        d["spec"].update(replicas=5, strategy={"type": "RollingUpdate",
                                               "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "20%"}})
        c.create(DEPLOYMENTS, d)
        wait_complete(c, replicas=5)
        api = env.server.http()
        for image in ("nginx:1.26", "nginx:1.27"):
            rv = c.list(PODS, "default")["metadata"]["resourceVersion"]
            pods = {p["metadata"]["uid"]: p for p in c.list(PODS, "default")["items"]}
            with api.watch(f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}", timeout=60) as stream:
                c.patch(DEPLOYMENTS, "web", {"spec": {"template": {"spec": {
                    "containers": [{"name": "app", "image": image}]}}}}, "default", "strategic")
                most, fewest_ready = 0, 5
                while True:
                    ev = stream.next()
                    assert ev is not None, "watch ended"
                    pod = ev["object"]
                    if ev["type"] == "DELETED":
                        pods.pop(pod["metadata"]["uid"], None)
                    else:
                        pods[pod["metadata"]["uid"]] = pod
                    live = [p for p in pods.values() if not p["metadata"].get("deletionTimestamp")]
                    ready = [p for p in live if any(x["type"] == "Ready" and x["status"] == "True"
                                                    for x in (p.get("status") or {}).get("conditions") or [])]
                    most, fewest_ready = max(most, len(live)), min(fewest_ready, len(ready))
                    assert len(live) <= 5 + 2 and len(ready) >= 5 - 1, (len(live), len(ready))
                    if len(ready) == 5 and len(live) == 5 and all(
                            p["spec"]["containers"][0]["image"] == image for p in live):
                        break
            wait_complete(c, replicas=5)
            assert most > 5  # the surge was used
    finally:
        kubelet.stop()


KUBECTL = shutil.which("kubectl")


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_kubectl_rollout_commands(env, kubelet):
    from tests.apiserver.test_kubectl import Kubectl
    kubectl = Kubectl(env.server.kubeconfig)
    kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2")
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    kubectl("set", "image", "deployment/web", "nginx=nginx:1.26")
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    history = kubectl("rollout", "history", "deployment/web")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    assert "rolled back" in kubectl("rollout", "undo", "deployment/web")
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    d = kubectl.json("get", "deployment", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    assert "paused" in kubectl("rollout", "pause", "deployment/web")
    kubectl("set", "image", "deployment/web", "nginx=nginx:1.27")
    assert "deployment.apps/web scaled" in kubectl("scale", "deployment/web", "--replicas=3")
    env.client.wait_for(lambda c: sum(rs["spec"]["replicas"] for rs in replica_sets(c)) == 3)
    assert all(rs["spec"]["template"]["spec"]["containers"][0]["image"] != "nginx:1.27" for rs in replica_sets(env.client))
    assert "resumed" in kubectl("rollout", "resume", "deployment/web")
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert "restarted" in kubectl("rollout", "restart", "deployment/web")
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert len(kubectl("get", "pods", "-o", "name").split()) == 3
    lines = kubectl("get", "deployment", "web").splitlines()
    assert lines[1].split()[:4] == ["web", "3/3", "3", "3"]
    everything = kubectl("get", "all")
    assert "deployment.apps/web" in everything and "replicaset.apps/web-" in everything and "pod/web-" in everything
    described = kubectl("describe", "deployment", "web")
    assert "RollingUpdate" in described and "NewReplicaSetAvailable" in described and "ScalingReplicaSet" in described
    assert "service/web exposed" in kubectl("expose", "deployment", "web", "--port=80", "--target-port=8080")
    assert kubectl.json("get", "service", "web")["spec"]["selector"] == {"app": "web"}
