"""Decoding of Kubernetes protobuf bodies (what kubectl's typed clients send)."""
from __future__ import annotations

import pytest

from kproxy.apiserver import protobuf


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
