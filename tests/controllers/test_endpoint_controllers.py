"""EndpointSlice and Endpoints controllers against the real apiserver."""
from __future__ import annotations

import time

import pytest

from kproxy.agent.translate import trigger_time
from kproxy.api.resources import ENDPOINT_SLICES, ENDPOINTS, PODS, SERVICES
from tests.controllers.conftest import make_node, make_pod, make_service, set_pod_status

SLICE_SELECTOR = "kubernetes.io/service-name={},endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"


def slices_of(client, svc, ns="default"):
    return client.list(ENDPOINT_SLICES, ns, label_selector=SLICE_SELECTOR.format(svc))["items"]


def endpoints_by_ip(client, svc, ns="default"):
    return {e["addresses"][0]: e for s in slices_of(client, svc, ns) for e in s.get("endpoints") or []}


def wait_endpoints(client, svc, predicate, ns="default", timeout=20):
    """Waits until predicate({ip: endpoint}) holds; returns that map."""
    def check(c):
        eps = endpoints_by_ip(c, svc, ns)
        return (eps,) if predicate(eps) else None

    return client.wait_for(check, timeout=timeout)[0]


def test_slices_follow_pods_0_1_2_1_0(env):
    c = env.client
    make_service(c, "web")
    # 0 pods: one placeholder slice, owned by the Service
    placeholder = c.wait_for(lambda c: slices_of(c, "web"), timeout=20)
    assert len(placeholder) == 1 and not placeholder[0].get("endpoints")
    svc = c.get(SERVICES, "web", "default")
    assert placeholder[0]["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
    assert placeholder[0]["metadata"]["name"].startswith("web-")

    make_pod(c, "web-1", "10.244.1.2", labels={"app": "web"}, grace=0)
    eps = wait_endpoints(c, "web", lambda e: set(e) == {"10.244.1.2"})
    ep = eps["10.244.1.2"]
    assert ep["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert ep["targetRef"]["name"] == "web-1" and ep["nodeName"] == "node1"
    assert slices_of(c, "web")[0]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]

    make_pod(c, "web-2", "10.244.2.2", labels={"app": "web"}, node="node2", grace=0)
    wait_endpoints(c, "web", lambda e: set(e) == {"10.244.1.2", "10.244.2.2"})
    c.delete(PODS, "web-1", "default")
    wait_endpoints(c, "web", lambda e: set(e) == {"10.244.2.2"})
    c.delete(PODS, "web-2", "default")
    last = c.wait_for(lambda c: [s for s in slices_of(c, "web") if not s.get("endpoints")], timeout=20)
    # one slice the whole way: the placeholder was reused for the endpoints and back
    assert [s["metadata"]["name"] for s in last] == [placeholder[0]["metadata"]["name"]]
    # the legacy Endpoints object followed as well
    ep_obj = c.get(ENDPOINTS, "web", "default")
    assert not ep_obj.get("subsets")
    # exactly one slice the whole way (no duplicates from stale caches)
    assert len(slices_of(c, "web")) == 1


def test_slice_writes_carry_the_trigger_time_of_the_change(env):
    """KEP-3453: the slice written for a pod change carries when the change reached the
    controller (not before the write that caused it, not after the slice is seen)."""
    c = env.client
    make_service(c, "timed")
    make_pod(c, "timed-1", "10.244.1.7", labels={"app": "timed"}, ready=False)
    wait_endpoints(c, "timed", lambda e: "10.244.1.7" in e and not e["10.244.1.7"]["conditions"]["ready"])
    before = time.time()
    set_pod_status(c, c.get(PODS, "timed-1", "default"), "10.244.1.7", ready=True)
    wait_endpoints(c, "timed", lambda e: e["10.244.1.7"]["conditions"]["ready"])
    seen = time.time()
    [slice_] = slices_of(c, "timed")
    t = trigger_time(slice_)
    assert t is not None and before <= t <= seen


def test_no_rewrite_when_nothing_changed(env):
    c = env.client
    make_service(c, "calm")
    make_pod(c, "calm-1", "10.244.1.5", labels={"app": "calm"})
    wait_endpoints(c, "calm", lambda e: set(e) == {"10.244.1.5"})
    before = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices_of(c, "calm")}
    # an unrelated change to the pod (annotation) and to the service (label) must not rewrite the slice
    pod = c.get(PODS, "calm-1", "default")
    pod["metadata"]["annotations"] = {"touched": "yes"}
    c.update(PODS, pod)
    make_pod(c, "other", "10.244.1.6", labels={"app": "other"})  # a pod of another service
    make_service(c, "barrier", selector={"app": "other"})
    wait_endpoints(c, "barrier", lambda e: set(e) == {"10.244.1.6"})  # controller processed the later events
    after = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices_of(c, "calm")}
    assert before == after


def test_named_ports_and_zone(env):
    c = env.client
    make_node(c, "node1", zone="zone-a")
    ports = [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
             {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]
    make_service(c, "multi", ports=ports)
    make_pod(c, "m1", "10.244.1.10", labels={"app": "multi"},
             container_ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}])
    make_pod(c, "m2", "10.244.1.11", labels={"app": "multi"},
             container_ports=[{"name": "web", "containerPort": 9090, "protocol": "TCP"}])
    c.wait_for(lambda c: len(endpoints_by_ip(c, "multi")) == 2, timeout=20)
    by_port = {}
    for s in slices_of(c, "multi"):
        ports_map = {p["name"]: p["port"] for p in s["ports"]}
        for e in s["endpoints"]:
            by_port[e["addresses"][0]] = ports_map
            assert e["zone"] == "zone-a"
    assert by_port == {"10.244.1.10": {"http": 8080, "dns": 5353}, "10.244.1.11": {"http": 9090, "dns": 5353}}
    # Endpoints: two subsets, one per resolved port set
    def both_subsets(c):
        # the Endpoints controller may have written one pod's subset so far
        subsets = (c.get_or_none(ENDPOINTS, "multi", "default") or {}).get("subsets") or []
        return subsets if len(subsets) == 2 else None

    subsets = c.wait_for(both_subsets, timeout=20)
    assert sorted(sorted(p["port"] for p in s["ports"]) for s in subsets) == [[5353, 8080], [5353, 9090]]


