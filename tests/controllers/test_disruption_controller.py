"""ReplicationControllers, the disruption controller and `kubectl drain` against the real
apiserver, with the controllers in a thread and the fake kubelet (tests/controllers/
fake_kubelet.py) marking pods Running and Ready; the drain test adds the scheduler."""
from __future__ import annotations

import asyncio
import copy
import shutil
import subprocess
import threading

import pytest

from kproxy.api.resources import DEPLOYMENTS, EVENTS, NODES, POD_DISRUPTION_BUDGETS, PODS, REPLICATION_CONTROLLERS
from kproxy.client.rest import ApiClient
from kproxy.client.sync import Client
from kproxy.scheduler.loop import run_scheduler
from tests.apiserver.fixtures import start_apiserver
from tests.controllers.conftest import ControllersThread, wait_status
from tests.controllers.fake_kubelet import FakeKubelet
from tests.controllers.loopthread import LoopThread
from tests.controllers.test_scheduler_apiserver import node
from tests.unit.workload_objects import DEPLOYMENT, TEMPLATE

KUBECTL = shutil.which("kubectl")
WAIT = 60.0  # generous bounds: the loops end as soon as the condition holds


def live_pods(client: Client, owner_uid: str | None = None, ns: str = "default") -> list[dict]:
    return [p for p in client.list(PODS, ns)["items"] if not p["metadata"].get("deletionTimestamp") and
            (owner_uid is None or any(r.get("uid") == owner_uid for r in p["metadata"].get("ownerReferences") or []))]


def pdb_status(client: Client, name: str, want: dict) -> dict:
    return wait_status(client, POD_DISRUPTION_BUDGETS, name, want, timeout=WAIT)


