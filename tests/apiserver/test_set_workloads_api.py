"""DaemonSets, StatefulSets and ControllerRevisions over HTTP: defaults, generation, fields an
update may not change (422 naming the field, nothing stored), the status and scale
subresources, Table columns and discovery. The server runs without controllers, so only what
these tests write is stored."""
from __future__ import annotations

import copy
import json

import pytest

from tests.apiserver.httputil import TABLE, named
from tests.unit.set_workload_objects import CONTROLLER_REVISION, DAEMON_SET, STATEFUL_SET

APPS = "/apis/apps/v1/namespaces/default"


def _table(api, path):
    _, _, raw = api.raw("GET", path, headers={"Accept": TABLE})
    table = json.loads(raw)
    return [c["name"] for c in table["columnDefinitions"]], table["rows"][0]["cells"]


def test_daemon_set_defaults_status_and_table(api):
    created = api.ok("POST", f"{APPS}/daemonsets", named(DAEMON_SET, "dflt"))
    spec = created["spec"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert spec["revisionHistoryLimit"] == 10 and spec["template"]["spec"]["restartPolicy"] == "Always"
    assert created["metadata"]["generation"] == 1 and created["status"] == {
        "currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}
    status = {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "numberMisscheduled": 0,
              "updatedNumberScheduled": 1, "numberAvailable": 2, "observedGeneration": 1}
    written = api.ok("PUT", f"{APPS}/daemonsets/dflt/status", {**created, "status": status})
    assert written["status"] == status and written["metadata"]["generation"] == 1
    api.ok("PATCH", f"{APPS}/daemonsets/dflt", {"spec": {"template": {"spec": {"nodeSelector": {"os": "linux"}}}}},
           "application/merge-patch+json")
    columns, cells = _table(api, f"{APPS}/daemonsets/dflt")
    assert columns == ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age",
                       "Containers", "Images", "Selector"]
    assert cells[:7] == ["dflt", 3, 3, 2, 1, 2, "os=linux"] and cells[8:] == ["app", "nginx:1.25", "app=web"]
    assert api.ok("GET", f"{APPS}/daemonsets/dflt")["metadata"]["generation"] == 2


def test_daemon_set_selector_is_immutable(api):
    created = api.ok("POST", f"{APPS}/daemonsets", named(DAEMON_SET, "imm"))
    moved = copy.deepcopy(created)
    moved["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    code, body = api.call("PUT", f"{APPS}/daemonsets/imm", moved)
    assert (code, body["reason"], body["details"]["causes"][0]["field"]) == (422, "Invalid", "spec.selector"), body
    assert api.ok("GET", f"{APPS}/daemonsets/imm")["metadata"]["resourceVersion"] == \
        created["metadata"]["resourceVersion"]


def test_stateful_set_defaults_forbidden_updates_scale_and_table(api):
    created = api.ok("POST", f"{APPS}/statefulsets", named(STATEFUL_SET, "db"))
    spec = created["spec"]
    assert (spec["podManagementPolicy"], spec["revisionHistoryLimit"]) == ("OrderedReady", 10)
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    for field, value in (("serviceName", "other"), ("podManagementPolicy", "Parallel")):
        changed = copy.deepcopy(created)
        changed["spec"][field] = value
        code, body = api.call("PUT", f"{APPS}/statefulsets/db", changed)
        assert (code, body["details"]["causes"][0]["field"], body["details"]["causes"][0]["reason"]) == \
            (422, "spec", "FieldValueForbidden"), body
    assert api.ok("GET", f"{APPS}/statefulsets/db")["metadata"]["resourceVersion"] == \
        created["metadata"]["resourceVersion"]

    scale = api.ok("GET", f"{APPS}/statefulsets/db/scale")
    assert scale["spec"] == {"replicas": 3} and scale["status"]["selector"] == "app=web"
    code, _ = api.call("PATCH", f"{APPS}/statefulsets/db/scale", {"spec": {"replicas": 5}},
                       content_type="application/merge-patch+json")
    assert code == 200
    obj = api.ok("GET", f"{APPS}/statefulsets/db")
    assert obj["spec"]["replicas"] == 5 and obj["metadata"]["generation"] == 2
    api.ok("PUT", f"{APPS}/statefulsets/db/status", {**obj, "status": {"replicas": 5, "readyReplicas": 4}})
    columns, cells = _table(api, f"{APPS}/statefulsets/db")
    assert columns == ["Name", "Ready", "Age", "Containers", "Images"]
    assert cells[:2] == ["db", "4/5"] and cells[3:] == ["app", "nginx:1.25"]


def test_controller_revision_data_is_immutable(api):
    owner = api.ok("POST", f"{APPS}/daemonsets", named(DAEMON_SET, "owner"))
    rev = named(CONTROLLER_REVISION, "owner-1")
    rev["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "owner",
                                           "uid": owner["metadata"]["uid"], "controller": True}]
    created = api.ok("POST", f"{APPS}/controllerrevisions", rev)
    renumbered = api.ok("PUT", f"{APPS}/controllerrevisions/owner-1", {**created, "revision": 7})
    assert renumbered["revision"] == 7
    code, body = api.call("PUT", f"{APPS}/controllerrevisions/owner-1", {**renumbered, "data": {"spec": {}}})
    assert (code, body["details"]["causes"][0]["field"]) == (422, "data"), body
    columns, cells = _table(api, f"{APPS}/controllerrevisions/owner-1")
    assert columns == ["Name", "Controller", "Revision", "Age"] and cells[:3] == ["owner-1", "daemonset.apps/owner", 7]


def test_discovery(api):
    apps = {r["name"]: r for r in api.ok("GET", "/apis/apps/v1")["resources"]}
    assert apps["daemonsets"]["shortNames"] == ["ds"] and apps["statefulsets"]["shortNames"] == ["sts"]
    assert "all" in apps["daemonsets"]["categories"] and "all" in apps["statefulsets"]["categories"]
    assert "daemonsets/status" in apps and "daemonsets/scale" not in apps
    assert apps["statefulsets/scale"]["kind"] == "Scale" and "controllerrevisions/status" not in apps


def test_official_python_client(server):
    pytest.importorskip("kubernetes")
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(config_file=server.kubeconfig)
    try:
        apps = client.AppsV1Api(api_client)
        labels = {"app": "py"}
        template = client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(
            containers=[client.V1Container(name="app", image="nginx:1.25")]))
        ds = apps.create_namespaced_daemon_set("default", client.V1DaemonSet(
            metadata=client.V1ObjectMeta(name="py-ds"),
            spec=client.V1DaemonSetSpec(selector=client.V1LabelSelector(match_labels=labels), template=template)))
        assert ds.spec.update_strategy.rolling_update.max_unavailable == 1
        apps.patch_namespaced_daemon_set("py-ds", "default", {"metadata": {"labels": {"x": "y"}}})
        assert apps.read_namespaced_daemon_set_status("py-ds", "default").metadata.labels == {"x": "y"}
        sts = apps.create_namespaced_stateful_set("default", client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name="py-sts"),
            spec=client.V1StatefulSetSpec(service_name="py", selector=client.V1LabelSelector(match_labels=labels),
                                          template=template)))
        assert sts.spec.replicas == 1 and sts.spec.pod_management_policy == "OrderedReady"
        apps.patch_namespaced_stateful_set_scale("py-sts", "default", {"spec": {"replicas": 4}})
        assert apps.read_namespaced_stateful_set_scale("py-sts", "default").spec.replicas == 4
        with pytest.raises(ApiException) as exc:
            apps.create_namespaced_stateful_set("default", client.V1StatefulSet(
                metadata=client.V1ObjectMeta(name="py-bad"),
                spec=client.V1StatefulSetSpec(service_name="", selector=client.V1LabelSelector(match_labels=labels),
                                              template=template)))
        assert exc.value.status == 422 and "spec.serviceName" in exc.value.body
        rev = apps.create_namespaced_controller_revision("default", client.V1ControllerRevision(
            metadata=client.V1ObjectMeta(name="py-rev"), revision=1, data={"spec": {"template": {"metadata": {}}}}))
        assert rev.revision == 1 and rev.data == {"spec": {"template": {"metadata": {}}}}
        assert "py-rev" in [r.metadata.name for r in apps.list_namespaced_controller_revision("default").items]
        apps.delete_namespaced_daemon_set("py-ds", "default")
        apps.delete_namespaced_stateful_set("py-sts", "default")
    finally:
        api_client.close()
