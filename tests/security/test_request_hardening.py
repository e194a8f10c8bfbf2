"""Issue 15, the smaller findings: each request here got a wrong answer (a 500, a silent
acceptance, an authorisation that differs from what is served). One test per finding."""
from __future__ import annotations

import json
import socket
import time

import pytest

from kproxy.apiserver import protobuf
from tests.apiserver.fixtures import start_apiserver
from tests.apiserver.httputil import Http
from tests.apiserver.test_protobuf import envelope, field
from tests.security.test_rbac_escalation import grant, namespace

SVCS = "/api/v1/namespaces/default/services"


def assert_status(status, body, code, reason):
    assert status == code, body
    assert isinstance(body, dict) and body["kind"] == "Status" and body["reason"] == reason, body


def test_watch_yes_is_authorised_as_the_watch_it_is_served_as(admin, user_client):
    namespace(admin, "wy")
    grant(admin, "wy", "lister", [{"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}])
    lister = user_client("lister")
    assert lister.call("GET", "/api/v1/namespaces/wy/services")[0] == 200
    for value in ("yes", "1", "true", "True"):
        status, body = lister.call("GET", f"/api/v1/namespaces/wy/services?watch={value}")
        assert_status(status, body, 403, "Forbidden")
        assert "cannot watch resource" in body["message"]
    status, body = lister.call("GET", "/api/v1/namespaces/wy/services?watch=false")
    assert status == 200 and body["kind"] == "ServiceList"


def test_impersonation_needs_the_impersonate_verb(admin, user_client, secure_apiserver):
    namespace(admin, "imp")
    grant(admin, "imp", "jane", [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]}])
    grant(admin, None, "support", [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
                                    "resourceNames": ["jane"]}])
    support = user_client("support")
    path = "/api/v1/namespaces/imp/services"
    assert_status(*support.call("GET", path), 403, "Forbidden")
    status, body = support.call("GET", path, headers={"Impersonate-User": "jane"})
    assert status == 200 and body["kind"] == "ServiceList", body
    # jane's rights, not more: she cannot create
    status, body = support.call("POST", path, {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}]}},
                                headers={"Impersonate-User": "jane"})
    assert_status(status, body, 403, "Forbidden")
    assert 'User "jane" cannot create' in body["message"]
    # the audit log keeps who acted: support, impersonating jane (as kube-apiserver's audit events)
    lines = [json.loads(line) for line in (secure_apiserver.data_dir / "audit.log").read_text().splitlines()]
    refused = [e for e in lines if e.get("impersonatedUser", {}).get("username") == "jane" and e["code"] == 403]
    assert refused and refused[-1]["user"] == "support" and refused[-1]["verb"] == "create", lines[-3:]
    # not allowed to impersonate anyone else, or a group, or an admin
    status, body = support.call("GET", path, headers={"Impersonate-User": "bob"})
    assert_status(status, body, 403, "Forbidden")
    assert body["message"] == ('users "bob" is forbidden: User "support" cannot impersonate resource "users" '
                               'in API group "" at the cluster scope'), body
    assert_status(*support.call("GET", path, headers={"Impersonate-User": "jane", "Impersonate-Group": "system:masters"}),
                  403, "Forbidden")
    assert_status(*support.call("GET", path, headers={"Impersonate-Group": "system:masters"}), 400, "BadRequest")
    assert_status(*support.call("GET", path, headers={"Impersonate-User": "jane", "Impersonate-Extra-scopes": "x"}),
                  400, "BadRequest")
    # the admin may impersonate anybody; a service account gets its groups
    status, body = admin.call("GET", "/api/v1/namespaces/imp/secrets",
                              headers={"Impersonate-User": "system:serviceaccount:imp:default"})
    assert_status(status, body, 403, "Forbidden")
    assert 'User "system:serviceaccount:imp:default" cannot list' in body["message"]


def test_deeply_nested_delete_body_is_400(admin):
    body = b'{"a":' * 50000 + b"1" + b"}" * 50000
    status, _, raw = admin.raw("DELETE", f"{SVCS}/nothing", body, {"Content-Type": "application/json"})
    assert status == 400, raw[:300]


EVENT = b'"metadata":{"name":"e"},"involvedObject":{"kind":"Service","name":"x"},"reason":"R","message":"m"'
YAML_EVENT = b"metadata: {name: e}\ninvolvedObject: {kind: Service, name: x}\nreason: R\nmessage: m\n"


@pytest.mark.parametrize("body, ctype", [
    (b'{' + EVENT + b',"count":NaN}', "application/json"),
    (b'{' + EVENT + b',"count":Infinity}', "application/json"),
    (b'{' + EVENT + b',"count":-Infinity}', "application/json"),
    (YAML_EVENT + b"count: .nan\n", "application/yaml"),
    (YAML_EVENT + b"count: .inf\n", "application/yaml"),
    (YAML_EVENT + b"count: 1\n7: x\n", "application/yaml"),
    (YAML_EVENT + b"count: 1\nnote: 2001-12-14t21:59:43.10-05:00\n", "application/yaml"),
])
def test_non_finite_numbers_and_non_json_yaml_are_400(admin, body, ctype):
    status, _, raw = admin.raw("POST", "/api/v1/namespaces/default/events", body, {"Content-Type": ctype})
    assert status == 400, raw[:300]
    assert admin.call("GET", "/api/v1/namespaces/default/events/e")[0] == 404


