"""EndpointSlices per IP family (upstream's reconcile per address type) and the Endpoints
object's primary family: the pure planning, then the controllers of a dual-stack apiserver
with pods that have both addresses."""
from __future__ import annotations

import pytest

from kproxy.api.resources import ENDPOINT_SLICES, ENDPOINTS, PODS, SERVICES
from kproxy.controllers.endpoints import desired_subsets
from kproxy.controllers.endpointslice import plan_service_slices
from kproxy.controllers.podutil import service_address_types
from tests.apiserver.fixtures import apiserver_and_client
from tests.controllers.test_endpointslice_logic import apply_plan

V4, V6 = "10.244.1.5", "fd00:10:244:1::5"


def svc(families=None, cluster_ip="10.96.0.10", selector=None):
    spec = {"selector": selector or {"app": "web"}, "clusterIP": cluster_ip,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    if families is not None:
        spec["ipFamilies"] = families
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid"}, "spec": spec}


def pod(name, *ips, ready=True):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": ips[0] if ips else None, "podIPs": [{"ip": ip} for ip in ips],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def by_type(slices) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in slices:
        out.setdefault(s["addressType"], []).extend(e["addresses"][0] for e in s.get("endpoints") or [])
    return {t: sorted(ips) for t, ips in out.items()}


@pytest.mark.parametrize("service,types", [
    (svc(["IPv4"]), ["IPv4"]),
    (svc(["IPv6"], cluster_ip="fd00:10:96::a"), ["IPv6"]),
    (svc(["IPv4", "IPv6"]), ["IPv4", "IPv6"]),
    (svc(["IPv6", "IPv4"], cluster_ip="fd00:10:96::a"), ["IPv6", "IPv4"]),
    (svc(None, cluster_ip="fd00:10:96::a"), ["IPv6"]),  # written before ipFamilies existed
    (svc(None, cluster_ip="None"), ["IPv4", "IPv6"]),  # headless without families: both
])
def test_address_types_follow_the_service(service, types):
    assert service_address_types(service) == types


def test_dual_stack_service_gets_one_slice_set_per_family():
    pods = [pod("a", V4, V6), pod("b", "10.244.1.6"), pod("c", "fd00:10:244:1::7")]
    plan = plan_service_slices(svc(["IPv4", "IPv6"]), pods, {}, [])
    assert by_type(plan.create) == {"IPv4": [V4, "10.244.1.6"], "IPv6": [V6, "fd00:10:244:1::7"]}
    # single-stack Services see only their family's addresses
    assert by_type(plan_service_slices(svc(["IPv6"]), pods, {}, []).create) == {"IPv6": [V6, "fd00:10:244:1::7"]}
    assert by_type(plan_service_slices(svc(["IPv4"]), pods, {}, []).create) == {"IPv4": [V4, "10.244.1.6"]}


def test_each_family_has_its_own_placeholder_and_nothing_changes_twice():
    plan = plan_service_slices(svc(["IPv4", "IPv6"]), [], {}, [])
    assert sorted((s["addressType"], s["endpoints"]) for s in plan.create) == [("IPv4", []), ("IPv6", [])]
    held = apply_plan(plan, [])
    assert plan_service_slices(svc(["IPv4", "IPv6"]), [], {}, held).empty


def test_downgrade_deletes_the_slices_of_the_dropped_family():
    pods = [pod("a", V4, V6)]
    held = apply_plan(plan_service_slices(svc(["IPv4", "IPv6"]), pods, {}, []), [])
    plan = plan_service_slices(svc(["IPv4"]), pods, {}, held)
    assert [s["addressType"] for s in plan.delete] == ["IPv6"] and not plan.create and not plan.update
    assert by_type(apply_plan(plan, held)) == {"IPv4": [V4]}


def test_endpoints_object_uses_the_primary_family():
    pods = [pod("a", V4, V6)]
    ips = lambda service: [a["ip"] for s in desired_subsets(service, pods)[0] for a in s["addresses"]]  # noqa: E731
    assert ips(svc(["IPv6", "IPv4"], cluster_ip="fd00:10:96::a")) == [V6]
    assert ips(svc(["IPv4", "IPv6"])) == [V4]
    assert ips(svc(None, cluster_ip="None")) == [V4]  # headless without families: the pod's podIP family


def test_controllers_of_a_dual_stack_apiserver(tmp_path):
    """The in-process controllers write IPv4 and IPv6 slices for a RequireDualStack Service
    and the IPv6-first Service's Endpoints hold the IPv6 addresses."""
    args = ["--service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112", "--no-scheduler"]
    with apiserver_and_client(tmp_path, args) as (_, c):
        c.create(SERVICES, {"metadata": {"name": "web", "namespace": "default"},
                            "spec": {"selector": {"app": "web"}, "ipFamilyPolicy": "RequireDualStack",
                                     "ipFamilies": ["IPv6", "IPv4"], "ports": [{"port": 80, "targetPort": 8080}]}})
        created = c.create(PODS, {"metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
                                  "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "echo"}]}})
        c.update_status(PODS, {**created, "status": {
            "phase": "Running", "podIP": V4, "podIPs": [{"ip": V4}, {"ip": V6}],
            "conditions": [{"type": "Ready", "status": "True"}]}})

        def slices(c):
            got = by_type(c.list(ENDPOINT_SLICES, "default",
                                 label_selector="kubernetes.io/service-name=web")["items"])
            return got if got == {"IPv4": [V4], "IPv6": [V6]} else None

        c.wait_for(slices, timeout=30)

        def endpoints(c):
            try:
                subsets = c.get(ENDPOINTS, "web", "default").get("subsets") or []
            except Exception:
                return None
            ips = [a["ip"] for s in subsets for a in s.get("addresses") or []]
            return ips if ips else None

        assert c.wait_for(endpoints, timeout=30) == [V6]
