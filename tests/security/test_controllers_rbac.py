"""The in-process controllers run as system:kube-controller-manager (controllers.kubeconfig)
with only the kproxy:controllers ClusterRole: they still maintain EndpointSlices and delete a
namespace's whole content, and the audit log shows none of their requests refused."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from tests.apiserver.httputil import Http, client_tls_context

WAIT = 30.0
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def wait_for(predicate, what):
    deadline = time.monotonic() + WAIT
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_controllers_work_under_their_role(secure_apiserver):
    admin = Http(secure_apiserver.url, ssl_context=client_tls_context(secure_apiserver.data_dir, "admin"))
    admin.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "ctl"}})
    admin.ok("POST", "/api/v1/namespaces/ctl/services", {
        "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    pod = admin.ok("POST", "/api/v1/namespaces/ctl/pods", {
        "metadata": {"name": "web-1", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "terminationGracePeriodSeconds": 0,  # gone at once on delete
                 "containers": [{"name": "c", "image": "echo"}]}})
    pod["status"] = {"phase": "Running", "podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}],
                     "conditions": [{"type": "Ready", "status": "True"}]}
    admin.ok("PUT", "/api/v1/namespaces/ctl/pods/web-1/status", pod)

    def slice_addresses():
        items = admin.ok("GET", "/apis/discovery.k8s.io/v1/namespaces/ctl/endpointslices")["items"]
        return [a for s in items for e in s.get("endpoints") or [] for a in e["addresses"]]
    assert wait_for(slice_addresses, "an EndpointSlice for web") == ["10.244.1.7"]

    admin.ok("POST", f"{RBAC}/namespaces/ctl/roles", {
        "metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    deleting_since = datetime.now(timezone.utc)
    admin.ok("DELETE", "/api/v1/namespaces/ctl")
    wait_for(lambda: admin.call("GET", "/api/v1/namespaces/ctl")[0] == 404, "namespace ctl to be gone")

    def terminating_namespace_refusal(r: dict) -> bool:
        # a create in a namespace being deleted is refused with 403 by the namespace lifecycle,
        # not by RBAC (a controller may still be filling the namespace when it goes)
        return (r["verb"] == "create" and r["namespace"] == "ctl"
                and datetime.fromisoformat(r["time"]) >= deleting_since)

    refused = [r for r in map(json.loads, (secure_apiserver.data_dir / "audit.log").read_text().splitlines())
               if r["user"] == "system:kube-controller-manager" and r["code"] in (401, 403)
               and not terminating_namespace_refusal(r)]
    assert refused == []
