"""Pure logic of the namespace, quota and node lifecycle controllers."""
from __future__ import annotations

from kproxy.api.resources import LEASES, NODES, PODS
from kproxy.controllers.namespace import is_terminating_namespace, without_finalizer
from kproxy.controllers.node import NodeLifecycleController, heartbeat_of, node_marked_unknown, pod_marked_not_ready
from kproxy.controllers.resourcequota import quota_usage


def svc(type_="ClusterIP", ports=2, **spec):
    return {"spec": {"type": type_, "ports": [{"port": 80 + i} for i in range(ports)], **spec}}


def test_quota_usage_counts_known_resources_named_in_hard():
    services = [svc(), svc("NodePort"), svc("LoadBalancer", 3),
                svc("LoadBalancer", 2, allocateLoadBalancerNodePorts=False)]
    pods = [{"status": {"phase": "Running"}}, {"status": {"phase": "Pending"}}, {"status": {"phase": "Failed"}},
            {"status": {"phase": "Succeeded"}}]
    hard = {"services": "10", "count/services": "10", "services.nodeports": "9", "services.loadbalancers": "2",
            "pods": "4", "count/pods": "4", "requests.cpu": "2"}
    assert quota_usage(hard, services, pods) == {
        "services": "4", "count/services": "4", "services.nodeports": "5", "services.loadbalancers": "2",
        "pods": "2", "count/pods": "4"}  # requests.cpu is not something kproxy counts
    assert quota_usage({"pods": "1"}, services, []) == {"pods": "0"}


def test_namespace_helpers():
    ns = {"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes", "other"]}}
    assert not is_terminating_namespace(ns)
    assert is_terminating_namespace({"metadata": {"deletionTimestamp": "t"}})
    assert is_terminating_namespace({"metadata": {}, "status": {"phase": "Terminating"}})
    assert without_finalizer(ns)["spec"]["finalizers"] == ["other"]
    assert ns["spec"]["finalizers"] == ["kubernetes", "other"]  # input untouched


def node(ready="True", hb="t1"):
    return {"metadata": {"name": "n1"}, "status": {"conditions": [
        {"type": "Ready", "status": ready, "lastHeartbeatTime": hb},
        {"type": "MemoryPressure", "status": "False"}]}}


def test_heartbeat_prefers_lease():
    assert heartbeat_of(node(), None) == "ready:t1"
    assert heartbeat_of(node(), {"spec": {"renewTime": "r1"}}) == "lease:r1"
    assert heartbeat_of({"metadata": {"name": "n"}}, None) is None


def test_node_marked_unknown():
    new = node_marked_unknown(node(), "now")
    conds = {c["type"]: c for c in new["status"]["conditions"]}
    assert conds["Ready"]["status"] == "Unknown" and conds["Ready"]["reason"] == "NodeStatusUnknown"
    assert conds["Ready"]["lastHeartbeatTime"] == "t1"  # kept: it is the kubelet's last word
    assert conds["MemoryPressure"]["status"] == "Unknown"
    assert node_marked_unknown(new, "later") is None
    never = node_marked_unknown({"metadata": {"name": "n"}}, "now")
    assert [(c["type"], c["reason"]) for c in never["status"]["conditions"]] == [("Ready", "NodeStatusNeverUpdated")]


def test_pod_marked_not_ready():
    pod = {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}}
    new = pod_marked_not_ready(pod, "now")
    assert [c["status"] for c in new["status"]["conditions"]] == ["False", "True"]
    assert pod["status"]["conditions"][0]["status"] == "True"
    assert pod_marked_not_ready(new, "now") is None
    assert pod_marked_not_ready({"status": {}}, "now") is None


class FakeInformer:
    def __init__(self, objs):
        self.cache = {o["metadata"]["name"]: o for o in objs}

    def get(self, name, namespace=None):
        return self.cache.get(name)


class FakeInformers:
    def __init__(self, nodes, leases):
        self.map = {NODES: FakeInformer(nodes), LEASES: FakeInformer(leases), PODS: FakeInformer([])}

    def get(self, resource):
        return self.map[resource]


def test_staleness_is_measured_from_observed_change():
    infs = FakeInformers([node(hb="t1")], [])
    ctl = NodeLifecycleController(None, infs, grace_period=10.0)
    assert ctl.stale_nodes(100.0) == []  # first sight: a full grace period starts
    assert ctl.stale_nodes(109.0) == []
    assert ctl.stale_nodes(111.0) == ["n1"]
    infs.map[NODES].cache["n1"] = node(hb="t2")  # the kubelet spoke again
    assert ctl.stale_nodes(112.0) == []
    assert ctl.stale_nodes(121.0) == []
    assert ctl.stale_nodes(122.5) == ["n1"]
    infs.map[NODES].cache.clear()  # node deleted: forgotten
    assert ctl.stale_nodes(200.0) == [] and ctl._probes == {}
