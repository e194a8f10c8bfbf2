"""Pure reconcile logic of the endpoint controllers: desired endpoints from Service + pods +
nodes, the slice plan (stable placement, 100 per slice, no-op when unchanged, placeholder),
and the legacy Endpoints subsets."""
from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from kproxy.controllers.endpoints import desired_endpoints_object, desired_subsets
from kproxy.controllers.endpointslice import (
    CONTROLLER_NAME, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, desired_endpoints, plan_slices, pod_endpoint,
    service_template,
)


def svc(ports=None, selector=None, publish=False, name="web", ns="default", cluster_ip="10.96.0.10"):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": selector if selector is not None else {"app": "web"},
                     "ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080,
                                                                "protocol": "TCP"}],
                     "publishNotReadyAddresses": publish, "clusterIP": cluster_ip}}


def pod(name, ip, ready=True, labels=None, node="node1", deleting=False, phase="Running", ports=None, ns="default"):
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels or {"app": "web"}},
         "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}]},
         "status": {"phase": phase, "podIP": ip,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return p


def apply_plan(plan, existing):
    """What the server would hold after the plan (names for creates made up)."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for s in plan.delete:
        by_name.pop(s["metadata"]["name"])
    for s in plan.update:
        by_name[s["metadata"]["name"]] = s
    for i, s in enumerate(plan.create):
        s = copy.deepcopy(s)
        s["metadata"]["name"] = s["metadata"].pop("generateName") + f"gen{len(by_name)}-{i}"
        by_name[s["metadata"]["name"]] = s
    return list(by_name.values())


def reconcile(service, pods, existing, zones=None):
    plan = plan_slices(service_template(service), desired_endpoints(service, pods, zones or {}), existing)
    return plan, apply_plan(plan, existing)


def all_ips(slices):
    return sorted(e["addresses"][0] for s in slices for e in s["endpoints"])


def test_conditions_ready_serving_terminating():
    s = svc()
    assert pod_endpoint(s, pod("a", "10.244.1.2"), {})["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert pod_endpoint(s, pod("a", "10.244.1.2", ready=False), {})["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert pod_endpoint(s, pod("a", "10.244.1.2", deleting=True), {})["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert pod_endpoint(svc(publish=True), pod("a", "10.244.1.2", ready=False), {})["conditions"]["ready"] is True
    assert pod_endpoint(s, pod("a", None), {}) is None
    assert pod_endpoint(s, pod("a", "10.244.1.2", phase="Failed"), {}) is None  # evicted
    assert pod_endpoint(s, pod("a", "fd00::1"), {}) is None  # IPv4 slices only


def test_endpoint_fields_node_zone_target_ref_hostname():
    p = pod("a", "10.244.1.2")
    p["spec"].update(hostname="a", subdomain="web")
    ep = pod_endpoint(svc(), p, {"node1": "zone-x"})
    assert ep["nodeName"] == "node1" and ep["zone"] == "zone-x" and ep["hostname"] == "a"
    assert ep["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}


def test_traffic_distribution_hints():
    """upstream's trafficdist facts: PreferClose/PreferSameZone hint each ready endpoint for its
    own zone, PreferSameNode also for its node; not-ready endpoints, unset or unknown values and
    the topology-mode Auto annotation (upstream's other heuristic) get none."""
    zones = {"node1": "zone-x"}

    def hints(distribution, ready=True, annotations=None):
        service = svc()
        if distribution:
            service["spec"]["trafficDistribution"] = distribution
        if annotations:
            service["metadata"]["annotations"] = annotations
        return pod_endpoint(service, pod("a", "10.244.1.2", ready=ready), zones).get("hints")

    assert hints("PreferClose") == hints("PreferSameZone") == {"forZones": [{"name": "zone-x"}]}
    assert hints("PreferSameNode") == {"forZones": [{"name": "zone-x"}], "forNodes": [{"name": "node1"}]}
    assert hints(None) is hints("Nearby") is hints("PreferClose", ready=False) is None
    assert hints("PreferClose", annotations={"service.kubernetes.io/topology-mode": "Auto"}) is None
    assert hints("PreferClose", annotations={"service.kubernetes.io/topology-mode": "Disabled"}) is not None


def test_a_new_traffic_distribution_rewrites_the_slice():
    service, pods = svc(), [pod("a", "10.244.1.2")]
    _, slices = reconcile(service, pods, [], {"node1": "zone-x"})
    service["spec"]["trafficDistribution"] = "PreferClose"
    plan, slices = reconcile(service, pods, slices, {"node1": "zone-x"})
    assert len(plan.update) == 1 and slices[0]["endpoints"][0]["hints"] == {"forZones": [{"name": "zone-x"}]}


def test_selector_namespace_and_labels_filter():
    pods = [pod("a", "10.244.1.2"), pod("b", "10.244.1.3", labels={"app": "db"}),
            pod("c", "10.244.1.4", ns="other")]
    desired = desired_endpoints(svc(), pods, {})
    assert [list(v) for v in desired.values()] == [["10.244.1.2"]]


def test_named_ports_resolve_per_pod_and_split_slices():
    ports = [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]
    a = pod("a", "10.244.1.2", ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}])
    b = pod("b", "10.244.1.3", ports=[{"name": "web", "containerPort": 9090}])
    c = pod("c", "10.244.1.4", ports=[{"name": "other", "containerPort": 1}])
    plan, slices = reconcile(svc(ports=ports), [a, b, c], [])
    got = sorted((s["ports"][0]["port"] if s["ports"] else 0, all_ips([s])) for s in slices)
    assert got == [(0, ["10.244.1.4"]), (8080, ["10.244.1.2"]), (9090, ["10.244.1.3"])]


