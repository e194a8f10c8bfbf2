"""ReplicaSet controller: the pure core, expectations against a lagging informer, and the
controller against the real apiserver with the fake kubelet (tests/controllers/fake_kubelet.py)
marking its pods Running and Ready."""
from __future__ import annotations

import asyncio
import copy

from kproxy.api.resources import EVENTS, NAMESPACES, PODS, REPLICA_SETS, RESOURCE_QUOTAS
from kproxy.controllers.base import SharedInformers
from kproxy.controllers.expectations import Expectations
from kproxy.controllers.ownership import claim
from kproxy.controllers.replicaset import ReplicaSetController, deletion_order, is_available, replica_set_status
from tests.controllers.conftest import wait_status
from tests.unit.workload_objects import REPLICA_SET


def _pod(name, *, node=None, phase="Pending", ready_at=None, created="2026-01-01T00:00:00Z", labels=None,
         owner_uid=None, restarts=0):
    conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}] if ready_at else []
    pod = {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "creationTimestamp": created,
                        "labels": {"app": "web"} if labels is None else labels},
           "spec": {"nodeName": node} if node else {},
           "status": {"phase": phase, "conditions": conditions,
                      "containerStatuses": [{"restartCount": restarts}]}}
    if owner_uid:
        pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                               "uid": owner_uid, "controller": True}]
    return pod


def test_deletion_order_least_useful_first():
    pods = [
        _pod("ready-old", node="n", phase="Running", ready_at="2026-01-01T00:00:10Z"),
        _pod("ready-new", node="n", phase="Running", ready_at="2026-01-01T00:05:00Z"),
        _pod("running-not-ready", node="n", phase="Running"),
        _pod("pending-scheduled", node="n"),
        _pod("unscheduled", created="2026-01-01T00:00:00Z"),
        _pod("unscheduled-newer", created="2026-01-01T00:01:00Z"),
        _pod("ready-old-restarts", node="n", phase="Running", ready_at="2026-01-01T00:00:10Z", restarts=3),
    ]
    assert [p["metadata"]["name"] for p in deletion_order(pods)] == [
        "unscheduled-newer", "unscheduled", "pending-scheduled", "running-not-ready", "ready-new",
        "ready-old-restarts", "ready-old"]


def test_available_after_min_ready_seconds():
    pod = _pod("p", phase="Running", ready_at="2026-01-01T00:00:00Z")
    t0 = 1767225600.0  # 2026-01-01T00:00:00Z
    assert is_available(pod, 0, t0) and not is_available(pod, 10, t0 + 9) and is_available(pod, 10, t0 + 10)
    assert not is_available(_pod("q"), 0, t0)
    rs = copy.deepcopy(REPLICA_SET)
    rs["metadata"].update(uid="rs-uid", generation=4)
    rs["spec"]["minReadySeconds"] = 10
    status = replica_set_status(rs, [pod, _pod("q")], t0 + 5, None)
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"], status["observedGeneration"]) \
        == (2, 1, 0, 4)


def test_claim_adopts_orphans_and_releases_strays():
    rs = copy.deepcopy(REPLICA_SET)
    rs["metadata"]["uid"] = "rs-uid"
    mine = _pod("mine", owner_uid="rs-uid")
    stray = _pod("stray", owner_uid="rs-uid", labels={"app": "other"})
    orphan = _pod("orphan")
    foreign = _pod("foreign", owner_uid="someone-else")
    unmatched = _pod("unmatched", labels={"app": "db"})
    c = claim(rs, [mine, stray, orphan, foreign, unmatched])
    names = lambda pods: sorted(p["metadata"]["name"] for p in pods)  # noqa: E731
    assert (names(c.owned), names(c.adopt), names(c.release)) == (["mine", "orphan"], ["orphan"], ["stray"])


def test_expectations_wait_for_observed_writes():
    clock = [0.0]
    e = Expectations(ttl=60, clock=lambda: clock[0])
    assert e.satisfied("ns/rs")
    e.expect_creations("ns/rs", 2)
    e.expect_deletions("ns/rs", ["ns/p1"])
    e.creation_observed("ns/rs")
    e.creation_observed("ns/rs")
    assert not e.satisfied("ns/rs")
    e.deletion_observed("ns/rs", "ns/p1")
    assert e.satisfied("ns/rs")
    e.expect_creations("ns/rs", 1)
    clock[0] = 61
    assert e.satisfied("ns/rs")  # expired: a lost event does not stall the owner


class _LaggingInformer:
    """An informer whose cache never sees new pods (the slowest possible watch)."""

    def __init__(self, objs=()):
        self.cache = {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in objs}

    def add_handler(self, handler):
        pass

    def get(self, name, namespace=None):
        return self.cache.get(f"{namespace}/{name}")

    def list(self, namespace=None):
        return list(self.cache.values())


class _RecordingClient:
    def __init__(self):
        self.created = []

    async def create(self, resource, obj, namespace=None):
        if resource == PODS:
            obj = copy.deepcopy(obj)
            obj["metadata"].update(name=f"web-{len(self.created)}", uid=f"u{len(self.created)}")
            self.created.append(obj)
        return obj

    async def update_status(self, resource, obj):
        return obj


