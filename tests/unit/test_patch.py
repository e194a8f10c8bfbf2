"""Patches: JSON merge (RFC 7386), JSON patch (RFC 6902) and strategic merge, including the
exact patches the real kubectl 1.32 client-side apply sends (recorded below as golden data and
re-recorded live from kubectl when it is installed)."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from hypothesis import given, strategies as st

from kproxy.api import resources as R
from kproxy.api.patch import PatchError, json_patch, merge_patch, strategic_merge_patch

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# --- a recorder for what `kubectl apply` sends -----------------------------------------------
# A small HTTP server on 127.0.0.1 answers kubectl's discovery and its GET with the live
# object, 404s the OpenAPI documents (kubectl then uses its built-in patch metadata, as it does
# against servers without OpenAPI) and records the PATCH body.

KUBECTL = shutil.which("kubectl")

_RESOURCES = [
    {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service", "shortNames": ["svc"]},
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "shortNames": ["po"]},
]


def _handler(live: dict[str, Any], path: str, recorded: list[dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    docs = {
        "/api": {"kind": "APIVersions", "versions": ["v1"],
                 "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
        "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1",
                    "resources": [dict(r, verbs=verbs) for r in _RESOURCES]},
        "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0"},
        path: live,
    }

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            doc = docs.get(self.path.split("?")[0])
            if doc is None:
                self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "NotFound", "code": 404, "message": "not found"})
            else:
                self._send(200, doc)

        def do_PATCH(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            recorded.append({"path": self.path, "content_type": self.headers["Content-Type"], "body": body})
            self._send(200, live)

    return Handler


def capture_apply_patch(live: dict[str, Any], manifest: dict[str, Any], tmp_path: Any) -> dict[str, Any]:
    """The strategic merge patch kubectl sends to turn `live` into `manifest` (the PATCH's
    content type is asserted). Raises RuntimeError if kubectl fails or sends no patch."""
    if KUBECTL is None:
        raise RuntimeError("kubectl not found")
    md = live["metadata"]
    plural = {"Service": "services", "Pod": "pods"}[live["kind"]]
    path = f"/api/v1/namespaces/{md['namespace']}/{plural}/{md['name']}"
    recorded: list[dict[str, Any]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(live, path, recorded))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        manifest_file = tmp_path / "manifest.yaml"
        manifest_file.write_text(yaml.safe_dump(manifest))
        proc = subprocess.run(
            [KUBECTL, "--server", f"http://127.0.0.1:{server.server_address[1]}", "--validate=false",
             "apply", "-f", str(manifest_file)],
            capture_output=True, text=True, timeout=60,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl apply failed: {proc.stderr.strip()}")
    if len(recorded) != 1:
        raise RuntimeError(f"expected one PATCH from kubectl, got {len(recorded)}")
    if recorded[0]["content_type"] != "application/strategic-merge-patch+json":
        raise RuntimeError(f"unexpected patch type {recorded[0]['content_type']}")
    return recorded[0]["body"]


# --- kubectl apply scenarios: last applied manifest, live object, new manifest -----------------

def _live(applied: dict[str, Any], mutate) -> dict[str, Any]:
    """The live object after `kubectl apply` of `applied` and the server's own additions."""
    live = copy.deepcopy(applied)
    live["metadata"].setdefault("annotations", {})[LAST_APPLIED] = json.dumps(applied)
    live["metadata"].update({"uid": "u-1", "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z"})
    mutate(live)
    return live


def _svc_server_fields(live: dict[str, Any]) -> None:
    live["spec"].update({"type": live["spec"].get("type", "ClusterIP"), "clusterIP": "10.96.0.10",
                         "clusterIPs": ["10.96.0.10"], "sessionAffinity": "None"})
    for p in live["spec"]["ports"]:
        p["protocol"] = "TCP"


SVC_V1 = {"apiVersion": "v1", "kind": "Service",
          "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "old": "x"},
                       "finalizers": ["example.com/a", "example.com/b"]},
          "spec": {"selector": {"app": "web", "tier": "front"},
                   "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                             {"name": "https", "port": 443, "targetPort": 8443}]}}
SVC_LIVE = _live(SVC_V1, lambda o: (_svc_server_fields(o), o["metadata"]["finalizers"].append("example.com/server")))

# new ports, one port dropped, a target port changed, a selector key removed
SVC_PORTS = {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "old": "x"},
                          "finalizers": ["example.com/a", "example.com/b"]},
             "spec": {"selector": {"app": "web2"},
                      "ports": [{"name": "alt", "port": 8443, "targetPort": 9443},
                                {"name": "http", "port": 80, "targetPort": 8081}]}}
