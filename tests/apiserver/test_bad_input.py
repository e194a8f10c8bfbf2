"""Bad input over HTTP: every invalid object of tests/unit/invalid_cases.py plus malformed
requests, each answered with the right Status and without any write to the store.

"Without any write" is checked through the store revision, which every list reports and which
every successful write increments (the server runs without controllers, so nothing else
writes). Kubernetes decodes before it validates, so a JSON type mismatch is a 400 BadRequest
decoding error rather than a 422 (the unit corpus's FieldValueTypeInvalid cases).
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from tests.apiserver.httputil import Http
from tests.unit.invalid_cases import CASES, SERVICE

HTTP_CASES = [c for c in CASES if c.over_http]
SVCS = "/api/v1/namespaces/default/services"


def revision(api: Http) -> int:
    return int(api.ok("GET", "/api/v1/namespaces")["metadata"]["resourceVersion"])


def collection(resource, obj) -> str:
    ns = (obj.get("metadata") or {}).get("namespace", "default") if isinstance(obj.get("metadata"), dict) else "default"
    return resource.collection_path(ns if resource.namespaced else None)


def test_corpus_is_large_enough():
    assert len(HTTP_CASES) >= 100


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.id for c in HTTP_CASES])
def test_invalid_object_is_refused_and_nothing_is_written(api, case):
    before = revision(api)
    status, body = api.call("POST", collection(case.resource, case.obj), case.obj)
    after = revision(api)
    assert after == before, f"store changed: {body}"
    assert body["kind"] == "Status" and body["status"] == "Failure"
    if case.reason == "FieldValueTypeInvalid":
        assert (status, body["reason"]) == (400, "BadRequest"), body
        return
    assert (status, body["reason"]) == (422, "Invalid"), body
    causes = body["details"]["causes"]
    assert any(c["field"] == case.field and c["reason"] == case.reason for c in causes), causes


MALFORMED = [
    # (id, method, path, raw body, content type, expected code, expected reason)
    ("invalid-json", "POST", SVCS, b"{\"kind\": ", "application/json", 400, "BadRequest"),
    ("empty-body", "POST", SVCS, b"", "application/json", 400, "BadRequest"),
    ("array-body", "POST", SVCS, b"[1, 2]", "application/json", 400, "BadRequest"),
    ("string-body", "POST", SVCS, b"\"svc\"", "application/json", 400, "BadRequest"),
    ("null-body", "POST", SVCS, b"null", "application/json", 400, "BadRequest"),
    ("not-utf8", "POST", SVCS, b"\xff\xfe{}", "application/json", 400, "BadRequest"),
    ("invalid-yaml", "POST", SVCS, b"kind: [", "application/yaml", 400, "BadRequest"),
    ("wrong-kind", "POST", SVCS, json.dumps({**SERVICE, "kind": "Pod"}).encode(), "application/json", 400, "BadRequest"),
    ("wrong-api-version", "POST", SVCS, json.dumps({**SERVICE, "apiVersion": "v2"}).encode(), "application/json",
     400, "BadRequest"),
    ("namespace-mismatch", "POST", "/api/v1/namespaces/kube-system/services", json.dumps(SERVICE).encode(),
     "application/json", 400, "BadRequest"),
    ("unknown-field-strict", "POST", SVCS + "?fieldValidation=Strict",
     json.dumps({**SERVICE, "bogus": 1}).encode(), "application/json", 400, "BadRequest"),
    ("duplicate-field-strict", "POST", SVCS + "?fieldValidation=Strict",
     b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"a","name":"b"},"spec":{"ports":[{"port":80}]}}',
     "application/json", 400, "BadRequest"),
    ("bad-field-validation-mode", "POST", SVCS + "?fieldValidation=Loose", json.dumps(SERVICE).encode(),
     "application/json", 400, "BadRequest"),
    ("unsupported-content-type", "POST", SVCS, b"name: x", "text/plain", 415, "UnsupportedMediaType"),
    ("protobuf-body", "POST", SVCS, b"k8s\x00\x0a\x00", "application/vnd.kubernetes.protobuf", 415,
     "UnsupportedMediaType"),
    ("deeply-nested", "POST", SVCS, (b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"deep"},"spec":'
                                     b'{"ports":[{"port":80}]},"x":' + b"[" * 5000 + b"]" * 5000 + b"}"),
     "application/json", 400, "BadRequest"),
    ("missing-name", "POST", SVCS, json.dumps({**SERVICE, "metadata": {}}).encode(), "application/json",
     422, "Invalid"),
    ("namespace-missing", "POST", "/api/v1/namespaces/nope/services", json.dumps(
        {**SERVICE, "metadata": {"name": "web"}}).encode(), "application/json", 404, "NotFound"),
    ("unknown-resource", "POST", "/api/v1/namespaces/default/widgets", json.dumps(SERVICE).encode(),
     "application/json", 404, "NotFound"),
    ("unknown-group", "GET", "/apis/example.com/v1/things", None, None, 404, "NotFound"),
    ("put-missing", "PUT", SVCS + "/ghost", json.dumps({**SERVICE, "metadata": {"name": "ghost"}}).encode(),
     "application/json", 404, "NotFound"),
    ("put-name-mismatch", "PUT", SVCS + "/kubernetes", json.dumps(SERVICE).encode(), "application/json",
     400, "BadRequest"),
    ("put-bad-resource-version", "PUT", SVCS + "/kubernetes", json.dumps(
        {**SERVICE, "metadata": {"name": "kubernetes", "resourceVersion": "abc"}}).encode(), "application/json",
     400, "BadRequest"),
    ("put-stale-resource-version", "PUT", SVCS + "/kubernetes", json.dumps(
        {**SERVICE, "metadata": {"name": "kubernetes", "resourceVersion": "1"}}).encode(), "application/json",
     409, "Conflict"),
    ("patch-missing", "PATCH", SVCS + "/ghost", b"{}", "application/merge-patch+json", 404, "NotFound"),
    ("apply-without-field-manager", "PATCH", SVCS + "/kubernetes", b"{}", "application/apply-patch+yaml",
     422, "Invalid"),
    ("apply-not-an-object", "PATCH", SVCS + "/kubernetes?fieldManager=m", b"[1]", "application/apply-patch+yaml",
     400, "BadRequest"),
    ("apply-bad-yaml", "PATCH", SVCS + "/kubernetes?fieldManager=m", b"a: [", "application/apply-patch+yaml",
     400, "BadRequest"),
    ("apply-wrong-kind", "PATCH", SVCS + "/kubernetes?fieldManager=m", b"{kind: Pod, apiVersion: v1}",
     "application/apply-patch+yaml", 400, "BadRequest"),
    ("apply-wrong-name", "PATCH", SVCS + "/kubernetes?fieldManager=m", b"{metadata: {name: other}}",
     "application/apply-patch+yaml", 400, "BadRequest"),
    ("apply-wrong-shapes", "PATCH", SVCS + "/kubernetes?fieldManager=m",
     b"{spec: {ports: {a: 1}, selector: [1], sessionAffinityConfig: 3}, metadata: {labels: [x]}}",
     "application/apply-patch+yaml", 400, "BadRequest"),
    ("apply-duplicate-key", "PATCH", SVCS + "/kubernetes?fieldManager=m", b"{spec: {ports: [{port: 1}, {port: 1}]}}",
     "application/apply-patch+yaml", 400, "BadRequest"),
    ("apply-invalid-result", "PATCH", SVCS + "/kubernetes?fieldManager=m", b"{spec: {ports: [{port: 0}]}}",
     "application/apply-patch+yaml", 422, "Invalid"),
    ("apply-bad-force", "PATCH", SVCS + "/kubernetes?fieldManager=m&force=true", b"[]",
     "application/merge-patch+json", 422, "Invalid"),
    ("patch-unknown-type", "PATCH", SVCS + "/kubernetes", b"{}", "application/json", 415, "UnsupportedMediaType"),
    ("patch-json-not-list", "PATCH", SVCS + "/kubernetes", b"{}", "application/json-patch+json", 400, "BadRequest"),
    ("patch-json-bad-op", "PATCH", SVCS + "/kubernetes", b'[{"op":"explode","path":"/spec"}]',
     "application/json-patch+json", 422, "Invalid"),
    ("patch-json-missing-path", "PATCH", SVCS + "/kubernetes", b'[{"op":"remove","path":"/spec/nothing"}]',
     "application/json-patch+json", 422, "Invalid"),
    ("patch-merge-invalid-result", "PATCH", SVCS + "/kubernetes", b'{"spec":{"ports":[{"port":0}]}}',
     "application/merge-patch+json", 422, "Invalid"),
    ("patch-change-cluster-ip", "PATCH", SVCS + "/kubernetes", b'{"spec":{"clusterIP":"10.96.0.99"}}',
     "application/merge-patch+json", 422, "Invalid"),
    ("delete-missing", "DELETE", SVCS + "/ghost", None, None, 404, "NotFound"),
    ("delete-bad-options", "DELETE", SVCS + "/kubernetes", b"{nope", "application/json", 400, "BadRequest"),
    ("delete-precondition-uid", "DELETE", SVCS + "/kubernetes", b'{"preconditions":{"uid":"x"}}',
     "application/json", 409, "Conflict"),
    ("delete-protected-namespace", "DELETE", "/api/v1/namespaces/default", None, None, 403, "Forbidden"),
    ("bad-label-selector", "GET", SVCS + "?labelSelector=a%20in%20(", None, None, 400, "BadRequest"),
    ("bad-field-selector", "GET", SVCS + "?fieldSelector=spec.bogus%3Dx", None, None, 400, "BadRequest"),
    ("bad-limit", "GET", SVCS + "?limit=ten", None, None, 400, "BadRequest"),
    ("bad-timeout", "GET", SVCS + "?watch=1&timeoutSeconds=soon", None, None, 400, "BadRequest"),
    ("bad-dry-run", "POST", SVCS + "?dryRun=Some", json.dumps(SERVICE).encode(), "application/json",
     400, "BadRequest"),
    ("method-not-allowed", "POST", SVCS + "/kubernetes", json.dumps(SERVICE).encode(), "application/json",
     405, "MethodNotAllowed"),
    ("status-on-kind-without-status", "GET", "/api/v1/namespaces/default/serviceaccounts/default/status", None,
     None, 404, "NotFound"),
    ("create-without-namespace", "POST", "/api/v1/services", json.dumps(SERVICE).encode(), "application/json",
     404, "NotFound"),
    ("get-namespaced-without-namespace", "GET", "/api/v1/services/kubernetes", None, None, 404, "NotFound"),
    ("path-traversal-name", "GET", SVCS + "/..%2F..", None, None, 404, "NotFound"),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_request(api, case):
    _, method, path, raw, ctype, code, reason = case
    before = revision(api)
    headers = {"Content-Type": ctype} if ctype else {}
    status, _, data = api.raw(method, path, raw, headers)
    after = revision(api)
    body = json.loads(data)
    assert (status, body.get("reason")) == (code, reason), body
    assert body["kind"] == "Status" and body["code"] == code
    assert after == before, "the store changed"


def test_huge_body_is_refused(api):
    before = revision(api)
    big = json.dumps({**SERVICE, "metadata": {"name": "big", "annotations": {"a": "x" * (4 * 1024 * 1024)}}}).encode()
    status, _, data = api.raw("POST", SVCS, big, {"Content-Type": "application/json"})
    assert status == 413 and json.loads(data)["reason"] == "RequestEntityTooLarge"
    assert revision(api) == before


@pytest.mark.parametrize("field", ["\u001f", "caf\u00e9", "a\r\nX-Injected: 1", "\u0000"])
def test_unknown_field_named_with_any_character_is_warned_about_not_a_500(api, field):
    """The unknown-field Warning header quotes the client's field name; one no header can carry
    (control, non-ASCII, CR LF) is escaped (the fuzz found a 500 for {"\u001f": null})."""
    body = json.dumps({**SERVICE, "metadata": {"name": f"warn-{ord(field[-1])}"}, field: None}).encode()
    status, headers, data = api.raw("POST", SVCS, body, {"Content-Type": "application/json"})
    assert status == 201, data
    warning = headers.get("warning", "")
    assert warning.startswith("299 - ") and "\\u00" in warning and "x-injected" not in headers, (warning, headers)
    api.ok("DELETE", f"{SVCS}/warn-{ord(field[-1])}")


def test_server_survives_everything_above(api):
    assert api.ok("GET", "/version")["gitVersion"].startswith("v1.32")
    assert api.ok("GET", f"{SVCS}/kubernetes")["spec"]["clusterIP"] == "10.96.0.1"


_json_leaf = hs.one_of(hs.none(), hs.booleans(), hs.integers(-2**40, 2**40), hs.floats(allow_nan=False),
                       hs.text(max_size=20))
_json = hs.recursive(_json_leaf, lambda kids: hs.one_of(hs.lists(kids, max_size=4),
                                                        hs.dictionaries(hs.text(max_size=10), kids, max_size=4)),
                     max_leaves=20)
_port = hs.fixed_dictionaries({}, optional={
    "port": _json, "name": _json, "protocol": hs.one_of(hs.sampled_from(["TCP", "UDP", "SCTP", "ICMP"]), _json),
    "targetPort": _json, "nodePort": _json})
_spec = hs.fixed_dictionaries({}, optional={
    "ports": hs.one_of(hs.lists(_port, max_size=3), _json), "type": hs.one_of(
        hs.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName", "Bogus"]), _json),
    "clusterIP": hs.one_of(hs.sampled_from(["", "None", "10.96.5.5", "1.2.3.4", "banana"]), _json),
    "selector": _json, "sessionAffinity": _json, "externalTrafficPolicy": _json})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=_spec, name=hs.one_of(hs.sampled_from(["fuzz", "Fuzz", "", "a" * 70]), _json))
def test_generated_services_never_crash_and_failures_write_nothing(api, spec, name):
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    before = revision(api)
    status, body = api.call("POST", SVCS, obj)
    assert status in (201, 400, 409, 422), body
    if status == 201:
        api.ok("DELETE", f"{SVCS}/{body['metadata']['name']}")
    else:
        assert body["kind"] == "Status" and body["code"] == status
        assert revision(api) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=_spec, second=_spec, force=hs.booleans())
def test_generated_applies_never_crash_and_failures_write_nothing(api, first, second, force):
    """Server-side apply of arbitrary specs, by two managers in turn: a Status for every
    failure (never a 500) and the store unchanged by one."""
    url = f"{SVCS}/fuzz-apply?fieldManager=" + "{}" + ("&force=true" if force else "")
    for manager, spec in (("one", first), ("two", second)):
        before = revision(api)
        obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fuzz-apply"}, "spec": spec}
        status, body = api.call("PATCH", url.format(manager), obj, "application/apply-patch+yaml")
        assert status in (200, 201, 400, 409, 422), body
        if status >= 400:
            assert body["kind"] == "Status" and body["code"] == status
            assert revision(api) == before
    api.call("DELETE", f"{SVCS}/fuzz-apply")
