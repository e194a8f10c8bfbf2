"""ReplicationControllers, PodDisruptionBudgets and pods/eviction over HTTP against a real
apiserver without controllers: the tests write the budgets' status themselves, as the
disruption controller would, so every answer of the eviction API is pinned down."""
from __future__ import annotations

import copy
import threading

import pytest

from tests.apiserver.httputil import TABLE
from tests.unit.workload_objects import TEMPLATE

RCS = "/api/v1/namespaces/default/replicationcontrollers"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
PODS = "/api/v1/namespaces/default/pods"


def rc(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name},
            "spec": {"template": copy.deepcopy(TEMPLATE), **spec}}


def pdb(name: str, app: str, **spec) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": app}}, **spec}}


def table(api, path) -> dict:
    status, obj = api.call("GET", path, headers={"Accept": TABLE})
    assert status == 200, obj
    return obj


def fields(api, method, path, body) -> list[str]:
    status, obj = api.call(method, path, body)
    assert status == 422 and obj["reason"] == "Invalid", obj
    return sorted(c["field"] for c in obj["details"]["causes"])


# -- ReplicationController ----------------------------------------------------------------

def test_rc_defaults_scale_and_table(api):
    created = api.ok("POST", RCS, rc("web"))
    assert created["spec"]["selector"] == {"app": "web"}  # from the template's labels
    assert created["metadata"]["labels"] == {"app": "web"}
    assert created["spec"]["replicas"] == 1 and created["metadata"]["generation"] == 1
    scale = api.ok("GET", f"{RCS}/web/scale")
    assert (scale["spec"]["replicas"], scale["status"]["selector"]) == (1, "app=web")
    api.ok("PATCH", f"{RCS}/web/scale", {"spec": {"replicas": 4}}, content_type="application/merge-patch+json")
    assert api.ok("GET", f"{RCS}/web")["spec"]["replicas"] == 4
    table_ = table(api, f"{RCS}/web")
    assert [c["name"] for c in table_["columnDefinitions"]][:5] == ["Name", "Desired", "Current", "Ready", "Age"]
    assert table_["rows"][0]["cells"][:4] == ["web", 4, 0, 0]
    assert table_["rows"][0]["cells"][-1] == "app=web"
    # an RC's selector may change (unlike a ReplicaSet's), as long as it matches the template
    moved = api.ok("GET", f"{RCS}/web")
    moved["spec"]["selector"] = {"app": "web", "tier": "front"}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    assert api.ok("PUT", f"{RCS}/web", moved)["metadata"]["generation"] == 3  # the scale was 2


def test_rc_validation(api):
    bad = rc("bad", selector={"app": "other"}, replicas=-1)
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert fields(api, "POST", RCS, bad) == ["spec.replicas", "spec.template.metadata.labels",
                                             "spec.template.spec.restartPolicy"]
    no_labels = rc("nolabels")
    no_labels["spec"]["template"]["metadata"] = {}
    assert fields(api, "POST", RCS, no_labels) == ["spec.selector"]
    assert api.call("GET", f"{RCS}/bad")[0] == 404


# -- PodDisruptionBudget ------------------------------------------------------------------

def test_pdb_validation(api):
    assert fields(api, "POST", PDBS, pdb("both", "web", minAvailable=1, maxUnavailable=1)) == ["spec"]
    assert fields(api, "POST", PDBS, pdb("pct", "web", minAvailable="101%")) == ["spec.minAvailable"]
    assert fields(api, "POST", PDBS, pdb("neg", "web", maxUnavailable=-1)) == ["spec.maxUnavailable"]
    assert fields(api, "POST", PDBS, pdb("str", "web", maxUnavailable="half")) == ["spec.maxUnavailable"]
    assert fields(api, "POST", PDBS, pdb("pol", "web", minAvailable=1, unhealthyPodEvictionPolicy="Never")) == \
        ["spec.unhealthyPodEvictionPolicy"]
    broken = pdb("sel", "web", minAvailable=1)
    broken["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "Near"}]}
    assert fields(api, "POST", PDBS, broken) == ["spec.selector"]
    created = api.ok("POST", PDBS, pdb("ok", "web", minAvailable="50%"))
    assert created["status"] == {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
    assert created["metadata"]["generation"] == 1
    assert fields(api, "PUT", f"{PDBS}/ok/status", {**created, "status": {"disruptionsAllowed": -1}}) == \
        ["status.disruptionsAllowed"]
    rows = table(api, PDBS)
    assert [c["name"] for c in rows["columnDefinitions"]] == ["Name", "Min Available", "Max Unavailable",
                                                              "Allowed Disruptions", "Age"]
    assert [r["cells"][:4] for r in rows["rows"] if r["cells"][0] == "ok"] == [["ok", "50%", "N/A", 0]]
    api.ok("DELETE", f"{PDBS}/ok")


# -- pods/eviction ------------------------------------------------------------------------

def make_pod(api, name: str, app: str, *, ready: bool = True, node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "x"}]}
    if node:
        spec["nodeName"] = node  # deleted gracefully: it stays, marked, until its kubelet is done
    pod = api.ok("POST", PODS, {"metadata": {"name": name, "labels": {"app": app}}, "spec": spec})
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return api.ok("PUT", f"{PODS}/{name}/status", pod)