def test_watch_resource_version_out_of_range_is_400(admin):
    for rv in (str(2 ** 70), str(2 ** 63), "-1", "abc", "1e3"):
        status, body = admin.call("GET", f"{SVCS}?watch=1&resourceVersion={rv}")
        assert_status(status, body, 400, "BadRequest")


def test_list_resource_version_abc_is_400(admin):
    for rv in ("abc", "-5", str(2 ** 70)):
        assert_status(*admin.call("GET", f"{SVCS}?resourceVersion={rv}"), 400, "BadRequest")
    assert admin.call("GET", f"{SVCS}?resourceVersion=0")[0] == 200


@pytest.mark.parametrize("raw", [
    envelope("v1", "Service", field(1, 5)),  # metadata sent as a varint, not a message
    envelope("v1", "Service", field(1, field(8, field(1, 2 ** 62)))),  # creationTimestamp far out of range
    envelope("v1", "Secret", field(1, field(1, "s")) + field(2, 7)),  # a map entry sent as a varint
])
def test_crafted_protobuf_bodies_are_400(admin, raw):
    status, _, body = admin.raw("POST", SVCS, raw, {"Content-Type": protobuf.MEDIA_TYPE})
    assert status == 400, body[:300]


def test_out_of_range_integers_are_refused(admin):
    event = {"metadata": {"name": "big"}, "involvedObject": {"kind": "Service", "name": "x"},
             "reason": "R", "message": "m", "count": 1e29}
    status, body = admin.call("POST", "/api/v1/namespaces/default/events", event)
    assert status in (400, 422), body
    event["count"] = 2 ** 64
    status, body = admin.call("POST", "/api/v1/namespaces/default/events", event)
    assert status in (400, 422), body
    assert admin.call("GET", "/api/v1/namespaces/default/events/big")[0] == 404


def test_secret_keys_must_be_file_names(admin):
    for where, key in (("stringData", "../etc/passwd"), ("stringData", "a/b"), ("data", ".."),
                       ("data", "..hidden"), ("stringData", ".")):
        value = "dg==" if where == "data" else "v"
        status, body = admin.call("POST", "/api/v1/namespaces/default/secrets",
                                  {"metadata": {"name": "keys"}, where: {key: value}})
        assert_status(status, body, 422, "Invalid")
        # stringData is merged into data before validation, as upstream's conversion does
        assert body["details"]["causes"][0]["field"] == f"data[{key}]", body
    assert admin.ok("POST", "/api/v1/namespaces/default/secrets",
                    {"metadata": {"name": "keys"}, "stringData": {".env": "v", "a-b_c.d": "w"}})


def test_watches_per_identity_are_capped(tmp_path):
    server = start_apiserver(tmp_path, ["--no-controllers", "--max-watches-per-user", "2"])
    try:
        admin, agent = server.http(), server.http("kube-proxy")
        streams = [admin.watch(f"{SVCS}?watch=1") for _ in range(2)]
        try:
            for s in streams:
                assert s.next()["type"] == "ADDED"  # the kubernetes Service
            status, body = admin.call("GET", f"{SVCS}?watch=1")
            assert_status(status, body, 429, "TooManyRequests")
            with agent.watch(f"{SVCS}?watch=1") as other:  # another identity is not affected
                assert other.next()["type"] == "ADDED"
            streams.pop().close()
            deadline = time.monotonic() + 30  # a closed watch frees its place once the server notices
            while True:
                with admin.watch(f"{SVCS}?watch=1") as again:
                    first = again.next()
                if first.get("type") == "ADDED":
                    break
                assert first.get("code") == 429 and time.monotonic() < deadline, first
                time.sleep(0.1)
        finally:
            for s in streams:
                s.close()
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_insecure_listener_answers_only_loopback_hosts(tmp_path):
    port = free_port()
    server = start_apiserver(tmp_path, ["--no-controllers", "--insecure-bind", f"127.0.0.1:{port}"])
    try:
        plain = Http(f"http://127.0.0.1:{port}")
        for host in ("rebind.attacker.example", "rebind.attacker.example:80", "10.0.0.1", "localhost.evil"):
            status, _, raw = plain.raw("GET", "/api/v1/namespaces", headers={"Host": host})
            assert status == 403 and json.loads(raw)["reason"] == "Forbidden", (host, raw[:200])
        for host in (f"127.0.0.1:{port}", "localhost", f"localhost:{port}", "[::1]:80"):
            assert plain.raw("GET", "/api/v1/namespaces", headers={"Host": host})[0] == 200, host
    finally:
        server.stop()