def test_replication_controller_scales_adopts_and_orphans(env, kubelet):
    c = env.client
    rc = c.create(REPLICATION_CONTROLLERS, {"metadata": {"name": "web", "namespace": "default"},
                                            "spec": {"replicas": 3, "template": copy.deepcopy(TEMPLATE)}})
    uid = rc["metadata"]["uid"]

    def status(want):
        return c.wait_for(lambda c: (lambda s: s if all(s.get(k) == v for k, v in want.items()) else None)(
            c.get(REPLICATION_CONTROLLERS, "web", "default").get("status") or {}), timeout=WAIT)
    got = status({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "observedGeneration": 1})
    assert "terminatingReplicas" not in got  # not a field of an RC's status
    pods = live_pods(c, uid)
    assert len(pods) == 3 and all(p["metadata"]["name"].startswith("web-") for p in pods)
    assert {(r["kind"], r["apiVersion"]) for p in pods for r in p["metadata"]["ownerReferences"]} == \
        {("ReplicationController", "v1")}

    # a matching orphan is adopted, and then one pod too many is deleted
    c.create(PODS, {"metadata": {"name": "stray", "namespace": "default", "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    c.wait_for(lambda c: len(live_pods(c)) == 3 and len(live_pods(c, uid)) == 3, timeout=WAIT)
    reasons = {e["reason"] for e in c.list(EVENTS, "default")["items"]
               if e["involvedObject"].get("kind") == "ReplicationController"}
    assert {"SuccessfulCreate", "SuccessfulDelete"} <= reasons

    # deleted with propagationPolicy=Orphan: the pods stay, without their controller
    c.delete(REPLICATION_CONTROLLERS, "web", "default", propagation_policy="Orphan")
    c.wait_for(lambda c: c.get_or_none(REPLICATION_CONTROLLERS, "web", "default") is None, timeout=WAIT)
    c.wait_for(lambda c: len(live_pods(c)) == 3 and not any(p["metadata"].get("ownerReferences")
                                                            for p in live_pods(c)), timeout=WAIT)


def evict(server, name: str) -> tuple[int, dict]:
    return server.http().call("POST", f"/api/v1/namespaces/default/pods/{name}/eviction",
                              {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}})


def test_budget_status_follows_the_deployment_and_gates_evictions(env, kubelet):
    c = env.client
    c.create(DEPLOYMENTS, copy.deepcopy(DEPLOYMENT))  # 3 replicas of app=web
    c.create(POD_DISRUPTION_BUDGETS, {"metadata": {"name": "web", "namespace": "default"},
                                      "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    status = pdb_status(c, "web", {"expectedPods": 3, "desiredHealthy": 2, "currentHealthy": 3,
                                   "disruptionsAllowed": 1, "observedGeneration": 1})
    assert [(x["type"], x["status"], x["reason"]) for x in status["conditions"]] == \
        [("DisruptionAllowed", "True", "SufficientPods")]

    first, second = sorted(p["metadata"]["name"] for p in live_pods(c))[:2]
    assert evict(env.server, first)[0] == 201
    code, refused = evict(env.server, second)  # before a replacement is ready the budget is spent
    assert code == 429 and refused["reason"] == "TooManyRequests"
    # the ReplicaSet replaces the evicted pod; once it is ready the budget allows one again
    pdb_status(c, "web", {"currentHealthy": 3, "disruptionsAllowed": 1})
    assert first not in {p["metadata"]["name"] for p in live_pods(c)}
    assert evict(env.server, second)[0] == 201

    # a percent minAvailable counts against the Deployment's scale: 100% allows nothing
    c.patch(POD_DISRUPTION_BUDGETS, "web", {"spec": {"maxUnavailable": None, "minAvailable": "100%"}}, "default",
            "merge")
    status = pdb_status(c, "web", {"observedGeneration": 2, "currentHealthy": 3, "desiredHealthy": 3})
    assert status["disruptionsAllowed"] == 0 and status["expectedPods"] == 3
    code, refused = evict(env.server, live_pods(c)[0]["metadata"]["name"])
    assert code == 429 and "needs 3 healthy pods and has 3 currently" in refused["details"]["causes"][0]["message"]

    # a pod without a controller has no scale to count: a Warning says so, nothing may be disrupted
    c.create(PODS, {"metadata": {"name": "loose", "namespace": "default", "labels": {"app": "loose"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    c.create(POD_DISRUPTION_BUDGETS, {"metadata": {"name": "loose", "namespace": "default"},
                                      "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "loose"}}}})
    pdb_status(c, "loose", {"observedGeneration": 1, "expectedPods": 0, "disruptionsAllowed": 0})
    warned = c.wait_for(lambda c: [e for e in c.list(EVENTS, "default")["items"]
                                   if e["reason"] == "UnmanagedPods" and e["involvedObject"]["name"] == "loose"],
                        timeout=WAIT)
    assert warned[0]["type"] == "Warning" and warned[0]["involvedObject"]["kind"] == "PodDisruptionBudget"


# -- kubectl drain ------------------------------------------------------------------------

class SchedulerThread(LoopThread):
    name = "test-scheduler"

    def __init__(self, kubeconfig: str):
        self._kubeconfig = kubeconfig
        super().__init__()

    async def body(self, stop: asyncio.Event) -> None:
        async with ApiClient.from_kubeconfig(self._kubeconfig) as client:
            self.started()
            await run_scheduler(client, stop, leader_elect=False)


@pytest.fixture
def cluster(tmp_path):
    """An apiserver with the controllers (nodes never go stale), the scheduler and the fake kubelet."""
    server = start_apiserver(tmp_path, ["--no-controllers"])
    threads: list[LoopThread] = []
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        threads.append(ControllersThread(server.kubeconfig, node_grace_period=3600, node_monitor_period=1.0))
        threads.append(SchedulerThread(server.kubeconfig))
        # as a kubelet, it starts only the pods bound to a node
        threads.append(FakeKubelet(server.kubeconfig, ready_after=lambda p: 0.0 if p["spec"].get("nodeName") else None))
        yield server, client
        assert all(t.error is None for t in threads), [t.error for t in threads]
    finally:
        for t in reversed(threads):
            t.stop()
        client.close()
        server.stop()


class ReadyWatch:
    """Polls the Deployment's ready, not deleting pods and keeps the fewest it ever saw."""

    def __init__(self, client: Client):
        self.client, self.fewest, self._stop = client, None, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready = sum(1 for p in live_pods(self.client) if any(
                x.get("type") == "Ready" and x.get("status") == "True" for x in p["status"].get("conditions") or []))
            self.fewest = ready if self.fewest is None else min(self.fewest, ready)
            self._stop.wait(0.05)

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join(10)
        return self.fewest


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_kubectl_drain_honours_the_budget(cluster):
    from tests.apiserver.test_kubectl import Kubectl
    server, c = cluster
    kubectl = Kubectl(server.kubeconfig)
    node(c, "node1")
    d = copy.deepcopy(DEPLOYMENT)
    d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 0
    c.create(DEPLOYMENTS, d)
    assert "poddisruptionbudget.policy/web created" in kubectl("create", "pdb", "web", "--selector=app=web",
                                                               "--max-unavailable=1")
    pdb_status(c, "web", {"currentHealthy": 3, "disruptionsAllowed": 1})
    assert {p["spec"]["nodeName"] for p in live_pods(c)} == {"node1"}
    node(c, "node2")
    assert kubectl("get", "pdb", "web", "--no-headers").split()[:4] == ["web", "N/A", "1", "1"]
    assert "Allowed disruptions:  1" in kubectl("describe", "pdb", "web")

    watch = ReadyWatch(c)
    proc = subprocess.run([KUBECTL, "drain", "node1", "--ignore-daemonsets", "--delete-emptydir-data",
                           "--timeout=180s"], capture_output=True, text=True, env=kubectl.env, timeout=240)
    fewest = watch.stop()
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    assert "node/node1 cordoned" in proc.stdout and "node/node1 drained" in proc.stdout
    assert proc.stdout.count("evicting pod default/web-") >= 3
    # the three evictions start together: the budget sends all but one back to retry
    assert "Cannot evict pod as it would violate the pod's disruption budget." in proc.stderr
    assert fewest is not None and fewest >= 2, f"more than one pod was down at once ({fewest} ready)"

    assert c.get(NODES, "node1")["spec"]["unschedulable"] is True
    # the last replacement may still be on its way when drain ends
    c.wait_for(lambda c: (lambda ps: len(ps) == 3 and {p["spec"].get("nodeName") for p in ps} == {"node2"})(
        live_pods(c)), timeout=WAIT)
    assert "node/node1 uncordoned" in kubectl("uncordon", "node1")
    assert not c.get(NODES, "node1")["spec"].get("unschedulable")
    assert "node/node2 cordoned" in kubectl("cordon", "node2")
