"""Issue 17 items 1 and 2 with the real kubectl: the imperative commands whose typed clients send
protobuf, and `kind: List` manifests, which kubectl validates against /openapi/v2 in protobuf."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.apiserver.fixtures import start_apiserver
from tests.apiserver.test_kubectl import KUBECTL, Kubectl

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine"),
]


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory):
    """One apiserver for the module; each test works in namespaces of its own."""
    server = start_apiserver(tmp_path_factory.mktemp("protobuf"))
    try:
        yield Kubectl(server.kubeconfig)
    finally:
        server.stop()


def test_imperative_rbac_commands_send_protobuf(kubectl):
    kubectl("create", "namespace", "rbac")
    kubectl("create", "role", "reader", "-n", "rbac", "--verb=get,list", "--resource=pods,services")
    kubectl("create", "clusterrole", "watcher", "--verb=watch", "--resource=endpointslices.discovery.k8s.io")
    kubectl("create", "rolebinding", "read", "-n", "rbac", "--role=reader", "--user=alice",
            "--serviceaccount=rbac:robot")
    kubectl("create", "clusterrolebinding", "watch", "--clusterrole=watcher", "--group=devs")
    role = kubectl.json("get", "role", "reader", "-n", "rbac")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list"]}]
    assert kubectl.json("get", "clusterrole", "watcher")["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["watch"]}]
    binding = kubectl.json("get", "rolebinding", "read", "-n", "rbac")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
    assert {(s["kind"], s["name"]) for s in binding["subjects"]} == {("User", "alice"), ("ServiceAccount", "robot")}
    crb = kubectl.json("get", "clusterrolebinding", "watch")
    assert crb["subjects"] == [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]
    assert "name: reader" in kubectl("get", "role", "reader", "-n", "rbac", "-o", "yaml")


def test_typed_clients_decode_protobuf_answers(kubectl):
    """kubectl's typed create asks for protobuf first; with -o yaml it prints the object it
    decoded from the server's answer (server-side dry run: the server fills in the metadata)."""
    kubectl("create", "namespace", "dry")
    out = yaml.safe_load(kubectl("create", "rolebinding", "b", "-n", "dry", "--clusterrole=view",
                                 "--serviceaccount=dry:robot", "--dry-run=server", "-o", "yaml"))
    assert out["metadata"]["namespace"] == "dry" and out["metadata"]["uid"]
    assert out["metadata"]["creationTimestamp"].endswith("Z")
    assert out["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
    assert out["subjects"] == [{"kind": "ServiceAccount", "name": "robot", "namespace": "dry"}]
    quota = yaml.safe_load(kubectl("create", "quota", "q", "-n", "dry", "--hard=cpu=1500m,pods=3",
                                   "--dry-run=server", "-o", "yaml"))
    assert quota["spec"]["hard"] == {"cpu": "1500m", "pods": "3"}


def test_apply_and_create_a_kind_list_manifest(kubectl, tmp_path):
    kubectl("create", "namespace", "src")
    kubectl("create", "service", "clusterip", "web", "-n", "src", "--tcp=80:8080")
    kubectl("create", "serviceaccount", "robot", "-n", "src")
    listed = yaml.safe_load(kubectl("get", "svc,sa", "-n", "src", "-o", "yaml"))
    assert listed["kind"] == "List"
    items = []
    for item in listed["items"]:
        if item["metadata"]["name"] in ("web", "robot"):
            meta = {"name": item["metadata"]["name"], "namespace": "dst"}
            spec = {k: v for k, v in item.get("spec", {}).items() if k not in ("clusterIP", "clusterIPs")}
            items.append({"apiVersion": item["apiVersion"], "kind": item["kind"], "metadata": meta,
                          **({"spec": spec} if spec else {})})
    kubectl("create", "namespace", "dst")
    manifest = tmp_path / "list.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    out = kubectl("apply", "-f", str(manifest))
    assert "service/web created" in out and "serviceaccount/robot created" in out
    assert kubectl.json("get", "svc", "web", "-n", "dst")["spec"]["ports"][0]["targetPort"] == 8080
    kubectl("create", "namespace", "dst2")
    manifest.write_text(manifest.read_text().replace("namespace: dst", "namespace: dst2"))
    out = kubectl("create", "-f", str(manifest))
    assert "service/web created" in out and "serviceaccount/robot created" in out


def test_kind_list_with_an_unknown_field_is_refused_by_validation(kubectl, tmp_path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x", "namespace": "default"},
         "bogus": 1}]}))
    proc = subprocess.run([KUBECTL, "apply", "-f", str(manifest)], capture_output=True, text=True, env=kubectl.env)
    assert proc.returncode != 0 and "bogus" in proc.stderr, proc.stderr
