"""CRUD over real HTTP against a real apiserver process."""
from __future__ import annotations

import time

import pytest


NS = "/api/v1/namespaces"


def svc(name, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": name}, **spec}}


@pytest.fixture
def api(bare_apiserver):
    return bare_apiserver.http()


def test_bootstrap_objects_exist(api):
    names = {n["metadata"]["name"] for n in api.ok("GET", NS)["items"]}
    assert {"default", "kube-system"} <= names
    k8s = api.ok("GET", f"{NS}/default/services/kubernetes")
    assert k8s["spec"]["clusterIP"] == "10.96.0.1"


def test_create_get_list_update_delete(api):
    created = api.ok("POST", f"{NS}/default/services", svc("web"))
    assert created["metadata"]["uid"] and created["metadata"]["creationTimestamp"]
    rv = int(created["metadata"]["resourceVersion"])
    got = api.ok("GET", f"{NS}/default/services/web")
    assert got == created
    listed = api.ok("GET", f"{NS}/default/services")
    assert listed["kind"] == "ServiceList"
    assert int(listed["metadata"]["resourceVersion"]) >= rv
    assert "web" in {i["metadata"]["name"] for i in listed["items"]}
    got["metadata"]["labels"] = {"tier": "front"}
    updated = api.ok("PUT", f"{NS}/default/services/web", got)
    assert int(updated["metadata"]["resourceVersion"]) > rv
    assert updated["spec"]["clusterIP"] == created["spec"]["clusterIP"]
    # stale resourceVersion -> 409 Conflict
    status, body = api.call("PUT", f"{NS}/default/services/web", got)
    assert status == 409 and body["reason"] == "Conflict"
    status, body = api.call("DELETE", f"{NS}/default/services/web")
    assert status == 200 and body["kind"] == "Service"  # as Kubernetes: the deleted object
    status, body = api.call("DELETE", f"{NS}/default/endpoints/web")
    assert status == 404
    api.ok("POST", f"{NS}/default/endpoints", {"metadata": {"name": "web"}, "subsets": []})
    status, body = api.call("DELETE", f"{NS}/default/endpoints/web")
    assert status == 200 and body["kind"] == "Status" and body["status"] == "Success"
    status, body = api.call("GET", f"{NS}/default/services/web")
    assert status == 404 and body["reason"] == "NotFound"


def test_create_twice_is_already_exists(api):
    api.ok("POST", f"{NS}/default/services", svc("dup"))
    status, body = api.call("POST", f"{NS}/default/services", svc("dup"))
    assert (status, body["reason"]) == (409, "AlreadyExists")


def test_generate_name(api):
    body = svc("")
    body["metadata"] = {"generateName": "gen-"}
    obj = api.ok("POST", f"{NS}/default/services", body)
    assert obj["metadata"]["name"].startswith("gen-") and len(obj["metadata"]["name"]) == 9


def test_namespace_must_exist(api):
    status, body = api.call("POST", f"{NS}/nope/services", svc("web"))
    assert status == 404 and body["details"]["kind"] == "namespaces"


def test_all_namespaces_list_and_label_selector(api):
    api.ok("POST", NS, {"metadata": {"name": "other"}})
    a = svc("a")
    a["metadata"]["labels"] = {"app": "x"}
    api.ok("POST", f"{NS}/default/services", a)
    b = svc("b")
    b["metadata"]["labels"] = {"app": "y"}
    api.ok("POST", f"{NS}/other/services", b)
    everything = api.ok("GET", "/api/v1/services")
    assert {"a", "b", "kubernetes"} <= {i["metadata"]["name"] for i in everything["items"]}
    only_y = api.ok("GET", "/api/v1/services?labelSelector=app%3Dy")
    assert [i["metadata"]["name"] for i in only_y["items"]] == ["b"]


def test_status_subresource(api):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i"}]},
           "status": {"phase": "Running", "podIP": "1.2.3.4"}}
    created = api.ok("POST", f"{NS}/default/pods", pod)
    assert created["status"]["phase"] == "Pending"  # create ignores status
    patched = api.ok("PATCH", f"{NS}/default/pods/p/status", {"status": {"podIP": "10.244.1.7"}},
                     "application/merge-patch+json")
    assert patched["status"]["podIP"] == "10.244.1.7"
    # the main resource ignores status changes
    patched["status"]["podIP"] = "9.9.9.9"
    patched["metadata"]["labels"] = {"a": "b"}
    after = api.ok("PUT", f"{NS}/default/pods/p", patched)
    assert after["status"]["podIP"] == "10.244.1.7" and after["metadata"]["labels"] == {"a": "b"}


def test_graceful_pod_deletion_and_force(api):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}}
    api.ok("POST", f"{NS}/default/pods", pod)
    marked = api.ok("DELETE", f"{NS}/default/pods/p")
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert api.ok("GET", f"{NS}/default/pods/p")["metadata"]["deletionTimestamp"]
    api.ok("DELETE", f"{NS}/default/pods/p?gracePeriodSeconds=0")
    status, _ = api.call("GET", f"{NS}/default/pods/p")
    assert status == 404


def test_unknown_resource_and_bad_body(api):
    status, body = api.call("GET", "/api/v1/widgets")
    assert status == 404 and body["kind"] == "Status"
    status, body = api.call("POST", f"{NS}/default/services", b"{not json")
    assert status == 400 and body["reason"] == "BadRequest"


def test_graceful_deletion_expires_by_itself(api):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}}
    api.ok("POST", f"{NS}/default/pods", pod)
    marked = api.ok("DELETE", f"{NS}/default/pods/p?gracePeriodSeconds=1")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if api.call("GET", f"{NS}/default/pods/p")[0] == 404:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the pod was not removed after its grace period")


def test_delete_collection_by_label(api):
    for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
        body = svc(name)
        body["metadata"]["labels"] = {"tier": tier}
        api.ok("POST", f"{NS}/default/services", body)
    out = api.ok("DELETE", f"{NS}/default/services?labelSelector=tier%3Dx")
    assert sorted(i["metadata"]["name"] for i in out["items"]) == ["a", "b"]
    left = {i["metadata"]["name"] for i in api.ok("GET", f"{NS}/default/services")["items"]}
    assert "c" in left and not {"a", "b"} & left


def test_dry_run_writes_nothing(api):
    rv = api.ok("GET", NS)["metadata"]["resourceVersion"]
    out = api.ok("POST", f"{NS}/default/services?dryRun=All", svc("dry"))
    assert out["spec"]["clusterIP"]
    assert api.call("GET", f"{NS}/default/services/dry")[0] == 404
    assert api.ok("GET", NS)["metadata"]["resourceVersion"] == rv


def test_service_type_change_to_external_name_drops_cluster_fields(api):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tochange", "namespace": "default"},
           "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}
    code, created = api.call("POST", "/api/v1/namespaces/default/services", svc)
    assert code == 201, created
    assert created["spec"]["clusterIP"]
    # a client that sends only what it wants (as kubectl apply's patch does) turns it into ExternalName
    patch = {"spec": {"type": "ExternalName", "externalName": "example.test", "selector": None,
                      "ports": None, "clusterIP": None, "clusterIPs": None}}
    code, changed = api.call("PATCH", "/api/v1/namespaces/default/services/tochange", patch,
                             content_type="application/merge-patch+json")
    assert code == 200, changed
    assert changed["spec"]["type"] == "ExternalName"
    assert "ipFamilies" not in changed["spec"] and "ipFamilyPolicy" not in changed["spec"]
    assert not changed["spec"].get("clusterIP")