SVC_PORTS_PATCH = {
    "metadata": {"$setElementOrder/finalizers": ["example.com/a", "example.com/b"], "annotations": {}},
    "spec": {"$setElementOrder/ports": [{"port": 8443}, {"port": 80}],
             "ports": [{"name": "alt", "port": 8443, "targetPort": 9443}, {"port": 80, "targetPort": 8081},
                       {"$patch": "delete", "port": 443}],
             "selector": {"app": "web2", "tier": None}}}

# type change to NodePort, ports reordered, a label and a finalizer dropped
SVC_NODEPORT = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                             "finalizers": ["example.com/a"]},
                "spec": {"type": "NodePort", "selector": {"app": "web"},
                         "ports": [{"name": "https", "port": 443, "targetPort": 8443},
                                   {"name": "http", "port": 80, "targetPort": 8081}]}}
SVC_NODEPORT_PATCH = {
    "metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/b"],
                 "$setElementOrder/finalizers": ["example.com/a"], "annotations": {}, "labels": {"old": None}},
    "spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}], "ports": [{"port": 80, "targetPort": 8081}],
             "selector": {"tier": None}, "type": "NodePort"}}

POD_V1 = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "default"},
          "spec": {"containers": [
              {"name": "app", "image": "nginx:1.25", "ports": [{"name": "http", "containerPort": 8080}],
               "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
               "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
              {"name": "sidecar", "image": "busybox:1.36"}],
              "volumes": [{"name": "data", "emptyDir": {}}]}}


def _pod_server_fields(live: dict[str, Any]) -> None:
    live["spec"]["nodeName"] = "node-1"
    for c in live["spec"]["containers"]:
        c["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"phase": "Running", "podIP": "10.244.1.5"}


POD_LIVE = _live(POD_V1, _pod_server_fields)

# a container added in front, one removed, image/env/ports changed, volume source switched
POD_V2 = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "default"},
          "spec": {"containers": [
              {"name": "metrics", "image": "prom/exporter:1"},
              {"name": "app", "image": "nginx:1.26",
               "ports": [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 9090}],
               "env": [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}],
               "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
              "volumes": [{"name": "data", "configMap": {"name": "web-data"}}]}}
POD_V2_PATCH = {
    "metadata": {"annotations": {}},
    "spec": {"$setElementOrder/containers": [{"name": "metrics"}, {"name": "app"}],
             "$setElementOrder/volumes": [{"name": "data"}],
             "containers": [
                 {"image": "prom/exporter:1", "name": "metrics"},
                 {"$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                  "$setElementOrder/ports": [{"containerPort": 8080}, {"containerPort": 9090}],
                  "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                  "image": "nginx:1.26", "name": "app", "ports": [{"containerPort": 9090, "name": "admin"}]},
                 {"$patch": "delete", "name": "sidecar"}],
             "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "web-data"},
                          "emptyDir": None, "name": "data"}]}}

SCENARIOS = {
    "service-ports-selector": (R.SERVICES, SVC_LIVE, SVC_PORTS, SVC_PORTS_PATCH),
    "service-nodeport-reorder": (R.SERVICES, SVC_LIVE, SVC_NODEPORT, SVC_NODEPORT_PATCH),
    "pod-containers": (R.PODS, POD_LIVE, POD_V2, POD_V2_PATCH),
}