def make_budget(api, name: str, app: str, *, allowed: int, current: int = 3, desired: int = 2, **spec) -> dict:
    created = api.ok("POST", PDBS, pdb(name, app, **spec))
    status = {"disruptionsAllowed": allowed, "currentHealthy": current, "desiredHealthy": desired,
              "expectedPods": 3, "observedGeneration": 1}
    return api.ok("PUT", f"{PDBS}/{name}/status", {**created, "status": status})


def evict(api, name: str, **options):
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}}
    if options:
        body["deleteOptions"] = options
    return api.call("POST", f"{PODS}/{name}/eviction", body)


def exists(api, name: str) -> bool:
    return api.call("GET", f"{PODS}/{name}")[0] == 200


def test_eviction_within_and_beyond_the_budget(api):
    for i in range(3):
        make_pod(api, f"ev-{i}", "ev")
    make_budget(api, "ev", "ev", allowed=1, maxUnavailable=1)

    status, obj = evict(api, "ev-0")
    assert (status, obj["status"]) == (201, "Success")
    assert not exists(api, "ev-0")  # not on a node: deleted at once
    budget = api.ok("GET", f"{PDBS}/ev")["status"]
    assert budget["disruptionsAllowed"] == 0 and list(budget["disruptedPods"]) == ["ev-0"]
    assert [(c["type"], c["status"], c["reason"]) for c in budget["conditions"]] == \
        [("DisruptionAllowed", "False", "InsufficientPods")]

    status, obj = evict(api, "ev-1")
    assert status == 429 and obj["reason"] == "TooManyRequests"
    assert obj["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert obj["details"]["causes"] == [{"reason": "DisruptionBudget",
                                         "message": "The disruption budget ev needs 2 healthy pods and has 3 currently"}]
    assert exists(api, "ev-1")

    # a pod no budget covers goes; a pod that is not running disrupts nothing
    make_pod(api, "free", "free")
    assert evict(api, "free")[0] == 201 and not exists(api, "free")
    # an evicted pod on a node is marked as the eviction's target while it terminates
    make_pod(api, "bound", "free", node="node1")
    assert evict(api, "bound", preconditions={"uid": "someone-else"})[0] == 409
    assert evict(api, "bound")[0] == 201
    bound = api.ok("GET", f"{PODS}/bound")
    assert bound["metadata"]["deletionTimestamp"]
    assert [(c["status"], c["reason"], c["message"]) for c in bound["status"]["conditions"]
            if c["type"] == "DisruptionTarget"] == [("True", "EvictionByEvictionAPI", "Eviction API: evicting")]
    api.ok("POST", PODS, {"metadata": {"name": "ev-pending", "labels": {"app": "ev"}},
                         "spec": {"containers": [{"name": "c", "image": "x"}]}})
    assert evict(api, "ev-pending")[0] == 201 and not exists(api, "ev-pending")
    assert evict(api, "missing")[0] == 404


