"""Server-side apply over HTTP (PATCH application/apply-patch+yaml) and the managedFields every
write keeps, as kube-apiserver answers them."""
from __future__ import annotations

import pytest

SVCS = "/api/v1/namespaces/default/services"
APPLY, MERGE = "application/apply-patch+yaml", "application/merge-patch+json"


def svc(**spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}], **spec}}


def entries(obj):
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


@pytest.fixture
def api(bare_apiserver):
    return bare_apiserver.http()


def test_apply_creates_then_merges_and_owns_the_applied_fields(api):
    status, created = api.call("PATCH", f"{SVCS}/web?fieldManager=alice", svc(), APPLY)
    assert status == 201, created
    mine = entries(created)[("alice", "Apply")]
    assert mine["apiVersion"] == "v1" and mine["fieldsType"] == "FieldsV1" and mine["time"]
    assert mine["fieldsV1"] == {"f:spec": {
        "f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}, "f:targetPort": {}}},
        "f:selector": {}}}  # Service selectors are atomic maps
    status, again = api.call("PATCH", f"{SVCS}/web?fieldManager=alice", svc(), APPLY)
    assert status == 200
    # the same configuration again is a no-op: nothing written, not even the entry's time
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert again["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_a_yaml_body_is_applied(api):
    body = (b"apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 81\n")
    status, out = api.call("PATCH", f"{SVCS}/web?fieldManager=alice", body, APPLY)
    assert status == 201, out
    assert [p["port"] for p in out["spec"]["ports"]] == [81]


def test_conflict_names_the_manager_and_field_and_force_takes_it(api):
    api.ok("PATCH", f"{SVCS}/web?fieldManager=alice", svc(), APPLY)
    status, body = api.call("PATCH", f"{SVCS}/web?fieldManager=bob",
                            svc(ports=[{"port": 80, "targetPort": 9090}]), APPLY)
    assert status == 409, body
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Apply failed with 1 conflict: conflict with "alice": '
                               '.spec.ports[port=80,protocol="TCP"].targetPort')
    assert body["details"]["causes"] == [{"reason": "FieldManagerConflict", "message": 'conflict with "alice"',
                                          "field": '.spec.ports[port=80,protocol="TCP"].targetPort'}]
    out = api.ok("PATCH", f"{SVCS}/web?fieldManager=bob&force=true",
                 svc(ports=[{"port": 80, "targetPort": 9090}]), APPLY)
    assert out["spec"]["ports"][0]["targetPort"] == 9090
    owners = entries(out)
    port = 'k:{"port":80,"protocol":"TCP"}'
    assert "f:targetPort" in owners[("bob", "Apply")]["fieldsV1"]["f:spec"]["f:ports"][port]
    assert "f:targetPort" not in owners[("alice", "Apply")]["fieldsV1"]["f:spec"]["f:ports"][port]


def test_same_value_is_shared_without_conflict(api):
    api.ok("PATCH", f"{SVCS}/web?fieldManager=alice", svc(), APPLY)
    out = api.ok("PATCH", f"{SVCS}/web?fieldManager=bob", svc(), APPLY)
    assert {("alice", "Apply"), ("bob", "Apply")} <= set(entries(out))


def test_update_after_apply_conflicts_with_the_updater(api):
    api.ok("PATCH", f"{SVCS}/web?fieldManager=alice", svc(), APPLY)
    api.ok("PATCH", f"{SVCS}/web?fieldManager=editor", {"spec": {"selector": {"app": "other"}}}, MERGE)
    status, body = api.call("PATCH", f"{SVCS}/web?fieldManager=alice", svc(), APPLY)
    assert status == 409
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "editor" using v1: .spec.selector'


def test_removing_a_field_from_the_config_removes_it_unless_another_manager_owns_it(api):
    api.ok("PATCH", f"{SVCS}/web?fieldManager=alice",
           {**svc(), "metadata": {"name": "web", "labels": {"a": "1", "b": "2"}}}, APPLY)
    api.ok("PATCH", f"{SVCS}/web?fieldManager=bob",
           {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"b": "2"}}}, APPLY)
    out = api.ok("PATCH", f"{SVCS}/web?fieldManager=alice", svc(), APPLY)
    assert out["metadata"]["labels"] == {"b": "2"}  # a went; bob still applies b


def test_every_write_records_its_manager(api):
    status, created = api.call("POST", f"{SVCS}?fieldManager=maker", svc())
    assert status == 201
    made = entries(created)[("maker", "Update")]
    assert made["fieldsV1"]["f:spec"]["f:selector"] == {}
    # without fieldManager the User-Agent up to its first "/" names the manager
    status, out = api.call("PATCH", f"{SVCS}/web", {"metadata": {"labels": {"x": "1"}}}, MERGE,
                           headers={"User-Agent": "kubectl-label/v1.32.0 (linux/amd64) kubernetes/abc"})
    assert status == 200
    assert entries(out)[("kubectl-label", "Update")]["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:x": {}}}}
    # the status subresource is its own entry
    out = api.ok("PUT", f"{SVCS}/web/status?fieldManager=lb",
                 {**out, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}})
    lb = [e for e in out["metadata"]["managedFields"] if e["manager"] == "lb"]
    assert lb and lb[0]["subresource"] == "status" and list(lb[0]["fieldsV1"]) == ["f:status"]


def test_dry_run_apply_stores_nothing(api):
    status, out = api.call("PATCH", f"{SVCS}/web?fieldManager=alice&dryRun=All", svc(), APPLY)
    assert status == 201 and entries(out)[("alice", "Apply")]
    status, _ = api.call("GET", f"{SVCS}/web")
    assert status == 404


@pytest.mark.parametrize("query, field, reason", [
    ("", "fieldManager", "FieldValueRequired"),
    ("?fieldManager=" + "m" * 129, "fieldManager", "FieldValueTooLong"),
    ("?fieldManager=a%07b", "fieldManager", "FieldValueInvalid"),
])
def test_bad_field_manager_is_invalid(api, query, field, reason):
    status, body = api.call("PATCH", f"{SVCS}/web{query}", svc(), APPLY)
    assert status == 422, body
    assert body["details"]["kind"] == "PatchOptions" and body["details"]["group"] == "meta.k8s.io"
    assert body["details"]["causes"][0]["field"] == field and body["details"]["causes"][0]["reason"] == reason


def test_field_manager_is_checked_on_create_and_force_only_with_apply(api):
    status, body = api.call("POST", f"{SVCS}?fieldManager=" + "m" * 129, svc())
    assert status == 422 and body["details"]["kind"] == "CreateOptions"
    api.ok("POST", SVCS, svc())
    status, body = api.call("PATCH", f"{SVCS}/web?force=true", {"metadata": {"labels": {"a": "b"}}}, MERGE)
    assert status == 422 and body["details"]["causes"][0]["field"] == "force"


def test_apply_to_the_status_subresource(api):
    api.ok("PATCH", f"{SVCS}/web?fieldManager=alice", svc(), APPLY)
    config = {**svc(type="NodePort"), "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}
    out = api.ok("PATCH", f"{SVCS}/web/status?fieldManager=lb", config, APPLY)
    assert out["status"]["loadBalancer"]["ingress"] == [{"ip": "1.2.3.4"}]
    assert out["spec"]["type"] == "ClusterIP"  # the status subresource writes only the status
    lb = [e for e in out["metadata"]["managedFields"] if e["manager"] == "lb"]
    assert lb[0]["subresource"] == "status" and list(lb[0]["fieldsV1"]) == ["f:status"]
