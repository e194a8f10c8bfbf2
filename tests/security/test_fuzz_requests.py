"""A hypothesis fuzz of request bodies (JSON, YAML, protobuf) and query parameters against a
real apiserver: whatever arrives, the answer is never a 500 and the server logs no internal
error. Bodies are built near real objects (a name, a kind's fields) so they reach
validation and storage, not only the decoder."""
from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as S

from kproxy.apiserver import protobuf
from tests.apiserver.fixtures import start_apiserver
from tests.apiserver.httputil import client_tls_context
from tests.apiserver.test_protobuf import envelope, field

NS = "/api/v1/namespaces/fuzz"
COLLECTIONS = [f"{NS}/services", f"{NS}/secrets", f"{NS}/events", f"{NS}/serviceaccounts", f"{NS}/endpoints",
               f"{NS}/pods", f"{NS}/resourcequotas", "/api/v1/namespaces", "/api/v1/nodes",
               "/apis/discovery.k8s.io/v1/namespaces/fuzz/endpointslices",
               "/apis/rbac.authorization.k8s.io/v1/namespaces/fuzz/roles",
               "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"]
FIELDS = ["metadata", "spec", "status", "data", "stringData", "type", "rules", "roleRef", "subjects", "ports",
          "port", "count", "selector", "labels", "name", "namespace", "resourceVersion", "clusterIP", "items",
          "involvedObject", "gracePeriodSeconds", "preconditions", "apiVersion", "kind", "finalizers"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)

numbers = S.one_of(S.integers(), S.integers(min_value=-(2 ** 80), max_value=2 ** 80),
                   S.floats(allow_nan=False, allow_infinity=False), S.sampled_from([0, -1, 2 ** 63, 1e29]))
scalars = S.one_of(S.none(), S.booleans(), numbers, S.text(max_size=12), S.sampled_from(["x", "80", "TCP", ""]))
json_values = S.recursive(scalars, lambda inner: S.one_of(
    S.lists(inner, max_size=4), S.dictionaries(S.one_of(S.sampled_from(FIELDS), S.text(max_size=8)), inner, max_size=5)),
    max_leaves=25)


@S.composite
def objects(draw):
    """An object with a name in a fixed small set (so updates and deletes find things) and
    random other fields."""
    obj = draw(S.dictionaries(S.sampled_from(FIELDS), json_values, max_size=5))
    if draw(S.booleans()):
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        obj["metadata"] = {**meta, "name": draw(S.sampled_from(["a", "b", "c"]))}
    return obj


def json_text(value) -> bytes:
    return json.dumps(value).encode()


# raw texts the JSON encoder never produces
json_tricks = S.sampled_from([b"NaN", b"-Infinity", b'{"a":NaN}', b"[" * 3000 + b"]" * 3000, b'{"count":1e400}',
                              b'"\\ud800"', b'{"metadata":{"name":"a"},"count":123456789012345678901234567890}'])
yaml_tricks = S.sampled_from([b"!!binary aGk=", b"{? [a]: 1}", b"a: !!set {x}", b"a: 2001-12-14", b"- &a [*a]",
                              b"count: .nan", b"? !!float .inf\n: x", b"a: !!python/object:os.system x",
                              b"metadata: {name: a}\ncount: 0x7fffffffffffffffff"])
bodies = S.one_of(
    S.tuples(S.just("application/json"), objects().map(json_text)),
    S.tuples(S.just("application/json"), S.one_of(json_tricks, json_values.map(json_text))),
    S.tuples(S.just("application/yaml"), objects().map(lambda o: yaml.safe_dump(o).encode())),
    S.tuples(S.just("application/yaml"), yaml_tricks),
    S.tuples(S.just(protobuf.MEDIA_TYPE), S.binary(max_size=64).map(lambda b: protobuf.MAGIC + b)),
    S.tuples(S.just(protobuf.MEDIA_TYPE), S.tuples(
        S.sampled_from(["Service", "Secret", "Namespace", "ServiceAccount", "ResourceQuota"]),
        S.lists(S.tuples(S.integers(1, 12), S.one_of(S.integers(0, 2 ** 64 - 1), S.binary(max_size=24))), max_size=6),
    ).map(lambda t: envelope("v1", t[0], b"".join(field(n, v) for n, v in t[1])))),
)
PARAMS = ["watch", "resourceVersion", "labelSelector", "fieldSelector", "limit", "timeoutSeconds",
          "gracePeriodSeconds", "dryRun", "fieldValidation", "allowWatchBookmarks", "sendInitialEvents",
          "includeObject", "continue", "propagationPolicy", "resourceVersionMatch"]
param_values = S.one_of(S.text(max_size=16), S.sampled_from(["1", "yes", "0", "All", str(2 ** 70), "-1", "a=b,c!=d",
                                                             "metadata.name=a", "x in (a,b)", "Strict", "abc"]))
queries = S.lists(S.tuples(S.sampled_from(PARAMS), param_values), max_size=4)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = start_apiserver(tmp_path_factory.mktemp("fuzz"), ["--no-controllers"])
    try:
        conn = request_status(proc, "POST", "/api/v1/namespaces", json_text({"metadata": {"name": "fuzz"}}),
                              "application/json")
        assert conn in (201, 409)
        yield proc
    finally:
        proc.stop()
    log = proc.log_path.read_text(errors="replace")
    assert "internal error" not in log and "Traceback" not in log, log[-3000:]


def request_status(server, method: str, path: str, body: bytes | None = None, ctype: str | None = None) -> int:
    """Only the status: a watch answers its headers at once and is then dropped."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=30,
                                       context=client_tls_context(server.data_dir, "admin"))
    try:
        headers = {"Content-Type": ctype} if ctype else {}
        conn.request(method, path, body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def target(collection: str, named: bool, name: str) -> str:
    return f"{collection}/{name}" if named else collection


@SETTINGS
@given(collection=S.sampled_from(COLLECTIONS), method=S.sampled_from(["POST", "PUT", "PATCH", "DELETE"]),
       name=S.sampled_from(["a", "b", "c"]), body=bodies,
       patch_type=S.sampled_from(["application/merge-patch+json", "application/strategic-merge-patch+json",
                                  "application/json-patch+json"]))
def test_bodies_never_500(server, collection, method, name, body, patch_type):
    ctype, raw = body
    if method == "PATCH" and ctype == "application/json":
        ctype = patch_type
    path = target(collection, method != "POST", name)
    status = request_status(server, method, path, raw, ctype)
    assert status < 500, (method, path, ctype, raw[:500], status)


@SETTINGS
@given(collection=S.sampled_from(COLLECTIONS), named=S.booleans(), method=S.sampled_from(["GET", "DELETE"]),
       query=queries)
def test_query_parameters_never_500(server, collection, named, method, query):
    path = target(collection, named, "a") + "?" + urllib.parse.urlencode(query)
    status = request_status(server, method, path)
    assert status < 500, (method, path, status)
