"""PATCH over HTTP: merge, strategic-merge (what kubectl apply sends) and JSON patch, on the
main resource and the status subresource, with resourceVersion preconditions."""
from __future__ import annotations

import pytest


SVCS = "/api/v1/namespaces/default/services"
PODS = "/api/v1/namespaces/default/pods"
MERGE, SMP, JSONP = ("application/merge-patch+json", "application/strategic-merge-patch+json",
                     "application/json-patch+json")


@pytest.fixture
def api(bare_apiserver):
    a = bare_apiserver.http()
    a.ok("POST", SVCS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"a": "1"}},
                        "spec": {"selector": {"app": "web"}, "ports": [
                            {"name": "http", "port": 80, "targetPort": 8080},
                            {"name": "https", "port": 443, "targetPort": 8443}]}})
    return a


def test_merge_patch_sets_and_removes_keys(api):
    out = api.ok("PATCH", f"{SVCS}/web", {"metadata": {"labels": {"a": None, "b": "2"}}}, MERGE)
    assert out["metadata"]["labels"] == {"b": "2"}
    # merge patch replaces lists wholesale
    out = api.ok("PATCH", f"{SVCS}/web", {"spec": {"ports": [{"name": "http", "port": 80}]}}, MERGE)
    assert [p["port"] for p in out["spec"]["ports"]] == [80]


def test_strategic_merge_patch_merges_ports_by_port(api):
    out = api.ok("PATCH", f"{SVCS}/web", {"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}, SMP)
    assert [(p["port"], p["targetPort"]) for p in out["spec"]["ports"]] == [(80, 8080), (443, 9443)]
    out = api.ok("PATCH", f"{SVCS}/web", {"spec": {"ports": [{"port": 80, "$patch": "delete"}]}}, SMP)
    assert [p["port"] for p in out["spec"]["ports"]] == [443]


def test_strategic_set_element_order_as_kubectl_apply_sends(api):
    patch = {"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}, {"port": 9090}],
                      "ports": [{"name": "metrics", "port": 9090}]}}
    out = api.ok("PATCH", f"{SVCS}/web", patch, SMP)
    assert [p["port"] for p in out["spec"]["ports"]] == [443, 80, 9090]
    assert "$setElementOrder/ports" not in out["spec"]


def test_json_patch(api):
    out = api.ok("PATCH", f"{SVCS}/web", [{"op": "add", "path": "/metadata/labels/c", "value": "3"},
                                          {"op": "replace", "path": "/spec/ports/0/port", "value": 81}], JSONP)
    assert out["metadata"]["labels"]["c"] == "3" and out["spec"]["ports"][0]["port"] == 81
    status, body = api.call("PATCH", f"{SVCS}/web", [{"op": "test", "path": "/spec/ports/0/port", "value": 1}], JSONP)
    assert status == 422, body


def test_patch_with_stale_resource_version_conflicts(api):
    rv = api.ok("GET", f"{SVCS}/web")["metadata"]["resourceVersion"]
    api.ok("PATCH", f"{SVCS}/web", {"metadata": {"labels": {"x": "1"}}}, MERGE)
    status, body = api.call("PATCH", f"{SVCS}/web", {"metadata": {"resourceVersion": rv, "labels": {"y": "1"}}}, MERGE)
    assert status == 409 and body["reason"] == "Conflict"


def test_noop_patch_does_not_write(api):
    before = api.ok("GET", f"{SVCS}/web")["metadata"]["resourceVersion"]
    out = api.ok("PATCH", f"{SVCS}/web", {"metadata": {"labels": {"a": "1"}}}, MERGE)
    assert out["metadata"]["resourceVersion"] == before


def test_status_patch_changes_only_status(api):
    api.ok("POST", PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"l": "1"}},
                          "spec": {"containers": [{"name": "c", "image": "i"}]}})
    out = api.ok("PATCH", f"{PODS}/p/status", {"metadata": {"labels": {"l": "2"}},
                                                "status": {"podIP": "10.244.1.1",
                                                           "conditions": [{"type": "Ready", "status": "True"}]}}, SMP)
    assert out["status"]["podIP"] == "10.244.1.1" and out["metadata"]["labels"] == {"l": "1"}
    out = api.ok("PATCH", f"{PODS}/p/status", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, SMP)
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "False"}]
    # the main resource ignores status
    out = api.ok("PATCH", f"{PODS}/p", {"status": {"podIP": "1.1.1.1"}}, MERGE)
    assert out["status"]["podIP"] == "10.244.1.1"


def test_patch_unknown_field_warns_or_fails(api):
    status, _, raw = api.raw("PATCH", f"{SVCS}/web?fieldValidation=Warn", b'{"spec":{"bogus":1}}',
                             {"Content-Type": MERGE})
    assert status == 200
    status, headers, raw = api.raw("PATCH", f"{SVCS}/web", b'{"spec":{"bogus2":1}}', {"Content-Type": MERGE})
    assert status == 200 and "spec.bogus2" in headers.get("warning", "")
    status, _, raw = api.raw("PATCH", f"{SVCS}/web?fieldValidation=Strict", b'{"spec":{"bogus3":1}}',
                             {"Content-Type": MERGE})
    assert status == 400 and b"spec.bogus3" in raw
