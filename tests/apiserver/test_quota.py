"""Admission over HTTP: ResourceQuota object counts and namespace lifecycle checks."""
from __future__ import annotations

import pytest


NS = "/api/v1/namespaces"


def pod(name):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}


def svc(name, svc_type="ClusterIP"):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": svc_type, "ports": [{"port": 80}]}}


@pytest.fixture
def api(bare_apiserver):
    a = bare_apiserver.http()
    a.ok("POST", NS, {"metadata": {"name": "q"}})
    a.ok("POST", f"{NS}/q/resourcequotas", {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "counts"},
                                            "spec": {"hard": {"pods": "2", "services": "2", "services.nodeports": "1"}}})
    return a


def test_pods_over_quota_are_forbidden(api):
    api.ok("POST", f"{NS}/q/pods", pod("a"))
    api.ok("POST", f"{NS}/q/pods", pod("b"))
    rv = api.ok("GET", f"{NS}/q/pods")["metadata"]["resourceVersion"]
    status, body = api.call("POST", f"{NS}/q/pods", pod("c"))
    assert (status, body["reason"]) == (403, "Forbidden")
    assert "exceeded quota: counts, requested: pods=1, used: pods=2, limited: pods=2" in body["message"]
    assert api.ok("GET", f"{NS}/q/pods")["metadata"]["resourceVersion"] == rv
    # a terminal pod no longer counts
    api.ok("PATCH", f"{NS}/q/pods/a/status", {"status": {"phase": "Succeeded"}}, "application/merge-patch+json")
    api.ok("POST", f"{NS}/q/pods", pod("c"))
    # other namespaces are not limited
    for i in range(3):
        api.ok("POST", f"{NS}/default/pods", pod(f"free{i}"))


def test_node_ports_quota_on_create_and_type_change(api):
    api.ok("POST", f"{NS}/q/services", svc("np", "NodePort"))
    plain = api.ok("POST", f"{NS}/q/services", svc("plain"))
    status, body = api.call("POST", f"{NS}/q/services", svc("third"))
    assert status == 403 and "services=2" in body["message"]
    plain["spec"]["type"] = "NodePort"
    status, body = api.call("PUT", f"{NS}/q/services/plain", plain)
    assert status == 403 and "services.nodeports" in body["message"], body
    api.ok("DELETE", f"{NS}/q/services/np")
    api.ok("PUT", f"{NS}/q/services/plain", plain)


def test_terminating_namespace_refuses_new_content(api):
    api.ok("POST", NS, {"metadata": {"name": "doomed"}})
    api.ok("POST", f"{NS}/doomed/pods", pod("p"))
    marked = api.ok("DELETE", f"{NS}/doomed")
    assert marked["status"]["phase"] == "Terminating"
    status, body = api.call("POST", f"{NS}/doomed/pods", pod("late"))
    assert status == 403 and "being terminated" in body["message"]
    status, body = api.call("DELETE", f"{NS}/doomed")
    assert status == 409
    # what the namespace controller does: empty it, then finalize
    api.ok("DELETE", f"{NS}/doomed/pods/p")
    ns = api.ok("GET", f"{NS}/doomed")
    ns["spec"]["finalizers"] = []
    api.ok("PUT", f"{NS}/doomed/finalize", ns)
    status, _ = api.call("GET", f"{NS}/doomed")
    assert status == 404


def test_finalizers_hold_deletion_until_removed(api):
    obj = svc("held")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    api.ok("POST", f"{NS}/q/services", obj)
    marked = api.ok("DELETE", f"{NS}/q/services/held")
    assert marked["metadata"]["deletionTimestamp"]
    current = api.ok("GET", f"{NS}/q/services/held")
    current["metadata"]["finalizers"] = []
    api.ok("PUT", f"{NS}/q/services/held", current)
    status, _ = api.call("GET", f"{NS}/q/services/held")
    assert status == 404
