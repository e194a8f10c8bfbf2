"""Pure pieces of the apiserver's probes, metrics labels and kubernetes-endpoints reconciler."""
from __future__ import annotations

import pytest

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.apiserver import health
from kproxy.apiserver.endpoint_reconciler import EndpointReconciler, advertised_address
from kproxy.apiserver.metrics import request_labels


@pytest.mark.parametrize("advertise, bind, expected", [
    (None, "127.0.0.1", None), (None, "0.0.0.0", None), (None, "::", None), (None, "10.1.2.3", "10.1.2.3"),
    ("192.0.2.7", "127.0.0.1", "192.0.2.7"), (None, "localhost", None),
])
def test_advertised_address(advertise, bind, expected):
    assert advertised_address(advertise, bind) == expected


class FakeRegistry:
    """Stores objects by (resource, name); enough for the reconciler's get/create/update."""

    def __init__(self):
        self.objects: dict[tuple[str, str], dict] = {}

    def get(self, resource, namespace, name):
        try:
            return self.objects[(resource.plural, name)]
        except KeyError:
            raise st.ApiError(st.status(404, "NotFound", "not found")) from None

    def create(self, resource, namespace, body):
        self.objects[(resource.plural, body["metadata"]["name"])] = body
        return body

    def update(self, resource, namespace, name, body):
        self.objects[(resource.plural, name)] = body
        return body, False


def test_reconciler_publishes_then_removes_its_address():
    registry = FakeRegistry()
    reconciler = EndpointReconciler(registry, "192.0.2.7", 6443)
    reconciler.reconcile()
    eps = registry.objects[(R.ENDPOINTS.plural, "kubernetes")]
    assert eps["subsets"][0]["addresses"] == [{"ip": "192.0.2.7"}]
    assert eps["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    eps["metadata"]["labels"]["extra"] = "kept"
    reconciler.remove_own_address()
    eps = registry.objects[(R.ENDPOINTS.plural, "kubernetes")]
    assert eps["subsets"] == [] and eps["metadata"]["labels"]["extra"] == "kept"
    assert registry.objects[(R.ENDPOINT_SLICES.plural, "kubernetes")]["endpoints"] == []


def test_probe_rendering():
    ok = health.render("livez", [("ping", None), ("etcd", None)], verbose=True)
    assert ok.status == 200 and ok.text == "[+]ping ok\n[+]etcd ok\nlivez check passed\n"
    assert health.render("livez", [("ping", None)], verbose=False).text == "ok"
    bad = health.render("readyz", [("ping", None), ("shutdown", "stopping")], verbose=False)
    assert bad.status == 500 and "[-]shutdown failed: reason withheld" in bad.text and "stopping" not in bad.text


def test_failing_check_is_reported_not_raised():
    def broken():
        raise OSError("disk gone")
    assert health.run({"etcd": broken, "ping": lambda: None}) == [("etcd", "OSError: disk gone"), ("ping", None)]


@pytest.mark.parametrize("method, path, query, ctype, verb, scope", [
    ("GET", "/api/v1/namespaces/a/pods", {}, "", "LIST", "namespace"),
    ("GET", "/api/v1/pods", {"watch": "true"}, "", "WATCH", "cluster"),
    ("GET", "/api/v1/namespaces/a/pods/p", {}, "", "GET", "resource"),
    ("PATCH", "/api/v1/namespaces/a/pods/p", {}, "application/apply-patch+yaml", "APPLY", "resource"),
    ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {}, "application/json", "POST", "cluster"),
])
def test_request_labels(method, path, query, ctype, verb, scope):
    labels = request_labels(method, path, query, ctype)
    assert (labels["verb"], labels["scope"]) == (verb, scope)


def test_non_resource_paths_have_no_request_labels():
    assert request_labels("GET", "/healthz", {}, "") is None
    assert request_labels("GET", "/api/v1", {}, "") is None
