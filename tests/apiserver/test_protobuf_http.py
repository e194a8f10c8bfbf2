"""Protobuf on the wire against a real apiserver: every served kind created from a protobuf
body and read back in protobuf (get, list, watch) equal to its JSON form; Status answers."""
from __future__ import annotations

import json
import struct

import pytest

from kproxy.api import resources as R
from kproxy.apiserver import protobuf
from tests.apiserver.httputil import _connection
from tests.apiserver.pbsamples import NS, sample

PB = protobuf.MEDIA_TYPE
TYPED_ACCEPT = f"{PB}, application/json"  # what client-go's typed clients send


@pytest.fixture
def http(bare_apiserver):
    client = bare_apiserver.http()
    client.ok("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    return client


def _path(resource, name=None):
    ns = NS if resource.namespaced else None
    return resource.object_path(name, ns) if name else resource.collection_path(ns)


def _pb(http, method, path, body=None):
    headers = {"Accept": TYPED_ACCEPT}
    if body is not None:
        headers["Content-Type"] = PB
    status, hdrs, raw = http.raw(method, path, body, headers)
    assert hdrs["content-type"] == PB, raw[:300]
    return status, protobuf.decode(raw)


def _pruned(value):
    """Without empty objects: a status that is an empty Go struct has no protobuf form to tell
    it from an absent one (status: {loadBalancer: {}} in JSON)."""
    if isinstance(value, dict):
        pruned = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v != {}}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def test_every_kind_created_read_listed_and_deleted_in_protobuf(http):
    for resource in R.ALL:
        if resource is R.NAMESPACES:
            continue
        obj = sample(resource.group_version, resource.kind)
        status, created = _pb(http, "POST", _path(resource), protobuf.encode(obj))
        assert status == 201, created
        name = obj["metadata"]["name"]
        as_json = http.ok("GET", _path(resource, name))
        if _pruned(as_json.get("status")) in ({}, None):
            as_json.pop("status", None)
        assert created == as_json, resource.kind
        status, got = _pb(http, "GET", _path(resource, name))
        assert got == created
        status, listed = _pb(http, "GET", _path(resource))
        assert listed["kind"] == resource.list_kind
        assert name in [i["metadata"]["name"] for i in listed["items"]]
        status, deleted = _pb(http, "DELETE", _path(resource, name))
        assert status == 200 and deleted["kind"] in ("Status", resource.kind), deleted


def test_errors_are_protobuf_status(http):
    status, body = _pb(http, "GET", _path(R.ROLES, "missing"))
    assert status == 404
    assert body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404
    assert body["details"] == {"name": "missing", "group": "rbac.authorization.k8s.io", "kind": "roles"}


def test_json_stays_the_default_and_tables_stay_json(http):
    status, hdrs, _ = http.raw("GET", _path(R.SERVICE_ACCOUNTS), None, {"Accept": f"application/json, {PB}"})
    assert hdrs["content-type"].startswith("application/json")
    table = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
    status, hdrs, raw = http.raw("GET", "/api/v1/namespaces", None, {"Accept": table})
    assert json.loads(raw)["kind"] == "Table"


def _read_frame(resp):
    (length,) = struct.unpack(">I", resp.read(4))
    event = protobuf.CLASSES["meta.WatchEvent"].FromString(resp.read(length))
    return event.type, protobuf.decode(event.object.raw)


def test_watch_in_protobuf_frames_events(bare_apiserver, http):
    conn = _connection(http.host, http.port, 30, http.ssl_context)
    try:
        conn.request("GET", _path(R.ROLES) + "?watch=1&allowWatchBookmarks=true&sendInitialEvents=true"
                     "&resourceVersionMatch=NotOlderThan", headers={"Accept": TYPED_ACCEPT})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == protobuf.WATCH_MEDIA_TYPE
        event_type, bookmark = _read_frame(resp)
        assert event_type == "BOOKMARK"
        assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        http.ok("POST", _path(R.ROLES), sample(R.ROLES.group_version, R.ROLES.kind))
        event_type, obj = _read_frame(resp)
        assert event_type == "ADDED" and obj["rules"] == sample(R.ROLES.group_version, R.ROLES.kind)["rules"]
        assert obj == http.ok("GET", _path(R.ROLES, "sample"))
    finally:
        conn.close()


def test_delete_options_in_protobuf(http):
    """client-go's typed Delete sends its DeleteOptions in the client's content type."""
    http.ok("POST", _path(R.ROLES), sample(R.ROLES.group_version, R.ROLES.kind))
    uid = http.ok("GET", _path(R.ROLES, "sample"))["metadata"]["uid"]
    wrong = protobuf.encode({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
                             "preconditions": {"uid": "not-" + uid}})
    status, body = _pb(http, "DELETE", _path(R.ROLES, "sample"), wrong)
    assert status == 409 and body["reason"] == "Conflict", body
    right = protobuf.encode({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}})
    status, body = _pb(http, "DELETE", _path(R.ROLES, "sample"), right)
    assert status == 200 and body["status"] == "Success", body
