"""Garbage collection against the real apiserver: Background, Foreground and Orphan
propagation through `kubectl delete --cascade=...` and the API, with the ReplicaSet and
Deployment controllers making the dependents and the fake kubelet marking pods ready."""
from __future__ import annotations

import copy
import shutil

import pytest

from kproxy.api.resources import CONFIG_MAPS, DEPLOYMENTS, PODS, REPLICA_SETS
from tests.controllers.fake_kubelet import FakeKubelet
from tests.controllers.test_deployment_controller import wait_complete
from tests.unit.workload_objects import DEPLOYMENT

KUBECTL = shutil.which("kubectl")


def counts(c):
    return (len(c.list(DEPLOYMENTS, "default")["items"]), len(c.list(REPLICA_SETS, "default")["items"]),
            len(c.list(PODS, "default")["items"]))


def test_owner_gone_dependents_deleted_and_dangling_references_removed(env):
    c = env.client
    a = c.create(CONFIG_MAPS, {"metadata": {"name": "a", "namespace": "default"}})
    b = c.create(CONFIG_MAPS, {"metadata": {"name": "b", "namespace": "default"}})
    ref = lambda o: {"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"],  # noqa: E731
                     "uid": o["metadata"]["uid"]}
    c.create(CONFIG_MAPS, {"metadata": {"name": "only-a", "namespace": "default", "ownerReferences": [ref(a)]}})
    c.create(CONFIG_MAPS, {"metadata": {"name": "a-and-b", "namespace": "default",
                                        "ownerReferences": [ref(a), ref(b)]}})
    c.delete(CONFIG_MAPS, "a", "default")
    c.wait_for(lambda c: c.get_or_none(CONFIG_MAPS, "only-a", "default") is None)
    def one_owner_left(c):
        obj = c.get(CONFIG_MAPS, "a-and-b", "default")
        return obj if len(obj["metadata"]["ownerReferences"]) == 1 else None
    both = c.wait_for(one_owner_left)
    assert both["metadata"]["ownerReferences"][0]["name"] == "b"


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_kubectl_delete_cascade(env, kubelet, cascade):
    from tests.apiserver.test_kubectl import Kubectl
    kubectl = Kubectl(env.server.kubeconfig)
    c = env.client
    c.create(DEPLOYMENTS, copy.deepcopy(DEPLOYMENT))
    wait_complete(c)
    assert counts(c) == (1, 1, 3)
    out = kubectl("delete", "deployment", "web", f"--cascade={cascade}", "--timeout=60s")
    assert 'deployment.apps "web" deleted' in out
    if cascade == "orphan":
        # the ReplicaSet lost its owner and kept its pods
        rs = c.wait_for(lambda c: [r for r in c.list(REPLICA_SETS, "default")["items"]
                                   if not r["metadata"].get("ownerReferences")])
        assert counts(c) == (0, 1, 3) and rs[0]["status"]["readyReplicas"] == 3
    else:
        if cascade == "foreground":
            # kubectl waited for the Deployment, which waited for its dependents
            assert counts(c)[1:] == (0, 0)
        c.wait_for(lambda c: counts(c) == (0, 0, 0))


def test_invalid_propagation_policy_is_refused(env):
    api = env.server.http()
    c = env.client
    c.create(CONFIG_MAPS, {"metadata": {"name": "x", "namespace": "default"}})
    code, body = api.call("DELETE", "/api/v1/namespaces/default/configmaps/x",
                          {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Sideways"})
    assert (code, body["reason"]) == (422, "Invalid"), body
    assert c.get(CONFIG_MAPS, "x", "default")


def test_controllers_inside_the_apiserver_may_do_all_of_it(tmp_path):
    """The embedded controllers act as system:kube-controller-manager: RBAC lets them manage
    ReplicaSets, pods and Deployment status and collect the garbage."""
    from kproxy.client.sync import Client
    from tests.apiserver.fixtures import start_apiserver
    server = start_apiserver(tmp_path)
    kubelet = None
    try:
        with Client.from_kubeconfig(server.kubeconfig) as c:
            kubelet = FakeKubelet(server.kubeconfig)
            c.create(DEPLOYMENTS, copy.deepcopy(DEPLOYMENT))
            wait_complete(c)
            c.delete(DEPLOYMENTS, "web", "default")
            c.wait_for(lambda c: counts(c) == (0, 0, 0))
    finally:
        if kubelet is not None:
            kubelet.stop()
        server.stop()
