"""ConfigMaps, ReplicaSets and Deployments over HTTP and through the real kubectl: defaults,
generation, immutable fields, the scale subresource, Table columns and discovery. The server
runs without controllers, so only what these tests write is stored."""
from __future__ import annotations

import copy
import json
import shutil

import pytest

from tests.apiserver.httputil import TABLE, named
from tests.unit.workload_objects import CONFIG_MAP, DEPLOYMENT

DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
CMS = "/api/v1/namespaces/default/configmaps"


def _deployment(name: str) -> dict:
    return named(DEPLOYMENT, name)


def test_deployment_defaults_and_generation(api):
    created = api.ok("POST", DEPLOYS, _deployment("gen"))
    spec = created["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert created["metadata"]["generation"] == 1 and created["status"] == {}

    same = api.ok("PUT", f"{DEPLOYS}/gen", created)
    assert same["metadata"]["generation"] == 1
    status = api.ok("PUT", f"{DEPLOYS}/gen/status", {**same, "status": {"replicas": 3, "observedGeneration": 1}})
    assert status["metadata"]["generation"] == 1 and status["status"]["replicas"] == 3
    changed = copy.deepcopy(status)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    updated = api.ok("PUT", f"{DEPLOYS}/gen", changed)
    assert updated["metadata"]["generation"] == 2 and updated["status"]["replicas"] == 3


def test_selector_is_immutable_and_nothing_is_written(api):
    created = api.ok("POST", DEPLOYS, _deployment("imm"))
    moved = copy.deepcopy(created)
    moved["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    code, body = api.call("PUT", f"{DEPLOYS}/imm", moved)
    assert (code, body["reason"]) == (422, "Invalid"), body
    assert {"reason": "FieldValueInvalid", "field": "spec.selector"}.items() <= body["details"]["causes"][0].items()
    assert api.ok("GET", f"{DEPLOYS}/imm")["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_scale_subresource(api):
    created = api.ok("POST", DEPLOYS, _deployment("sc"))
    scale = api.ok("GET", f"{DEPLOYS}/sc/scale")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 3} and scale["status"]["selector"] == "app=web"

    put = api.ok("PUT", f"{DEPLOYS}/sc/scale", {**scale, "spec": {"replicas": 5}})
    assert put["spec"]["replicas"] == 5
    code, _ = api.call("PATCH", f"{DEPLOYS}/sc/scale", {"spec": {"replicas": 2}},
                       content_type="application/merge-patch+json")
    assert code == 200
    obj = api.ok("GET", f"{DEPLOYS}/sc")
    assert obj["spec"]["replicas"] == 2 and obj["metadata"]["generation"] == 3

    code, body = api.call("PUT", f"{DEPLOYS}/sc/scale", {**scale, "spec": {"replicas": 4}})
    assert code == 409, body  # the Scale's resourceVersion is a precondition
    code, body = api.call("PATCH", f"{DEPLOYS}/sc/scale", {"spec": {"replicas": -1}},
                          content_type="application/merge-patch+json")
    assert (code, body["details"]["kind"], body["details"]["causes"][0]["field"]) == (422, "Scale", "spec.replicas")
    assert api.ok("GET", f"{DEPLOYS}/sc")["spec"]["replicas"] == 2
    assert created["metadata"]["uid"] == scale["metadata"]["uid"]


def test_config_map_immutable(api):
    cm = {**CONFIG_MAP, "metadata": {"name": "frozen", "namespace": "default"}, "immutable": True}
    created = api.ok("POST", CMS, cm)
    assert created["binaryData"] == {"b.bin": "AAEC"}
    code, body = api.call("PUT", f"{CMS}/frozen", {**created, "data": {"a.conf": "x=2"}})
    assert (code, body["details"]["causes"][0]["field"]) == (422, "data"), body
    assert api.ok("GET", f"{CMS}/frozen")["data"] == {"a.conf": "x=1"}


def test_tables_and_discovery(api):
    api.ok("POST", DEPLOYS, _deployment("tab"))
    code, _, raw = api.raw("GET", f"{DEPLOYS}/tab", headers={"Accept": TABLE})
    table = json.loads(raw)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]
    assert table["rows"][0]["cells"][:4] == ["tab", "0/3", 0, 0]
    assert table["rows"][0]["cells"][5:] == ["app", "nginx:1.25", "app=web"]
    apps = {r["name"]: r for r in api.ok("GET", "/apis/apps/v1")["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale" and apps["deployments/scale"]["group"] == "autoscaling"
    assert apps["replicasets"]["shortNames"] == ["rs"] and "all" in apps["deployments"]["categories"]


KUBECTL = shutil.which("kubectl")


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_kubectl_create_get_scale_set_image(server, tmp_path):
    from tests.apiserver.test_kubectl import Kubectl
    kubectl = Kubectl(server.kubeconfig)
    # kubectl's typed create sends protobuf
    assert "deployment.apps/kc created" in kubectl("create", "deployment", "kc", "--image=nginx:1.25", "--replicas=2")
    assert "configmap/kc-conf created" in kubectl("create", "configmap", "kc-conf", "--from-literal=a=1")
    lines = kubectl("get", "deployments", "kc").splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:4] == ["kc", "0/2", "0", "0"]
    assert kubectl("get", "configmap", "kc-conf").splitlines()[1].split()[:2] == ["kc-conf", "1"]
    assert "deployment.apps/kc scaled" in kubectl("scale", "deployment", "kc", "--replicas=4")
    assert "deployment.apps/kc image updated" in kubectl("set", "image", "deployment/kc", "nginx=nginx:1.26")
    d = kubectl.json("get", "deploy", "kc")
    assert d["spec"]["replicas"] == 4 and d["metadata"]["generation"] == 3
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert "replicas" in kubectl("explain", "deployment.spec")


def test_official_python_client(server):
    pytest.importorskip("kubernetes")
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(config_file=server.kubeconfig)
    try:
        core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
        cm = core.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="py-conf"), data={"a": "1"}, binary_data={"b": "AAE="}))
        assert core.read_namespaced_config_map("py-conf", "default").data == {"a": "1"} and cm.binary_data
        labels = {"app": "py"}
        created = apps.create_namespaced_deployment("default", client.V1Deployment(
            metadata=client.V1ObjectMeta(name="py"),
            spec=client.V1DeploymentSpec(
                replicas=2, selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="nginx:1.25")])))))
        assert created.spec.strategy.rolling_update.max_surge == "25%" and created.metadata.generation == 1
        scale = apps.read_namespaced_deployment_scale("py", "default")
        assert scale.spec.replicas == 2 and scale.status.selector == "app=py"
        apps.patch_namespaced_deployment_scale("py", "default", {"spec": {"replicas": 5}})
        assert apps.read_namespaced_deployment("py", "default").spec.replicas == 5
        status = apps.read_namespaced_deployment_status("py", "default")
        assert status.metadata.name == "py"
        with pytest.raises(ApiException) as exc:
            apps.create_namespaced_replica_set("default", client.V1ReplicaSet(
                metadata=client.V1ObjectMeta(name="bad"),
                spec=client.V1ReplicaSetSpec(selector=client.V1LabelSelector(match_labels={"app": "x"}),
                                             template=client.V1PodTemplateSpec(
                                                 metadata=client.V1ObjectMeta(labels=labels),
                                                 spec=client.V1PodSpec(containers=[
                                                     client.V1Container(name="app", image="nginx")])))))
        assert exc.value.status == 422 and "spec.template.metadata.labels" in exc.value.body
        assert [d.metadata.name for d in apps.list_deployment_for_all_namespaces().items if d.metadata.name == "py"]
        apps.delete_namespaced_deployment("py", "default", propagation_policy="Background")
        core.delete_namespaced_config_map("py-conf", "default")
    finally:
        api_client.close()