def test_eviction_of_unhealthy_pods_and_stale_budgets(api):
    for i in range(2):
        make_pod(api, f"uh-{i}", "uh", ready=False)
    make_budget(api, "uh", "uh", allowed=0, current=2, desired=2, minAvailable=2)
    assert evict(api, "uh-0")[0] == 201  # budget met: an unready pod costs nothing
    api.ok("PUT", f"{PDBS}/uh/status", {**api.ok("GET", f"{PDBS}/uh"),
                                         "status": {"currentHealthy": 1, "desiredHealthy": 2, "observedGeneration": 1}})
    assert evict(api, "uh-1")[0] == 429
    always = api.ok("GET", f"{PDBS}/uh")
    always["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    api.ok("PUT", f"{PDBS}/uh", always)
    assert evict(api, "uh-1")[0] == 201 and not exists(api, "uh-1")

    # a budget whose spec changed after its status was written: ask again later
    make_pod(api, "stale", "stale")
    budget = make_budget(api, "stale", "stale", allowed=3, maxUnavailable=1)
    api.ok("PUT", f"{PDBS}/stale", {**budget, "spec": {**budget["spec"], "maxUnavailable": 2}})
    status, obj = evict(api, "stale")
    assert status == 429 and "still being processed" in obj["details"]["causes"][0]["message"]
    assert obj["details"]["retryAfterSeconds"] == 10 and exists(api, "stale")


def test_two_budgets_is_a_500_and_bad_bodies_are_400(api):
    make_pod(api, "two", "two")
    make_budget(api, "two-a", "two", allowed=5, minAvailable=0)
    make_budget(api, "two-b", "two", allowed=5, minAvailable=0)
    status, obj = evict(api, "two")
    assert (status, obj["status"], obj["code"]) == (500, "Failure", 500)
    assert obj["message"] == "This pod has more than one PodDisruptionBudget, which the eviction subresource " \
                             "does not support."
    assert exists(api, "two")
    status, obj = api.call("POST", f"{PODS}/two/eviction", {"kind": "Eviction", "metadata": {"name": "other"}})
    assert status == 400 and obj["message"] == "name in URL does not match name in Eviction object"
    status, obj = api.call("POST", f"{PODS}/two/eviction", {"kind": "Binding", "metadata": {"name": "two"}})
    assert status == 400
    status, obj = evict(api, "two", propagationPolicy="Sideways")
    assert status == 422
    assert api.call("GET", f"{PODS}/two/eviction")[0] == 405


def test_concurrent_evictions_with_one_disruption_allowed(server, api):
    names = [f"race-{i}" for i in range(4)]
    for name in names:
        make_pod(api, name, "race")
    make_budget(api, "race", "race", allowed=1, maxUnavailable=1)
    results: dict[str, int] = {}
    barrier = threading.Barrier(len(names))

    def go(name: str) -> None:
        http = server.http()
        barrier.wait()
        results[name] = evict(http, name)[0]

    threads = [threading.Thread(target=go, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results.values()) == [201, 429, 429, 429], results
    assert sum(exists(api, n) for n in names) == 3
    assert api.ok("GET", f"{PDBS}/race")["status"]["disruptionsAllowed"] == 0


def test_discovery_and_rbac(server, api):
    resources = {r["name"]: r for r in api.ok("GET", "/api/v1")["resources"]}
    assert resources["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                          "group": "policy", "version": "v1", "kind": "Eviction",
                                          "verbs": ["create"]}
    assert resources["replicationcontrollers"]["shortNames"] == ["rc"]
    assert "replicationcontrollers/scale" in resources
    policy = {r["name"] for r in api.ok("GET", "/apis/policy/v1")["resources"]}
    assert policy == {"poddisruptionbudgets", "poddisruptionbudgets/status"}
    make_pod(api, "guarded", "guarded")
    status, _ = evict(server.http("kube-proxy"), "guarded")
    assert status == 403 and exists(api, "guarded")

    # the user-facing roles, granted in the namespace: edit may evict, view may not
    anonymous = server.http(None)
    for role in ("view", "edit"):
        api.ok("POST", "/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": role}})
        api.ok("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", {
            "metadata": {"name": role}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                   "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": role, "namespace": "default"}]})
        token = api.ok("POST", f"/api/v1/namespaces/default/serviceaccounts/{role}/token",
                       {"spec": {"expirationSeconds": 600}})["status"]["token"]
        status, obj = anonymous.call("POST", f"{PODS}/guarded/eviction", {
            "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "guarded"}},
            headers={"Authorization": f"Bearer {token}"})
        assert status == (201 if role == "edit" else 403), obj
    assert not exists(api, "guarded")


def test_official_python_client(server, api):
    """The official client's ReplicationController e2e steps, a budget and an eviction."""
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    with config.new_client_from_config(config_file=server.kubeconfig) as c:
        core, policy = client.CoreV1Api(c), client.PolicyV1Api(c)
        manifest = {"apiVersion": "v1", "kind": "ReplicationController",
                    "metadata": {"labels": {"name": "frontend"}, "name": "frontend"},
                    "spec": {"replicas": 2, "selector": {"name": "frontend"},
                             "template": {"metadata": {"labels": {"name": "frontend"}},
                                          "spec": {"containers": [{"image": "nginx", "name": "nginx", "ports": [
                                              {"containerPort": 80, "protocol": "TCP"}]}]}}}}
        created = core.create_namespaced_replication_controller(body=manifest, namespace="default")
        assert (created.metadata.name, created.spec.replicas) == ("frontend", 2)
        read = core.read_namespaced_replication_controller(name="frontend", namespace="default")
        assert read.spec.selector == {"name": "frontend"}
        core.delete_namespaced_replication_controller(name="frontend", namespace="default",
                                                      propagation_policy="Background")

        budget = client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="py"),
            spec=client.V1PodDisruptionBudgetSpec(max_unavailable="50%",
                                                  selector=client.V1LabelSelector(match_labels={"app": "py"})))
        policy.create_namespaced_pod_disruption_budget(namespace="default", body=budget)
        assert policy.read_namespaced_pod_disruption_budget("py", "default").spec.max_unavailable == "50%"
        make_pod(api, "py-0", "py")
        eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="py-0", namespace="default"))
        with pytest.raises(ApiException) as refused:  # the budget's status allows nothing yet
            core.create_namespaced_pod_eviction(name="py-0", namespace="default", body=eviction)
        assert refused.value.status == 429
        assert kubernetes and exists(api, "py-0")
