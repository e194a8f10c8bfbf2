"""Issue 17 items 3, 4, 8 and 9 driven by the official Python client and the real kubectl:
Secret stringData, list paging (limit/continue, resourceVersionMatch), content negotiation
and Status field order, DeleteOptions.propagationPolicy."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest
import yaml

from tests.apiserver.fixtures import start_apiserver

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

KUBECTL = shutil.which("kubectl")
HISTORY = 60  # store events kept: small, so a snapshot can be made to expire


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = start_apiserver(tmp_path_factory.mktemp("apiquery"), ["--no-controllers", "--store-history", str(HISTORY)])
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def core(server):
    api = config.new_client_from_config(config_file=server.kubeconfig)
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


def namespace(core, name: str) -> str:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def secret(name: str, **data: str) -> client.V1Secret:
    return client.V1Secret(metadata=client.V1ObjectMeta(name=name),
                           data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()})


def kubectl(server, *args: str) -> subprocess.CompletedProcess:
    env = {"KUBECONFIG": server.kubeconfig, "HOME": str(server.data_dir), "PATH": "/usr/bin:/bin"}
    return subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=120)


def error_body(exc: ApiException) -> dict:
    return json.loads(exc.body)


# ---------------------------------------------------------------------- item 4: paging
def test_pages_in_key_order_with_remaining_count_and_one_snapshot(core):
    ns = namespace(core, "paging")
    for i in range(5):
        core.create_namespaced_secret(ns, secret(f"s{i}", v=str(i)))
    first = core.list_namespaced_secret(ns, limit=2)
    assert [s.metadata.name for s in first.items] == ["s0", "s1"]
    assert first.metadata.remaining_item_count == 3 and first.metadata._continue
    token = json.loads(base64.urlsafe_b64decode(first.metadata._continue + "=="))
    assert token == {"v": "meta.k8s.io/v1", "rv": int(first.metadata.resource_version), "start": "s1\x00"}

    # writes between pages do not show: every page is the first page's revision
    core.create_namespaced_secret(ns, secret("s25", v="new"))
    core.patch_namespaced_secret("s3", ns, {"data": {"v": base64.b64encode(b"changed").decode()}})
    core.delete_namespaced_secret("s4", ns)
    second = core.list_namespaced_secret(ns, limit=2, _continue=first.metadata._continue)
    assert [s.metadata.name for s in second.items] == ["s2", "s3"]
    assert base64.b64decode(second.items[1].data["v"]) == b"3"
    assert second.metadata.resource_version == first.metadata.resource_version
    assert second.metadata.remaining_item_count == 1
    third = core.list_namespaced_secret(ns, limit=2, _continue=second.metadata._continue)
    assert [s.metadata.name for s in third.items] == ["s4"]
    assert not third.metadata._continue and third.metadata.remaining_item_count is None

    now = core.list_namespaced_secret(ns)
    assert [s.metadata.name for s in now.items] == ["s0", "s1", "s2", "s25", "s3"] and not now.metadata._continue


def test_selector_pages_have_no_remaining_count(core):
    ns = namespace(core, "paging-sel")
    for i in range(4):
        s = secret(f"x{i}", v="1")
        s.metadata.labels = {"even": str(i % 2 == 0).lower()}
        core.create_namespaced_secret(ns, s)
    page = core.list_namespaced_secret(ns, limit=1, label_selector="even=true")
    assert [s.metadata.name for s in page.items] == ["x0"]
    assert page.metadata._continue and page.metadata.remaining_item_count is None
    rest = core.list_namespaced_secret(ns, limit=5, label_selector="even=true", _continue=page.metadata._continue)
    assert [s.metadata.name for s in rest.items] == ["x2"] and not rest.metadata._continue


def token_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("token, why", [
    ("not base64!", "illegal base64"), ("e30", "version"),
    (token_of('{"v":"meta.k8s.io/v1","rv":0,"start":"a"}'), "resourceVersion"),
    (token_of('{"v":"meta.k8s.io/v1","rv":5,"start":""}'), "start key empty"),
    (token_of('{"v":"meta.k8s.io/v1","rv":5,"start":"../../secrets"}'), "../../secrets"),
    (token_of('{"v":"v2","rv":5,"start":"a"}'), "version")])
def test_garbage_continue_token_is_400_with_a_status(core, token, why):
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_secret("default", limit=1, _continue=token)
    body = error_body(exc.value)
    assert exc.value.status == 400 and body["kind"] == "Status" and body["reason"] == "BadRequest"
    assert "invalid continue token" in body["message"] and why in body["message"], body["message"]


def test_expired_snapshot_is_410_with_an_inconsistent_continue_token(core):
    ns = namespace(core, "paging-old")
    for i in range(3):
        core.create_namespaced_secret(ns, secret(f"o{i}", v="1"))
    first = core.list_namespaced_secret(ns, limit=1)
    for i in range(HISTORY + 5):  # the first page's revision leaves the retained history
        core.patch_namespaced_secret("o2", ns, {"metadata": {"labels": {"n": str(i)}}})
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_secret(ns, limit=1, _continue=first.metadata._continue)
    body = error_body(exc.value)
    assert exc.value.status == 410 and body["reason"] == "Expired"
    fresh = body["metadata"]["continue"]
    assert json.loads(base64.urlsafe_b64decode(fresh + "=="))["rv"] == -1
    rest = core.list_namespaced_secret(ns, limit=5, _continue=fresh)
    assert [s.metadata.name for s in rest.items] == ["o1", "o2"]
    assert rest.items[1].metadata.labels == {"n": str(HISTORY + 4)}  # the latest state

    with pytest.raises(ApiException) as exc:
        core.list_namespaced_secret(ns, resource_version=first.metadata.resource_version,
                                    resource_version_match="Exact")
    assert exc.value.status == 410 and error_body(exc.value)["reason"] == "Expired"


def test_resource_version_match(core):
    ns = namespace(core, "rvmatch")
    core.create_namespaced_secret(ns, secret("a", v="1"))
    before = core.list_namespaced_secret(ns).metadata.resource_version
    core.create_namespaced_secret(ns, secret("b", v="1"))
    exact = core.list_namespaced_secret(ns, resource_version=before, resource_version_match="Exact")
    assert [s.metadata.name for s in exact.items] == ["a"] and exact.metadata.resource_version == before
    newer = core.list_namespaced_secret(ns, resource_version=before, resource_version_match="NotOlderThan")
    assert [s.metadata.name for s in newer.items] == ["a", "b"] and int(newer.metadata.resource_version) > int(before)
    legacy_paged = core.list_namespaced_secret(ns, resource_version=before, limit=5)  # upstream: exact
    assert [s.metadata.name for s in legacy_paged.items] == ["a"]

    for kwargs in ({"resource_version_match": "Exact"}, {"resource_version": "0", "resource_version_match": "Exact"},
                   {"resource_version": before, "resource_version_match": "Newest"}):
        with pytest.raises(ApiException) as exc:
            core.list_namespaced_secret(ns, **kwargs)
        assert exc.value.status == 422 and error_body(exc.value)["details"]["kind"] == "ListOptions", kwargs
    token = core.list_namespaced_secret(ns, limit=1).metadata._continue
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_secret(ns, limit=1, _continue=token, resource_version=before)
    assert exc.value.status == 400
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_secret(ns, resource_version=str(10**12), resource_version_match="Exact")
    assert exc.value.status == 504 and "Too large resource version" in error_body(exc.value)["message"]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_kubectl_get_in_chunks(server, core):
    ns = namespace(core, "chunks")
    for i in range(5):
        core.create_namespaced_secret(ns, secret(f"c{i}", v="1"))
    proc = kubectl(server, "get", "secrets", "-n", ns, "--chunk-size=2", "-v=6")
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()[1:]] == [f"c{i}" for i in range(5)]
    requests = [line for line in proc.stderr.splitlines() if "/secrets?" in line and "200 OK" in line]
    assert len(requests) == 3 and sum("continue=" in r for r in requests) == 2, proc.stderr
    names = kubectl(server, "get", "secrets", "-n", ns, "--chunk-size=2", "-o", "name")
    assert names.returncode == 0 and names.stdout.split() == [f"secret/c{i}" for i in range(5)]
    # across namespaces the token's start key is "namespace/name"
    every = kubectl(server, "get", "secrets", "-A", "--chunk-size=1", "-o", "name")
    whole = kubectl(server, "get", "secrets", "-A", "--chunk-size=0", "-o", "name")
    assert every.returncode == 0 and every.stdout == whole.stdout
    assert {f"secret/c{i}" for i in range(5)} <= set(every.stdout.split())


# ---------------------------------------------------------------------- item 3: stringData
def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_string_data_is_merged_into_data_and_never_stored(core, server):
    ns = namespace(core, "stringdata")
    body = client.V1Secret(metadata=client.V1ObjectMeta(name="s"), data={"a": b64("from data"), "b": b64("b")},
                           string_data={"a": "from stringData", "c": "c\ud800"})
    created = core.create_namespaced_secret(ns, body)
    assert created.data == {"a": b64("from stringData"), "b": b64("b"), "c": b64("c\ufffd")}
    assert created.string_data is None

    created.string_data = {"d": "by replace"}
    replaced = core.replace_namespaced_secret("s", ns, created)
    assert base64.b64decode(replaced.data["d"]) == b"by replace" and replaced.string_data is None
    patched = core.patch_namespaced_secret("s", ns, {"stringData": {"e": "by patch"}})
    assert base64.b64decode(patched.data["e"]) == b"by patch" and patched.string_data is None
    stored = server.http().ok("GET", f"/api/v1/namespaces/{ns}/secrets/s")
    assert "stringData" not in stored and set(stored["data"]) == {"a", "b", "c", "d", "e"}

    with pytest.raises(ApiException) as exc:
        core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="bad"),
                                                          string_data={"no/slash": "x"}))
    assert exc.value.status == 422 and "no/slash" in error_body(exc.value)["message"]
    status, body = server.http().call("POST", f"/api/v1/namespaces/{ns}/secrets",
                                      {"metadata": {"name": "bad"}, "stringData": {"k": 1}})
    assert status == 400 and body["kind"] == "Status"


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_kubectl_apply_secret_with_string_data(server, core, tmp_path):
    ns = namespace(core, "stringdata-kubectl")
    manifest = tmp_path / "secret.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                        "metadata": {"name": "creds", "namespace": ns},
                                        "stringData": {"user": "admin", "password": "s3cret"}}))
    proc = kubectl(server, "apply", "-f", str(manifest))
    assert proc.returncode == 0 and "warning" not in proc.stderr.lower(), proc.stderr
    got = json.loads(kubectl(server, "get", "secret", "creds", "-n", ns, "-o", "json").stdout)
    assert got["data"] == {"user": b64("admin"), "password": b64("s3cret")} and "stringData" not in got
    table = kubectl(server, "get", "secret", "creds", "-n", ns).stdout
    assert table.split("\n")[1].split()[:3] == ["creds", "Opaque", "2"]


# ---------------------------------------------------------------------- item 8: negotiation
PARTIAL_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
PARTIAL = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
STATUS_ORDER = ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]


def call(core, path: str, accept: str, method: str = "GET", body=None):
    """The official client's own request path with an Accept of our choosing:
    (status, headers, text); an error status raises ApiException as the client does."""
    api = core.api_client
    path, query = path.partition("?")[::2]
    params = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    request = api.param_serialize(method, path, query_params=params, header_params={"Accept": accept},
                                  body=body, auth_settings=["BearerToken"])
    response = api.call_api(*request)
    response.read()
    if not 200 <= response.status < 300:
        raise ApiException(http_resp=response)
    return response.status, response.headers, response.data.decode()


def call_error(core, path: str, accept: str, method: str = "GET", body=None) -> tuple[int, str]:
    with pytest.raises(ApiException) as exc:
        call(core, path, accept, method, body)
    return exc.value.status, exc.value.body


def test_partial_object_metadata(core):
    ns = namespace(core, "partial")
    for i in range(3):
        core.create_namespaced_secret(ns, secret(f"p{i}", v="secret value"))
    status, headers, text = call(core, f"/api/v1/namespaces/{ns}/secrets?limit=2", f"{PARTIAL_LIST},application/json")
    listed = json.loads(text)
    assert status == 200 and listed["kind"] == "PartialObjectMetadataList" and listed["apiVersion"] == "meta.k8s.io/v1"
    assert listed["metadata"]["continue"] and listed["metadata"]["remainingItemCount"] == 1
    assert [i["metadata"]["name"] for i in listed["items"]] == ["p0", "p1"]
    assert all(set(i) == {"kind", "apiVersion", "metadata"} and i["kind"] == "PartialObjectMetadata"
               for i in listed["items"])
    assert "secret value" not in text and b64("secret value") not in text

    status, _, text = call(core, f"/api/v1/namespaces/{ns}/secrets/p0", PARTIAL)
    full = json.loads(call(core, f"/api/v1/namespaces/{ns}/secrets/p0", "application/json")[2])
    assert json.loads(text) == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": full["metadata"]}

    # the wrong one of the two for the endpoint is 406, as upstream's transform refuses it
    assert call_error(core, f"/api/v1/namespaces/{ns}/secrets/p0", PARTIAL_LIST)[0] == 406
    assert call_error(core, f"/api/v1/namespaces/{ns}/secrets", PARTIAL)[0] == 406
    status, _, text = call(core, f"/api/v1/namespaces/{ns}/secrets", PARTIAL, "POST",
                           {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "p3"}})
    assert status == 201 and json.loads(text)["kind"] == "PartialObjectMetadata"
    assert call_error(core, f"/api/v1/namespaces/{ns}/secrets", PARTIAL_LIST, "POST",
                      {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "p4"}})[0] == 406

    status, _, text = call(core, f"/api/v1/namespaces/{ns}/secrets?watch=1&timeoutSeconds=1", PARTIAL)
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["object"]["metadata"]["name"] for e in events] == ["p0", "p1", "p2", "p3"]
    assert all(e["object"]["kind"] == "PartialObjectMetadata" and "data" not in e["object"] for e in events)


def test_yaml_and_not_acceptable(core):
    ns = namespace(core, "accept")
    core.create_namespaced_secret(ns, secret("y", v="1"))
    status, headers, text = call(core, f"/api/v1/namespaces/{ns}/secrets/y", "application/yaml")
    assert status == 200 and headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(text)["data"] == {"v": b64("1")} and text.startswith("apiVersion: v1\n")
    status, _, text = call(core, f"/api/v1/namespaces/{ns}/secrets", "application/yaml")
    assert yaml.safe_load(text)["kind"] == "SecretList"

    status, body = call_error(core, f"/api/v1/namespaces/{ns}/secrets/y", "application/cbor")
    assert status == 406 and json.loads(body)["reason"] == "NotAcceptable"
    assert ("only the following media types are accepted: application/json, application/yaml, "
            "application/vnd.kubernetes.protobuf") in body
    new = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "never"}}
    status, body = call_error(core, f"/api/v1/namespaces/{ns}/secrets", "text/html", "POST", new)
    assert status == 406
    with pytest.raises(ApiException) as exc:  # refused before the work, not after
        core.read_namespaced_secret("never", ns)
    assert exc.value.status == 404


def test_status_field_order_is_upstreams(core):
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_secret("missing", "default")
    assert list(json.loads(exc.value.body)) == STATUS_ORDER
    assert exc.value.body.startswith('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",')


# ---------------------------------------------------------------------- item 9: propagationPolicy
@pytest.mark.parametrize("name, kwargs", [
    ("query", {"propagation_policy": "Bogus"}),
    ("body", {"body": client.V1DeleteOptions(propagation_policy="foreground")}),
    ("both", {"body": client.V1DeleteOptions(propagation_policy="Orphan", orphan_dependents=True)}),
])
def test_invalid_propagation_policy_is_refused(core, name, kwargs):
    ns = "default"
    core.create_namespaced_secret(ns, secret(name, v="1"))
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_secret(name, ns, **kwargs)
    body = error_body(exc.value)
    assert exc.value.status == 422 and body["details"]["kind"] == "DeleteOptions"
    assert body["details"]["causes"][0]["field"] == "propagationPolicy"
    assert core.read_namespaced_secret(name, ns).metadata.deletion_timestamp is None


def test_foreground_and_orphan_leave_the_collectors_finalizer(core):
    ns = namespace(core, "cascade")
    for name in ("fg", "or", "bg"):
        core.create_namespaced_secret(ns, secret(name, v="1"))
    core.delete_namespaced_secret("fg", ns, propagation_policy="Foreground")
    core.delete_namespaced_secret("or", ns, body=client.V1DeleteOptions(propagation_policy="Orphan"))
    core.delete_namespaced_secret("bg", ns, propagation_policy="Background")
    fg, orphaned = core.read_namespaced_secret("fg", ns), core.read_namespaced_secret("or", ns)
    assert fg.metadata.finalizers == ["foregroundDeletion"] and fg.metadata.deletion_timestamp
    assert orphaned.metadata.finalizers == ["orphan"] and orphaned.metadata.deletion_timestamp
    assert [s.metadata.name for s in core.list_namespaced_secret(ns).items] == ["fg", "or"]

    # a later delete changes the choice; the collector removing its finalizer deletes the object
    core.delete_namespaced_secret("or", ns, propagation_policy="Foreground")
    assert core.read_namespaced_secret("or", ns).metadata.finalizers == ["foregroundDeletion"]
    core.patch_namespaced_secret("fg", ns, {"metadata": {"finalizers": None}})
    assert [s.metadata.name for s in core.list_namespaced_secret(ns).items] == ["or"]

    # the older orphanDependents; false on an object another finalizer holds answers 202
    held = secret("legacy", v="1")
    held.metadata.finalizers = ["example.com/hold"]
    core.create_namespaced_secret(ns, held)
    _, status, _ = core.delete_namespaced_secret_with_http_info(
        "legacy", ns, body=client.V1DeleteOptions(orphan_dependents=True))
    assert status == 200
    assert core.read_namespaced_secret("legacy", ns).metadata.finalizers == ["example.com/hold", "orphan"]
    _, status, _ = core.delete_namespaced_secret_with_http_info(
        "legacy", ns, body=client.V1DeleteOptions(orphan_dependents=False))
    assert status == 202 and core.read_namespaced_secret("legacy", ns).metadata.finalizers == ["example.com/hold"]
    # without a finalizer left the object goes at once, as upstream deletes it
    core.delete_namespaced_secret("or", ns, body=client.V1DeleteOptions(orphan_dependents=False))
    assert [s.metadata.name for s in core.list_namespaced_secret(ns).items] == ["legacy"]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_kubectl_delete_cascade(server, core):
    ns = namespace(core, "cascade-kubectl")
    for name in ("a", "b", "c"):
        core.create_namespaced_secret(ns, secret(name, v="1"))
    for name, cascade in (("a", "foreground"), ("b", "orphan"), ("c", "background")):
        proc = kubectl(server, "delete", "secret", name, "-n", ns, f"--cascade={cascade}", "--wait=false")
        assert proc.returncode == 0 and "warning" not in proc.stderr.lower(), proc.stderr
    left = {s.metadata.name: s.metadata.finalizers for s in core.list_namespaced_secret(ns).items}
    assert left == {"a": ["foregroundDeletion"], "b": ["orphan"]}