def test_labels_owner_and_generate_name():
    plan, slices = reconcile(svc(), [pod("a", "10.244.1.2")], [])
    [created] = plan.create
    assert created["metadata"]["generateName"] == "web-"
    assert created["metadata"]["labels"] == {"team": "a", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: CONTROLLER_NAME}
    assert created["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"
    assert created["addressType"] == "IPv4"
    assert created["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]


def test_headless_label():
    plan, _ = reconcile(svc(cluster_ip="None"), [pod("a", "10.244.1.2")], [])
    assert "service.kubernetes.io/headless" in plan.create[0]["metadata"]["labels"]


def test_no_write_when_nothing_changed():
    s, pods = svc(), [pod("a", "10.244.1.2"), pod("b", "10.244.1.3")]
    _, slices = reconcile(s, pods, [])
    plan, _ = reconcile(s, pods, slices)
    assert plan.empty


def test_scale_0_1_2_1_0_keeps_one_slice():
    s = svc()
    _, slices = reconcile(s, [], [])
    assert len(slices) == 1 and slices[0]["endpoints"] == [] and slices[0]["ports"] == []  # placeholder
    steps = [[pod("a", "10.244.1.2")], [pod("a", "10.244.1.2"), pod("b", "10.244.2.2")], [pod("b", "10.244.2.2")], []]
    for pods in steps:
        _, slices = reconcile(s, pods, slices)
        assert len(slices) == 1
        assert all_ips(slices) == sorted(p["status"]["podIP"] for p in pods)


def test_max_100_per_slice_and_stable_placement():
    s = svc()
    pods = [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}") for i in range(250)]
    _, slices = reconcile(s, pods, [])
    assert sorted(len(x["endpoints"]) for x in slices) == [50, 100, 100]
    # one pod leaves: exactly one slice is rewritten
    plan, slices2 = reconcile(s, pods[1:], slices)
    assert len(plan.update) == 1 and not plan.create and not plan.delete
    # one pod joins: it goes into the slice with room, no new slice
    plan, slices3 = reconcile(s, pods[1:] + [pod("new", "10.244.9.9")], slices2)
    assert len(plan.update) == 1 and not plan.create
    assert len(all_ips(slices3)) == 250


def test_port_change_reuses_slice_and_stale_port_sets_are_deleted():
    s = svc()
    _, slices = reconcile(s, [pod("a", "10.244.1.2")], [])
    s2 = svc(ports=[{"name": "http", "port": 80, "targetPort": 9999, "protocol": "TCP"}])
    plan, slices2 = reconcile(s2, [pod("a", "10.244.1.2")], slices)
    # the old port set's slice is rewritten for the new one rather than deleted + created
    assert len(plan.update) == 1 and not plan.create and not plan.delete
    assert [x["metadata"]["name"] for x in slices2] == [slices[0]["metadata"]["name"]]
    assert slices2[0]["ports"][0]["port"] == 9999
    # two port sets (named port resolving differently) collapse to one: one slice goes away
    named = [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]
    a = pod("a", "10.244.1.2", ports=[{"name": "web", "containerPort": 1000}])
    b = pod("b", "10.244.1.3", ports=[{"name": "web", "containerPort": 2000}])
    _, two = reconcile(svc(ports=named), [a, b], [])
    assert len(two) == 2
    b2 = pod("b", "10.244.1.3", ports=[{"name": "web", "containerPort": 1000}])
    plan, one = reconcile(svc(ports=named), [a, b2], two)
    assert len(plan.delete) == 1 and not plan.create
    assert len(one) == 1 and all_ips(one) == ["10.244.1.2", "10.244.1.3"]


def test_readiness_change_updates_in_place():
    s = svc()
    _, slices = reconcile(s, [pod("a", "10.244.1.2")], [])
    plan, slices2 = reconcile(s, [pod("a", "10.244.1.2", ready=False)], slices)
    assert len(plan.update) == 1 and not plan.create
    assert slices2[0]["endpoints"][0]["conditions"]["ready"] is False


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 300), max_size=260, unique=True), min_size=1, max_size=5))
def test_any_sequence_converges_to_exact_set(steps):
    """After each step the slices hold exactly the desired endpoints, none twice, <= 100 per
    slice, and a second reconcile plans nothing."""
    s, slices = svc(), []
    for ids in steps:
        pods = [pod(f"p{i}", f"10.244.{i // 200}.{i % 200 + 1}") for i in ids]
        _, slices = reconcile(s, pods, slices)
        ips = all_ips(slices)
        assert ips == sorted(p["status"]["podIP"] for p in pods)
        assert len(ips) == len(set(ips))
        assert all(len(x["endpoints"]) <= 100 for x in slices)
        assert len(slices) <= max(1, -(-len(ids) // 100) + 2)
        plan, _ = reconcile(s, pods, slices)
        assert plan.empty


def test_legacy_endpoints_subsets():
    ports = [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]
    cports = [{"name": "web", "containerPort": 8080}]
    pods = [pod("a", "10.244.1.3", ports=cports), pod("b", "10.244.1.2", ports=cports, ready=False),
            pod("c", "10.244.1.4", ports=cports, deleting=True), pod("d", "10.244.1.5", ports=cports, phase="Succeeded")]
    subsets, truncated = desired_subsets(svc(ports=ports), pods)
    assert not truncated
    assert subsets == [{
        "addresses": [{"ip": "10.244.1.3", "nodeName": "node1",
                       "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}],
        "notReadyAddresses": [{"ip": "10.244.1.2", "nodeName": "node1",
                               "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
        "ports": [{"port": 8080, "protocol": "TCP", "name": "http"}],
    }]
    # publishNotReadyAddresses: every pod (terminating too) is an address
    subsets, _ = desired_subsets(svc(ports=ports, publish=True), pods)
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    assert "notReadyAddresses" not in subsets[0]


def test_legacy_endpoints_object_and_truncation():
    pods = [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}") for i in range(1001)]
    obj = desired_endpoints_object(svc(), pods, None)
    assert obj["metadata"]["name"] == "web" and obj["metadata"]["labels"] == {"team": "a"}
    assert sum(len(s.get("addresses", [])) for s in obj["subsets"]) == 1000
    assert obj["metadata"]["annotations"]["endpoints.kubernetes.io/over-capacity"] == "truncated"
    small = desired_endpoints_object(svc(), pods[:2], obj)
    assert "annotations" not in small["metadata"]
