"""Decoding of Kubernetes protobuf bodies (what kubectl's typed clients send)."""
from __future__ import annotations

import pytest

from kproxy.api.status import ApiError
from kproxy.apiserver import negotiate, protobuf


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(number: int, value) -> bytes:
    if isinstance(value, bool) or isinstance(value, int):
        return varint(number << 3) + varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version) + field(2, kind)
    return protobuf.MAGIC + field(1, type_meta) + field(2, raw) + field(3, "") + field(4, "")


def test_service_with_int_and_string_target_ports_and_maps():
    meta = field(1, "web") + field(2, "") + field(3, "demo") + field(7, 0) + field(8, b"") + \
        field(11, field(1, "app") + field(2, "web"))
    port1 = field(1, "http") + field(2, "TCP") + field(3, 80) + field(4, field(1, 0) + field(2, 8080))
    port2 = field(1, "dns") + field(2, "UDP") + field(3, 53) + field(4, field(1, 1) + field(3, "dns"))
    spec = field(1, port1) + field(1, port2) + field(2, field(1, "app") + field(2, "web")) + field(4, "NodePort") + \
        field(12, 0) + field(99, "ignored unknown field")
    obj = protobuf.decode(envelope("v1", "Service", field(1, meta) + field(2, spec) + field(3, b"")))
    assert obj == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
        "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                           {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": "dns"}],
                 "selector": {"app": "web"}, "type": "NodePort"},
    }


def test_secret_bytes_are_base64_and_quota_quantities_are_strings():
    secret = protobuf.decode(envelope("v1", "Secret", field(1, field(1, "s")) + field(2, field(1, "a") + field(2, b"\x00b"))))
    assert secret["data"] == {"a": "AGI="}
    quota = protobuf.decode(envelope("v1", "ResourceQuota", field(1, field(1, "q")) +
                                     field(2, field(1, field(1, "pods") + field(2, field(1, "3"))))))
    assert quota["spec"] == {"hard": {"pods": "3"}}


@pytest.mark.parametrize("body", [
    b"not protobuf", protobuf.MAGIC + b"\xff", protobuf.MAGIC + field(2, b"\x0a\x05ab"),
    envelope("v1", "Widget", b""), envelope("v1", "Service", b"\x0a\xff\xff\xff"),
])
def test_bad_or_unsupported_bodies_raise(body):
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(body)


# ---------------------------------------------------------------------- every served kind
import base64  # noqa: E402
import datetime  # noqa: E402
import struct  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as S  # noqa: E402

from kproxy.api import resources as R  # noqa: E402
from kproxy.apiserver import pbschema  # noqa: E402
from tests.apiserver.pbsamples import SAMPLES, sample  # noqa: E402


@pytest.mark.parametrize("api_version, kind", list(SAMPLES))
def test_every_served_kind_round_trips_json_protobuf_json(api_version, kind):
    obj = sample(api_version, kind)
    wire = protobuf.encode(obj)
    assert wire.startswith(protobuf.MAGIC)
    assert protobuf.decode(wire) == obj
    listed = {"apiVersion": api_version, "kind": kind + "List",
              "metadata": {"resourceVersion": "7"}, "items": [SAMPLES[(api_version, kind)]]}
    assert protobuf.decode(protobuf.encode(listed)) == listed


def test_wire_numbers_match_upstream_for_a_rolebinding():
    """Bytes built by hand from generated.proto's numbers (RoleBinding: metadata 1, subjects 2,
    roleRef 3; Subject: kind 1, apiGroup 2, name 3, namespace 4), independent of the table."""
    subject = field(1, "ServiceAccount") + field(3, "robot") + field(4, "ns")
    role_ref = field(1, "rbac.authorization.k8s.io") + field(2, "Role") + field(3, "reader")
    raw = field(1, field(1, "rb") + field(3, "ns")) + field(2, subject) + field(3, role_ref)
    obj = protobuf.decode(envelope("rbac.authorization.k8s.io/v1", "RoleBinding", raw))
    assert obj == {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "rb", "namespace": "ns"},
                   "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "ns"}],
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}}