def test_readiness_and_not_ready_addresses(env):
    c = env.client
    make_service(c, "rd")
    make_pod(c, "rd-1", "10.244.1.20", labels={"app": "rd"}, ready=False)
    eps = wait_endpoints(c, "rd", lambda e: "10.244.1.20" in e)
    assert eps["10.244.1.20"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    subsets = c.wait_for(lambda c: (c.get_or_none(ENDPOINTS, "rd", "default") or {}).get("subsets"), timeout=20)
    assert [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["10.244.1.20"]
    assert "addresses" not in subsets[0]
    set_pod_status(c, c.get(PODS, "rd-1", "default"), "10.244.1.20", ready=True)
    wait_endpoints(c, "rd", lambda e: e.get("10.244.1.20", {}).get("conditions", {}).get("ready") is True)
    c.wait_for(lambda c: [a["ip"] for s in c.get(ENDPOINTS, "rd", "default").get("subsets") or []
                          for a in s.get("addresses") or []] == ["10.244.1.20"], timeout=20)
    # a pod without an IP and a failed (evicted) pod are not endpoints
    make_pod(c, "rd-noip", None, labels={"app": "rd"})
    failed = make_pod(c, "rd-failed", "10.244.1.21", labels={"app": "rd"})
    failed["status"]["phase"] = "Failed"
    c.update_status(PODS, failed)
    make_service(c, "rd-barrier", selector={"app": "rd"})
    wait_endpoints(c, "rd-barrier", lambda e: set(e) == {"10.244.1.20"})
    assert set(endpoints_by_ip(c, "rd")) == {"10.244.1.20"}


def test_terminating_pod_is_serving_not_ready(env):
    c = env.client
    make_service(c, "term")
    make_pod(c, "term-1", "10.244.1.30", labels={"app": "term"}, grace=300)
    wait_endpoints(c, "term", lambda e: "10.244.1.30" in e)
    c.delete(PODS, "term-1", "default")  # graceful: stays with a deletionTimestamp
    eps = wait_endpoints(c, "term", lambda e: e.get("10.244.1.30", {}).get("conditions", {}).get("terminating"))
    assert eps["10.244.1.30"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    # legacy Endpoints drop terminating pods
    c.wait_for(lambda c: not c.get(ENDPOINTS, "term", "default").get("subsets"), timeout=20)


def test_publish_not_ready_addresses(env):
    c = env.client
    make_service(c, "pub", publish=True)
    make_pod(c, "pub-1", "10.244.1.40", labels={"app": "pub"}, ready=False)
    eps = wait_endpoints(c, "pub", lambda e: "10.244.1.40" in e)
    assert eps["10.244.1.40"]["conditions"] == {"ready": True, "serving": False, "terminating": False}
    subsets = c.wait_for(lambda c: (c.get_or_none(ENDPOINTS, "pub", "default") or {}).get("subsets"), timeout=20)
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.244.1.40"]


def test_selectorless_service_slices_left_alone_and_deleted_service_cleaned(env):
    c = env.client
    make_service(c, "manual", selector={})
    user_slice = c.create(ENDPOINT_SLICES, {
        "metadata": {"name": "manual-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "manual"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"]}], "ports": [{"name": "", "port": 80}]})
    make_service(c, "gone")
    c.wait_for(lambda c: slices_of(c, "gone"), timeout=20)
    c.wait_for(lambda c: c.get_or_none(ENDPOINTS, "gone", "default"), timeout=20)
    c.delete(SERVICES, "gone", "default")
    c.wait_for(lambda c: not slices_of(c, "gone") and c.get_or_none(ENDPOINTS, "gone", "default") is None, timeout=20)
    still = c.get(ENDPOINT_SLICES, "manual-1", "default")
    assert still["metadata"]["resourceVersion"] == user_slice["metadata"]["resourceVersion"]
    assert c.get_or_none(ENDPOINTS, "manual", "default") is None


def test_deleted_slice_is_recreated(env):
    c = env.client
    make_service(c, "heal")
    make_pod(c, "heal-1", "10.244.1.50", labels={"app": "heal"})
    wait_endpoints(c, "heal", lambda e: set(e) == {"10.244.1.50"})
    [s] = slices_of(c, "heal")
    c.delete(ENDPOINT_SLICES, s["metadata"]["name"], "default")
    c.wait_for(lambda c: [x for x in slices_of(c, "heal") if x["metadata"]["name"] != s["metadata"]["name"]], timeout=20)
    assert set(endpoints_by_ip(c, "heal")) == {"10.244.1.50"}


@pytest.mark.slow
def test_150_pods_split_into_two_slices(env):
    c = env.client
    make_service(c, "big")
    for i in range(150):
        make_pod(c, f"big-{i}", f"10.244.{1 + i // 200}.{10 + i % 200}", labels={"app": "big"}, node=None)
    c.wait_for(lambda c: len(endpoints_by_ip(c, "big")) == 150, timeout=60)
    sizes = sorted(len(s["endpoints"]) for s in slices_of(c, "big"))
    assert sizes == [50, 100] or (sum(sizes) == 150 and max(sizes) <= 100 and len(sizes) == 2)
