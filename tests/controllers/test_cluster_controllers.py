"""Namespace, ServiceAccount, ResourceQuota and node lifecycle controllers against the real
apiserver (node grace period NODE_GRACE seconds in these tests)."""
from __future__ import annotations

import datetime
import threading

from kproxy.api.resources import (
    ENDPOINT_SLICES, LEASES, NAMESPACES, NODES, PODS, RESOURCE_QUOTAS, SERVICE_ACCOUNTS, SERVICES,
)
from kproxy.api.status import ApiError
from tests.controllers.conftest import make_node, make_pod, make_service


def ready_status(obj):
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return cond["status"]
    return None


def test_default_service_account_created_and_recreated(env):
    c = env.client
    c.create(NAMESPACES, {"metadata": {"name": "team-a"}})
    c.wait_for(lambda c: c.get_or_none(SERVICE_ACCOUNTS, "default", "team-a"), timeout=20)
    first = c.get(SERVICE_ACCOUNTS, "default", "team-a")
    c.delete(SERVICE_ACCOUNTS, "default", "team-a")
    again = c.wait_for(lambda c: c.get_or_none(SERVICE_ACCOUNTS, "default", "team-a"), timeout=20)
    assert again["metadata"]["uid"] != first["metadata"]["uid"]
    # the system namespaces got theirs too
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        c.wait_for(lambda c, ns=ns: c.get_or_none(SERVICE_ACCOUNTS, "default", ns), timeout=20)


def test_namespace_deletion_removes_contents_then_namespace(env):
    c = env.client
    c.create(NAMESPACES, {"metadata": {"name": "doomed"}})
    make_service(c, "web", "doomed")
    make_pod(c, "web-1", "10.244.1.2", ns="doomed", labels={"app": "web"}, grace=0)
    make_pod(c, "web-2", "10.244.1.3", ns="doomed", labels={"app": "web"}, node=None)
    c.wait_for(lambda c: c.list(ENDPOINT_SLICES, "doomed")["items"], timeout=20)
    c.create(RESOURCE_QUOTAS, {"metadata": {"name": "q", "namespace": "doomed"}, "spec": {"hard": {"pods": "10"}}})
    c.delete(NAMESPACES, "doomed")
    c.wait_for(lambda c: c.get_or_none(NAMESPACES, "doomed") is None, timeout=30)
    for resource in (SERVICES, PODS, ENDPOINT_SLICES, SERVICE_ACCOUNTS, RESOURCE_QUOTAS):
        assert c.list(resource, "doomed")["items"] == [], resource.plural
    # other namespaces are untouched
    assert c.get(NAMESPACES, "default")["metadata"]["name"] == "default"


def test_namespace_waits_for_graceful_pods(env):
    """A pod in graceful deletion keeps the namespace Terminating; it is finalized only after
    the pod is really gone."""
    c = env.client
    c.create(NAMESPACES, {"metadata": {"name": "slow"}})
    make_pod(c, "p", "10.244.1.9", ns="slow", grace=300)
    c.delete(NAMESPACES, "slow")
    c.wait_for(lambda c: (c.get_or_none(PODS, "p", "slow") or {}).get("metadata", {}).get("deletionTimestamp"),
               timeout=20)
    ns = c.get(NAMESPACES, "slow")
    assert ns["metadata"].get("deletionTimestamp")
    assert "kubernetes" in ns["spec"]["finalizers"]
    c.delete(PODS, "p", "slow", grace_period_seconds=0)  # the "kubelet" confirms
    c.wait_for(lambda c: c.get_or_none(NAMESPACES, "slow") is None, timeout=30)


def test_quota_status_tracks_usage(env):
    c = env.client
    c.create(NAMESPACES, {"metadata": {"name": "quota"}})
    c.create(RESOURCE_QUOTAS, {"metadata": {"name": "q", "namespace": "quota"},
                               "spec": {"hard": {"pods": "5", "services": "3", "count/pods": "9",
                                                 "services.nodeports": "4", "services.loadbalancers": "1"}}})

    def used(c):
        return (c.get(RESOURCE_QUOTAS, "q", "quota").get("status") or {}).get("used")

    c.wait_for(lambda c: used(c) == {"pods": "0", "services": "0", "count/pods": "0",
                                     "services.nodeports": "0", "services.loadbalancers": "0"}, timeout=20)
    assert c.get(RESOURCE_QUOTAS, "q", "quota")["status"]["hard"]["pods"] == "5"
    make_pod(c, "a", "10.244.1.2", ns="quota")
    done = make_pod(c, "b", "10.244.1.3", ns="quota")
    done["status"]["phase"] = "Succeeded"
    c.update_status(PODS, done)
    c.create(SERVICES, {"metadata": {"name": "np", "namespace": "quota"},
                        "spec": {"type": "NodePort", "selector": {"a": "b"},
                                 "ports": [{"name": "x", "port": 80}, {"name": "y", "port": 81}]}})
    c.wait_for(lambda c: used(c) == {"pods": "1", "services": "1", "count/pods": "2",
                                     "services.nodeports": "2", "services.loadbalancers": "0"}, timeout=20)
    c.delete(SERVICES, "np", "quota")
    c.wait_for(lambda c: used(c)["services"] == "0" and used(c)["services.nodeports"] == "0", timeout=20)


def _lease(name: str, renew: str) -> dict:
    return {"metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew}}


def _micro_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_silent_node_becomes_unknown_and_its_pods_not_ready(env):
    c = env.client
    make_node(c, "alive")
    make_node(c, "silent")
    c.create(LEASES, _lease("alive", _micro_now()))
    make_service(c, "web")
    make_pod(c, "on-alive", "10.244.1.2", labels={"app": "web"}, node="alive")
    make_pod(c, "on-silent", "10.244.2.2", labels={"app": "web"}, node="silent")

    stop = threading.Event()

    def heartbeat():  # the "kubelet" of node alive renews its Lease
        while not stop.wait(0.3):
            try:
                lease = c.get(LEASES, "alive", "kube-node-lease")
                lease["spec"]["renewTime"] = _micro_now()
                c.update(LEASES, lease)
            except (ApiError, RuntimeError):
                pass

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        c.wait_for(lambda c: ready_status(c.get(NODES, "silent")) == "Unknown", timeout=30)
        c.wait_for(lambda c: ready_status(c.get(PODS, "on-silent", "default")) == "False", timeout=20)

        def endpoint_ready(c):
            eps = {e["addresses"][0]: e["conditions"]["ready"]
                   for s in c.list(ENDPOINT_SLICES, "default", label_selector="kubernetes.io/service-name=web")["items"]
                   for e in s.get("endpoints") or []}
            return eps if eps == {"10.244.1.2": True, "10.244.2.2": False} else None

        c.wait_for(endpoint_ready, timeout=20)
        # the node whose lease keeps moving stays Ready, and so does its pod
        assert ready_status(c.get(NODES, "alive")) == "True"
        assert ready_status(c.get(PODS, "on-alive", "default")) == "True"
        cond = [x for x in c.get(NODES, "silent")["status"]["conditions"] if x["type"] == "Ready"][0]
        assert cond["reason"] == "NodeStatusUnknown"
    finally:
        stop.set()
        beat.join(5)