def test_go_pointer_zeros_are_kept_and_plain_zeros_dropped():
    meta = field(1, "p") + field(7, 0) + field(10, 0)  # generation 0 (int64), deletionGracePeriodSeconds 0 (*int64)
    spec = field(4, 0) + field(2, field(1, "c"))  # terminationGracePeriodSeconds (*int64); a container
    obj = protobuf.decode(envelope("v1", "Pod", field(1, meta) + field(2, spec)))
    assert obj["metadata"] == {"name": "p", "deletionGracePeriodSeconds": 0}
    assert obj["spec"] == {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c"}]}


def test_watch_frames_are_length_prefixed_watch_events():
    obj = sample("rbac.authorization.k8s.io/v1", "Role")
    frame = protobuf.watch_frame("ADDED", protobuf.encode(obj))
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    event = protobuf.CLASSES["meta.WatchEvent"].FromString(frame[4:])
    assert event.type == "ADDED" and protobuf.decode(event.object.raw) == obj


@pytest.mark.parametrize("accept, expected", [
    ("application/vnd.kubernetes.protobuf, application/json", True),
    ("application/vnd.kubernetes.protobuf", True),
    ("application/json, application/vnd.kubernetes.protobuf", False),
    ("application/json;q=0.5, application/vnd.kubernetes.protobuf", True),
    ("application/json;as=Table;v=v1;g=meta.k8s.io, application/json", False),
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json", False),
    ("", False), ("*/*", False),
])
def test_accept_negotiation(accept, expected):
    assert (negotiate.negotiate(accept, negotiate.OBJECT).media_type == MEDIA_PB) is expected


def test_objects_without_a_protobuf_form_answer_the_next_acceptable_encoding():
    pb = negotiate.Negotiated(MEDIA_PB)
    both = f"{MEDIA_PB}, application/json"
    table = {"apiVersion": "meta.k8s.io/v1", "kind": "Table", "rows": []}
    assert negotiate.encode(pb, table, both)[1] == "application/json"
    assert negotiate.encode(pb, {"apiVersion": "v1", "kind": "Service", "spec": {"ports": "x"}}, both)[1] == \
        "application/json"
    body, media_type = negotiate.encode(pb, sample("v1", "Secret"), both)
    assert media_type == MEDIA_PB and body.startswith(protobuf.MAGIC)
    with pytest.raises(ApiError) as refused:  # protobuf only, and the object has no protobuf form
        negotiate.encode(pb, table, MEDIA_PB)
    assert refused.value.code == 406


MEDIA_PB = protobuf.MEDIA_TYPE


# A hypothesis strategy of canonical JSON for a message (what the decoder gives back): empty
# values only where a Go pointer keeps them, embedded structs left out, nesting bounded.
_TEXT = S.text(S.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
_TIMES = S.datetimes(datetime.datetime(1971, 1, 1), datetime.datetime(2100, 1, 1))


def _leaf(kind):
    if kind == "meta.Time":
        return _TIMES.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if kind == "meta.MicroTime":
        return _TIMES.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    if kind == "intstr.IntOrString":
        return S.integers(1, 2**31 - 1) | _TEXT
    if kind == "resource.Quantity":
        return S.sampled_from(["1", "500m", "2Gi", "0.5"])
    if kind.endswith(".ExtraValue"):
        return S.lists(S.text(max_size=4), max_size=2)
    return S.dictionaries(_TEXT, S.integers(-5, 5) | _TEXT, min_size=1, max_size=2)  # RawExtension, FieldsV1


def _value(f, depth):
    if f.kind == "string":
        return S.text(max_size=8) if f.pointer else _TEXT
    if f.kind == "bytes":
        return S.binary(min_size=1, max_size=8).map(lambda b: base64.b64encode(b).decode())
    if f.kind in ("int32", "int64"):
        bits = 31 if f.kind == "int32" else 63
        ints = S.integers(-(2**bits), 2**bits - 1)
        return ints if f.pointer or f.always else ints.filter(bool)
    if f.kind == "bool":
        return S.booleans() if f.pointer else S.just(True)
    if f.kind in pbschema.LEAVES:
        return _leaf(f.kind)
    return message_json(f.kind, depth + 1, allow_empty=f.pointer)


def message_json(kind, depth=0, allow_empty=False):
    fields = [f for f in protobuf.SCHEMA[kind] if not f.inline and (depth < 3 or not f.is_message)]
    required, optional = {}, {}
    for f in fields:
        v = _value(f, depth)
        if f.is_map:
            v = S.dictionaries(S.text(max_size=6), v, min_size=1, max_size=2)
        elif f.repeated:
            v = S.lists(v, min_size=1, max_size=2)
        (required if f.always else optional)[f.name] = v  # a field without omitempty is always there
    out = S.fixed_dictionaries(required, optional=optional)
    return out if allow_empty else out.filter(bool)


def test_every_served_kind_has_a_protobuf_message_and_a_sample():
    assert all(protobuf.message_name(r.group_version, r.kind) for r in R.ALL + R.CREATE_ONLY)
    assert {(r.group_version, r.kind) for r in R.ALL} <= set(SAMPLES), "add a sample to tests/apiserver/pbsamples.py"


@pytest.mark.parametrize("name", pbschema.OBJECT_KINDS + pbschema.REVIEW_KINDS)
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=S.data())
def test_generated_objects_of_every_kind_round_trip(name, data):
    """Every kind in the table (served ones, reviews, and ConfigMap, ReplicaSet, Deployment)."""
    package, kind = name.split(".")
    body = data.draw(message_json(name))
    obj = {"apiVersion": pbschema.API_VERSIONS[package], "kind": kind, **body}
    assert protobuf.decode(protobuf.encode(obj)) == obj


@pytest.mark.parametrize("raw", [
    field(1, 5),  # metadata as a varint
    field(2, field(2, field(1, 7) + field(2, "image"))),  # spec.containers[0].name (string) as a varint
    field(1, field(11, 9)),  # labels (a map) as a varint
])
def test_known_fields_with_the_wrong_wire_type_are_refused(raw):
    with pytest.raises(protobuf.ProtobufError, match="wrong wire type"):
        protobuf.decode(envelope("v1", "Pod", raw))


def test_unknown_fields_are_ignored():
    assert protobuf.decode(envelope("v1", "Pod", field(1, field(1, "p") + field(99, 3)) + field(77, "x"))) == {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