def test_a_lagging_informer_never_doubles_creates():
    """Reconciling again before the informer shows the new pods creates nothing more."""
    rs = copy.deepcopy(REPLICA_SET)
    rs["metadata"].update(uid="rs-uid", generation=1)
    client = _RecordingClient()
    informers = SharedInformers(client)
    informers._informers[REPLICA_SETS] = _LaggingInformer([rs])
    informers._informers[PODS] = _LaggingInformer()

    async def run():
        controller = ReplicaSetController(client, informers)
        for _ in range(3):
            await controller.reconcile("default/web")
        await controller.events.drain()
    asyncio.run(run())
    assert len(client.created) == 3
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == "rs-uid" for p in client.created)


# -- against the apiserver ------------------------------------------------------------------


def owned_pods(client, rs_name="web"):
    rs = client.get(REPLICA_SETS, rs_name, "default")
    return [p for p in client.list(PODS, "default")["items"]
            if any(r.get("uid") == rs["metadata"]["uid"] for r in p["metadata"].get("ownerReferences") or [])
            and not p["metadata"].get("deletionTimestamp")]


def rs_status(client, want: dict, name="web", timeout=30):
    return wait_status(client, REPLICA_SETS, name, want, timeout=timeout)


def test_replica_set_scales_adopts_and_releases(env, kubelet):
    c = env.client
    c.create(REPLICA_SETS, copy.deepcopy(REPLICA_SET))
    rs_status(c, {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "observedGeneration": 1})
    pods = owned_pods(c)
    assert len(pods) == 3 and all(p["metadata"]["name"].startswith("web-") for p in pods)
    assert all(p["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] for p in pods)

    c.patch(REPLICA_SETS, "web", {"spec": {"replicas": 1}}, "default")
    rs_status(c, {"replicas": 1, "observedGeneration": 2})
    assert len(owned_pods(c)) == 1

    # an orphan with matching labels is adopted, and then one pod too many is deleted
    c.create(PODS, {"metadata": {"name": "stray", "namespace": "default", "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    rs_status(c, {"replicas": 1, "readyReplicas": 1})
    c.wait_for(lambda c: len(owned_pods(c)) == 1 and len(c.list(PODS, "default")["items"]) == 1)

    # a pod relabelled away is released (its controller reference removed) and replaced
    kept = owned_pods(c)[0]
    c.patch(PODS, kept["metadata"]["name"], {"metadata": {"labels": {"app": "debug"}}}, "default")
    def released_pod(c):
        pod = c.get(PODS, kept["metadata"]["name"], "default")
        return pod if not pod["metadata"].get("ownerReferences") else None
    released = c.wait_for(released_pod)
    assert released["metadata"]["labels"] == {"app": "debug"}
    c.wait_for(lambda c: len(owned_pods(c)) == 1 and owned_pods(c)[0]["metadata"]["name"] != kept["metadata"]["name"])

    reasons = {e["reason"] for e in c.list(EVENTS, "default")["items"]
               if e["involvedObject"].get("kind") == "ReplicaSet"}
    assert {"SuccessfulCreate", "SuccessfulDelete"} <= reasons


def test_a_refused_create_gets_a_condition_and_an_event_and_the_others_go_on(env, kubelet):
    c = env.client
    c.create(NAMESPACES, {"metadata": {"name": "tight"}})
    c.create(RESOURCE_QUOTAS, {"metadata": {"name": "no-pods", "namespace": "tight"}, "spec": {"hard": {"pods": "0"}}})
    c.wait_for(lambda c: (c.get(RESOURCE_QUOTAS, "no-pods", "tight").get("status") or {}).get("hard"))
    bad = copy.deepcopy(REPLICA_SET)
    bad["metadata"].update(name="bad", namespace="tight")
    c.create(REPLICA_SETS, bad)
    good = copy.deepcopy(REPLICA_SET)
    good["metadata"]["name"] = "good"
    good["spec"].update(replicas=2, selector={"matchLabels": {"app": "good"}})
    good["spec"]["template"]["metadata"]["labels"] = {"app": "good"}
    c.create(REPLICA_SETS, good)
    rs_status(c, {"readyReplicas": 2}, name="good")

    def failure(c):
        conds = (c.get(REPLICA_SETS, "bad", "tight").get("status") or {}).get("conditions") or []
        return next((x for x in conds if x["type"] == "ReplicaFailure" and x["status"] == "True"), None)
    cond = c.wait_for(failure)
    assert cond["reason"] == "FailedCreate" and "forbidden" in cond["message"].lower()
    warnings = c.wait_for(lambda c: [e for e in c.list(EVENTS, "tight")["items"] if e["reason"] == "FailedCreate"])
    assert warnings[0]["type"] == "Warning" and warnings[0]["involvedObject"]["name"] == "bad"
    assert c.list(PODS, "tight")["items"] == []
