"""EndpointSlice mirroring of user-written Endpoints for selectorless Services: pure logic
and against the real apiserver."""
from __future__ import annotations

from kproxy.api.resources import ENDPOINT_SLICES, ENDPOINTS, SERVICES
from kproxy.controllers.endpointslice import plan_slices
from kproxy.controllers.mirroring import (
    MIRROR_CONTROLLER_NAME, mirror_template, mirrored_endpoints, should_mirror,
)
from tests.controllers.conftest import make_service

MIRROR_SELECTOR = f"kubernetes.io/service-name={{}},endpointslice.kubernetes.io/managed-by={MIRROR_CONTROLLER_NAME}"


def endpoints_obj(subsets, labels=None):
    return {"metadata": {"name": "ext", "namespace": "default", "uid": "ep-uid", "labels": labels or {}},
            "subsets": subsets}


def test_mirrored_endpoints_ready_not_ready_ports_per_family():
    eps = endpoints_obj([
        {"addresses": [{"ip": "192.0.2.1", "nodeName": "n1"}, {"ip": "2001:db8::1"}],
         "notReadyAddresses": [{"ip": "192.0.2.2", "targetRef": {"kind": "Pod", "name": "p", "namespace": "default"}}],
         "ports": [{"name": "http", "port": 80}]},
        {"addresses": [{"ip": "192.0.2.9"}], "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
    ])
    got = mirrored_endpoints(eps)
    assert got[(("http", "TCP", 80, ""),)] == {
        "192.0.2.1": {"addresses": ["192.0.2.1"], "conditions": {"ready": True, "serving": True, "terminating": False},
                      "nodeName": "n1"},
        "192.0.2.2": {"addresses": ["192.0.2.2"], "conditions": {"ready": False, "serving": False, "terminating": False},
                      "targetRef": {"kind": "Pod", "name": "p", "namespace": "default"}},
    }
    assert list(got[(("dns", "UDP", 53, ""),)]) == ["192.0.2.9"]
    # IPv6 addresses go to slices of their own address type, as upstream mirrors them
    assert {k: list(v) for k, v in mirrored_endpoints(eps, "IPv6").items()} == {(("http", "TCP", 80, ""),): ["2001:db8::1"]}
    assert plan_slices(mirror_template(eps, "IPv6"), mirrored_endpoints(eps, "IPv6"), [],
                       placeholder=False).create[0]["addressType"] == "IPv6"
    plan = plan_slices(mirror_template(eps), got, [], placeholder=False)
    assert len(plan.create) == 2
    labels = plan.create[0]["metadata"]["labels"]
    assert labels["endpointslice.kubernetes.io/managed-by"] == MIRROR_CONTROLLER_NAME
    assert plan.create[0]["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    # nothing to mirror: no placeholder
    assert plan_slices(mirror_template(eps), {}, [], placeholder=False).empty


def test_should_mirror_rules():
    selectorless = {"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 80}]}}
    with_selector = {"metadata": {"name": "ext"}, "spec": {"selector": {"a": "b"}}}
    eps = endpoints_obj([])
    assert should_mirror(selectorless, eps)
    assert not should_mirror(with_selector, eps)
    assert not should_mirror(None, eps)
    assert not should_mirror(selectorless, None)
    assert not should_mirror(selectorless, endpoints_obj([], {"endpointslice.kubernetes.io/skip-mirror": "true"}))


def mirrored(c, name="ext"):
    items = c.list(ENDPOINT_SLICES, "default", label_selector=MIRROR_SELECTOR.format(name))["items"]
    return sorted((e["addresses"][0], e["conditions"]["ready"]) for s in items for e in s.get("endpoints") or [])


def test_user_endpoints_are_mirrored_updated_and_removed(env):
    c = env.client
    make_service(c, "ext", selector={}, ports=[{"name": "http", "port": 80, "protocol": "TCP"}])
    ep = c.create(ENDPOINTS, {"metadata": {"name": "ext", "namespace": "default"},
                              "subsets": [{"addresses": [{"ip": "192.0.2.10"}],
                                           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]})
    c.wait_for(lambda c: mirrored(c) == [("192.0.2.10", True)], timeout=20)
    [s] = c.list(ENDPOINT_SLICES, "default", label_selector=MIRROR_SELECTOR.format("ext"))["items"]
    assert s["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    assert s["metadata"]["ownerReferences"][0]["uid"] == ep["metadata"]["uid"]
    ep["subsets"][0]["notReadyAddresses"] = [{"ip": "192.0.2.11"}]
    ep = c.update(ENDPOINTS, ep)
    c.wait_for(lambda c: mirrored(c) == [("192.0.2.10", True), ("192.0.2.11", False)], timeout=20)
    ep["metadata"]["labels"] = {"endpointslice.kubernetes.io/skip-mirror": "true"}
    ep = c.update(ENDPOINTS, ep)
    c.wait_for(lambda c: mirrored(c) == [], timeout=20)
    del ep["metadata"]["labels"]
    c.update(ENDPOINTS, ep)
    c.wait_for(lambda c: len(mirrored(c)) == 2, timeout=20)
    c.delete(SERVICES, "ext", "default")
    c.wait_for(lambda c: mirrored(c) == [], timeout=20)


def test_endpoints_written_before_their_service_are_kept(env):
    """A user may write Endpoints first and the selectorless Service later (Kubernetes allows
    it); the endpoints controller must not delete them meanwhile."""
    c = env.client
    ep = c.create(ENDPOINTS, {"metadata": {"name": "early", "namespace": "default"},
                              "subsets": [{"addresses": [{"ip": "192.0.2.20"}], "ports": [{"port": 80}]}]})
    ep["subsets"][0]["addresses"].append({"ip": "192.0.2.21"})
    c.update(ENDPOINTS, ep)
    make_service(c, "early", selector={}, ports=[{"name": "", "port": 80, "protocol": "TCP"}])
    c.wait_for(lambda c: mirrored(c, "early") == [("192.0.2.20", True), ("192.0.2.21", True)], timeout=20)
    assert c.get(ENDPOINTS, "early", "default")["metadata"]["uid"] == ep["metadata"]["uid"]