def _with_last_applied(patch: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(patch)
    out["metadata"]["annotations"][LAST_APPLIED] = json.dumps(manifest)
    return out


def test_service_ports_and_selector_apply():
    res = strategic_merge_patch(SVC_LIVE, _with_last_applied(SVC_PORTS_PATCH, SVC_PORTS), R.SERVICES)
    assert res["spec"]["ports"] == [{"name": "alt", "port": 8443, "targetPort": 9443},
                                    {"name": "http", "port": 80, "targetPort": 8081, "protocol": "TCP"}]
    assert res["spec"]["selector"] == {"app": "web2"}
    assert res["spec"]["clusterIP"] == "10.96.0.10"          # server-assigned fields survive
    assert res["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert res["metadata"]["uid"] == "u-1"
    assert json.loads(res["metadata"]["annotations"][LAST_APPLIED]) == SVC_PORTS
    assert SVC_LIVE["spec"]["ports"][1]["port"] == 443         # input untouched


def test_service_nodeport_reorder_apply():
    res = strategic_merge_patch(SVC_LIVE, _with_last_applied(SVC_NODEPORT_PATCH, SVC_NODEPORT), R.SERVICES)
    assert res["spec"]["type"] == "NodePort"
    assert res["spec"]["clusterIP"] == "10.96.0.10"
    assert res["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
                                    {"name": "http", "port": 80, "targetPort": 8081, "protocol": "TCP"}]
    assert res["spec"]["selector"] == {"app": "web"}
    assert res["metadata"]["labels"] == {"app": "web"}
    # the finalizer kubectl applied before is removed; the one the server added stays
    assert res["metadata"]["finalizers"] == ["example.com/a", "example.com/server"]


def test_pod_containers_apply():
    res = strategic_merge_patch(POD_LIVE, _with_last_applied(POD_V2_PATCH, POD_V2), R.PODS)
    containers = res["spec"]["containers"]
    assert [c["name"] for c in containers] == ["metrics", "app"]
    app = containers[1]
    assert app["image"] == "nginx:1.26"
    assert app["imagePullPolicy"] == "IfNotPresent"          # server default kept
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]
    assert app["ports"] == [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 9090}]
    assert app["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert containers[0] == {"name": "metrics", "image": "prom/exporter:1"}
    assert res["spec"]["volumes"] == [{"name": "data", "configMap": {"name": "web-data"}}]
    assert res["spec"]["nodeName"] == "node-1"
    assert res["status"]["podIP"] == "10.244.1.5"


@pytest.mark.kubectl
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_patch_is_what_kubectl_sends(name, tmp_path):
    """Re-record the patch from the installed kubectl: the golden data above must be exactly it."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed on this machine")
    resource, live, manifest, golden = SCENARIOS[name]
    sent = capture_apply_patch(live, manifest, tmp_path)
    last_applied = json.loads(sent["metadata"]["annotations"].pop(LAST_APPLIED))
    assert last_applied["spec"] == manifest["spec"]
    assert sent == golden
    # and applying what kubectl sent gives the new manifest's content on the live object
    res = strategic_merge_patch(live, _with_last_applied(sent, manifest), resource)
    for key, value in manifest["spec"].items():
        if key not in ("ports", "containers"):
            assert res["spec"][key] == value


# --- strategic merge directives ---------------------------------------------------------------

SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
       "spec": {"selector": {"a": "1", "b": "2"}, "externalIPs": ["192.0.2.1", "192.0.2.2"],
                "ports": [{"name": "x", "port": 1, "protocol": "TCP"}, {"name": "y", "port": 2, "protocol": "TCP"}]}}


def test_map_replace_directive():
    res = strategic_merge_patch(SVC, {"spec": {"selector": {"$patch": "replace", "c": "3"}}}, R.SERVICES)
    assert res["spec"]["selector"] == {"c": "3"}


def test_map_delete_directive():
    res = strategic_merge_patch(SVC, {"spec": {"selector": {"$patch": "delete"}}}, R.SERVICES)
    assert res["spec"]["selector"] == {}


def test_list_replace_directive():
    patch = {"spec": {"ports": [{"$patch": "replace"}, {"name": "z", "port": 3}]}}
    res = strategic_merge_patch(SVC, patch, R.SERVICES)
    assert res["spec"]["ports"] == [{"name": "z", "port": 3}]


def test_merge_keyed_list_merges_and_appends():
    patch = {"spec": {"ports": [{"port": 2, "targetPort": 9000}, {"name": "z", "port": 3}]}}
    res = strategic_merge_patch(SVC, patch, R.SERVICES)
    assert res["spec"]["ports"] == [{"name": "x", "port": 1, "protocol": "TCP"},
                                    {"name": "y", "port": 2, "protocol": "TCP", "targetPort": 9000},
                                    {"name": "z", "port": 3}]


def test_patch_list_order_wins_over_server_order():
    patch = {"spec": {"ports": [{"port": 2}, {"port": 1}]}}
    res = strategic_merge_patch(SVC, patch, R.SERVICES)
    assert [p["port"] for p in res["spec"]["ports"]] == [2, 1]


def test_atomic_list_is_replaced():
    res = strategic_merge_patch(SVC, {"spec": {"externalIPs": ["192.0.2.9"]}}, R.SERVICES)
    assert res["spec"]["externalIPs"] == ["192.0.2.9"]


def test_endpoint_slice_endpoints_are_atomic():
    es = {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}
    res = strategic_merge_patch(es, {"endpoints": [{"addresses": ["10.0.0.3"]}]}, R.ENDPOINT_SLICES)
    assert res["endpoints"] == [{"addresses": ["10.0.0.3"]}]


def test_primitive_merge_list_is_a_union():
    obj = {"metadata": {"finalizers": ["a/x", "a/y"]}}
    res = strategic_merge_patch(obj, {"metadata": {"finalizers": ["a/y", "a/z"]}}, R.SERVICES)
    assert res["metadata"]["finalizers"] == ["a/x", "a/y", "a/z"]


def test_owner_references_merge_by_uid():
    obj = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}}
    res = strategic_merge_patch(obj, {"metadata": {"ownerReferences": [{"uid": "2", "controller": True}]}}, R.PODS)
    assert res["metadata"]["ownerReferences"] == [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b", "controller": True}]


def test_status_conditions_merge_by_type():
    pod = {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}
    res = strategic_merge_patch(pod, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, R.PODS)
    assert res["status"]["conditions"] == [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]


def test_null_deletes_and_nulls_in_new_values_are_dropped():
    res = strategic_merge_patch(SVC, {"spec": {"selector": {"a": None}, "sessionAffinityConfig": {"clientIP": None}}},
                                R.SERVICES)
    assert res["spec"]["selector"] == {"b": "2"}
    assert res["spec"]["sessionAffinityConfig"] == {}


def test_set_element_order_with_server_only_items():
    # An item only the server has goes before the next ordered item that the server held
    # after it (Kubernetes' mergeSortedSlice): "server" (pos 1) precedes "b" (pos 2).
    obj = {"spec": {"containers": [{"name": "a"}, {"name": "server"}, {"name": "b"}]}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}
    res = strategic_merge_patch(obj, patch, R.PODS)
    assert [c["name"] for c in res["spec"]["containers"]] == ["server", "b", "a"]
    obj = {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "server"}]}}
    res = strategic_merge_patch(obj, patch, R.PODS)
    assert [c["name"] for c in res["spec"]["containers"]] == ["b", "a", "server"]


def test_delete_from_primitive_list():
    node = {"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}}
    res = strategic_merge_patch(node, {"spec": {"$deleteFromPrimitiveList/podCIDRs": ["fd00::/64"]}}, R.NODES)
    assert res["spec"]["podCIDRs"] == ["10.0.0.0/24"]


@pytest.mark.parametrize("patch,fragment", [
    ([1, 2], "must be a JSON object"),
    ({"spec": {"ports": [{"name": "no-port"}]}}, "does not contain declared merge key: port"),
    ({"spec": {"ports": [{"$patch": "delete"}]}}, "does not contain declared merge key"),
    ({"spec": {"ports": [{"$patch": "bogus", "port": 1}]}}, "Unknown patch type"),
    ({"spec": {"ports": [{"$patch": "merge", "port": 1}]}}, "merging lists cannot yet be specified"),
    ({"spec": {"selector": {"$patch": "bogus"}}}, "Unknown patch type"),
    ({"spec": {"$retainKeys": ["a"], "b": 1}}, "not present in the $retainKeys list"),
    ({"spec": {"$retainKeys": "a"}}, "must be a list of strings"),
    ({"spec": {"$bogus": 1}}, "unknown patch directive"),
    ({"spec": {"$setElementOrder/ports": {"port": 1}}}, "must be a list"),
    ({"metadata": {"finalizers": [{"a": 1}]}}, "holds scalars"),
])
def test_strategic_merge_errors(patch, fragment):
    with pytest.raises(PatchError) as e:
        strategic_merge_patch(SVC, patch, R.SERVICES)
    assert fragment in str(e.value)


# --- JSON merge patch -------------------------------------------------------------------------

@pytest.mark.parametrize("target,patch,result", [  # RFC 7386 appendix A
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_rfc7386_examples(target, patch, result):
    assert merge_patch(target, patch) == result


_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_doc = st.recursive(_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                    max_leaves=10)
_obj = st.dictionaries(st.text(max_size=4), _doc, max_size=4)


def _has_null(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, dict):
        return any(_has_null(x) for x in v.values())
    return False  # nulls inside lists are values, not deletions


@given(_obj)
def test_merge_patch_empty_patch_is_identity(doc):
    assert merge_patch(doc, {}) == doc


@given(_obj, _obj)
def test_merge_patch_is_idempotent(doc, patch):
    once = merge_patch(doc, patch)
    assert merge_patch(once, patch) == once


@given(_obj.filter(lambda d: not _has_null(d)))
def test_merge_patch_self_is_identity(doc):
    assert merge_patch(doc, doc) == doc


@given(_obj, _obj)
def test_merge_patch_does_not_mutate(doc, patch):
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    merge_patch(doc, patch)
    assert doc == before_doc and patch == before_patch


_plain_key = st.text(alphabet="abcxyz", max_size=3)
_plain_doc = st.recursive(_scalar, lambda c: st.dictionaries(_plain_key, c, max_size=3), max_leaves=10)
_plain_obj = st.dictionaries(_plain_key, _plain_doc, max_size=4)


@given(_plain_obj, _plain_obj)
def test_strategic_equals_merge_patch_without_lists_or_directives(doc, patch):
    """With no lists and no $-keys, a strategic merge patch is a JSON merge patch."""
    assert strategic_merge_patch(doc, patch, R.SERVICES) == merge_patch(doc, patch)


# --- JSON patch -------------------------------------------------------------------------------

def test_json_patch_ops():
    doc = {"spec": {"ports": [{"port": 80}], "selector": {"app": "a"}}}
    res = json_patch(doc, [
        {"op": "add", "path": "/spec/ports/-", "value": {"port": 443}},
        {"op": "replace", "path": "/spec/selector/app", "value": "b"},
        {"op": "test", "path": "/spec/ports/0/port", "value": 80},
        {"op": "remove", "path": "/spec/ports/0"},
        {"op": "copy", "from": "/spec/selector", "path": "/spec/labels"},
        {"op": "move", "from": "/spec/labels", "path": "/metadata"},
    ])
    assert res == {"spec": {"ports": [{"port": 443}], "selector": {"app": "b"}}, "metadata": {"app": "b"}}
    assert doc["spec"]["ports"] == [{"port": 80}]


@pytest.mark.parametrize("ops,fragment", [
    ({"op": "add"}, "must be a list"),
    ([{"path": "/a"}], "must be an object"),
    ([{"op": "test", "path": "/a", "value": 2}], "test operation failed"),
    ([{"op": "remove", "path": "/missing"}], "cannot be applied"),
    ([{"op": "replace", "path": "/b/c", "value": 1}], ""),
    ([{"op": "bogus", "path": "/a"}], "invalid JSON patch"),
    ([{"op": "add", "path": "no-slash", "value": 1}], "invalid JSON patch"),
    ([{"op": "add", "value": 1}], "invalid JSON patch"),
])
def test_json_patch_errors(ops, fragment):
    with pytest.raises(PatchError) as e:
        json_patch({"a": 1}, ops)
    assert fragment in str(e.value)


# --- agreement with the OpenAPI the apiserver publishes ------------------------------------------
# kubectl computes its patches from the server's OpenAPI when it has one. If that schema
# declared a list mergeable that strategic_merge_patch treated as atomic (or the other way
# round, or with another key), kubectl would send partial lists that we would apply wrongly.

def _schema_list_paths(schema, t, path=(), depth=0, out=None):
    """{path: (is_merge, merge_key)} of every list in an apiserver schema type."""
    out = {} if out is None else out
    if depth > 12:
        return out
    if isinstance(t, schema.Ref):
        t = schema.DEFINITIONS.get(t.name)
    if isinstance(t, schema.Struct):
        for name, sub in t.fields.items():
            _schema_list_paths(schema, sub, path + (name,), depth + 1, out)
    elif isinstance(t, schema.ListOf):
        out[path] = (bool(t.strategy and "merge" in t.strategy), t.merge_key)
        _schema_list_paths(schema, t.item, path, depth + 1, out)
    return out


# Lists the published schema is known to get wrong (none at the moment).
_KNOWN_SCHEMA_GAPS: set = set()


@pytest.mark.parametrize("resource", R.ALL, ids=[r.kind for r in R.ALL])
def test_patch_metadata_matches_published_openapi(resource):
    schema = pytest.importorskip("kproxy.apiserver.schema")
    from kproxy.api.patch import list_meta

    lists = _schema_list_paths(schema, schema.kind_schema(resource))
    assert lists, "the schema describes no lists at all"
    for path, (is_merge, key) in lists.items():
        if (resource.kind, path) in _KNOWN_SCHEMA_GAPS:
            continue
        mine = list_meta(resource, path)
        assert (mine is not None) == is_merge, (path, mine)
        if mine is not None:
            assert mine.merge_key == key, path


_port_item = st.builds(lambda port, target, proto: {"port": port, "targetPort": target, "protocol": proto},
                       st.integers(1, 30), st.integers(1, 65535), st.sampled_from(["TCP", "UDP"]))
_port_list = st.lists(_port_item, max_size=6, unique_by=lambda p: p["port"])


@given(_port_list, _port_list, st.booleans())
def test_kubectl_style_list_patch_reaches_target(live, target, send_unchanged):
    """A patch shaped like kubectl's (the target order, every target item, a delete for each
    removed key) turns any live list into exactly the target list."""
    target_keys = {p["port"] for p in target}
    items = [p for p in target if send_unchanged or p not in live]
    deletes = [{"$patch": "delete", "port": p["port"]} for p in live if p["port"] not in target_keys]
    patch = {"spec": {"$setElementOrder/ports": [{"port": p["port"]} for p in target], "ports": items + deletes}}
    res = strategic_merge_patch({"spec": {"ports": live}}, patch, R.SERVICES)
    assert res["spec"].get("ports", []) == target


_directive_keys = st.sampled_from(["$patch", "$retainKeys", "$setElementOrder/ports", "$setElementOrder/containers",
                                   "$deleteFromPrimitiveList/finalizers", "ports", "containers", "finalizers",
                                   "spec", "metadata", "name", "port", "env", "selector"])
_directive_values = st.one_of(st.sampled_from(["replace", "delete", "merge", "bogus"]), _scalar)
_patchy = st.recursive(
    _directive_values,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(_directive_keys, c, max_size=4),
    max_leaves=16,
)


@given(st.sampled_from([SVC, POD_LIVE, SVC_LIVE]), st.dictionaries(_directive_keys, _patchy, max_size=4),
       st.sampled_from([R.SERVICES, R.PODS, R.NODES, None]))
def test_strategic_merge_fails_only_with_patch_error(original, patch, resource):
    try:
        res = strategic_merge_patch(original, patch, resource)
    except PatchError as e:
        assert str(e)
    else:
        assert isinstance(res, dict)
        json.dumps(res)  # still plain JSON


_pointer = st.sampled_from(["/a", "/a/0", "/b/-", "", "/", "a", "~", "/~2", "/a/01", "/a/-1", "/a/99"])
_json_scalar = st.none() | st.booleans() | st.integers(-3, 3) | _pointer
_op = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x", 1, None])},
    optional={"path": _json_scalar, "from": _json_scalar,
              "value": st.one_of(_json_scalar, st.lists(_json_scalar, max_size=2))})


@given(st.dictionaries(st.sampled_from(["a", "b"]), st.one_of(_json_scalar, st.lists(_json_scalar, max_size=3))),
       st.lists(_op, max_size=3))
def test_json_patch_fails_only_with_patch_error(doc, ops):
    try:
        json_patch(doc, ops)
    except PatchError as e:
        assert str(e)


def _deep(n: int) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for _ in range(n):
        doc = {"a": doc}
    return doc


@pytest.mark.parametrize("apply", [
    lambda p: merge_patch({}, p),
    lambda p: strategic_merge_patch({}, p, R.SERVICES),
    lambda p: json_patch(p, [{"op": "add", "path": "/b", "value": 1}]),
])
def test_too_deep_documents_are_a_patch_error(apply):
    with pytest.raises(PatchError, match="nests too deeply"):
        apply(_deep(5000))


def test_same_port_two_protocols_merges_into_the_first():
    """Service ports merge by `port` alone (Kubernetes' known limitation for 53/TCP + 53/UDP):
    a patch item updates the first item with that port, as Kubernetes does."""
    dns = {"spec": {"ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                              {"name": "dns-udp", "port": 53, "protocol": "UDP"}]}}
    res = strategic_merge_patch(dns, {"spec": {"ports": [{"port": 53, "targetPort": 5353}]}}, R.SERVICES)
    assert res["spec"]["ports"] == [{"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5353},
                                    {"name": "dns-udp", "port": 53, "protocol": "UDP"}]
    res = strategic_merge_patch(dns, {"spec": {"ports": [{"$patch": "delete", "port": 53}]}}, R.SERVICES)
    assert res["spec"]["ports"] == []
