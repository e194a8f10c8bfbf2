"""Decoding of Kubernetes protobuf request bodies (application/vnd.kubernetes.protobuf) into
the JSON form of the object.

kubectl's typed clients (`kubectl create namespace|service|serviceaccount|secret|quota`)
send protobuf; everything else sends JSON. Only the kinds those commands write are described
here, with field numbers from k8s.io/api's generated.proto. Unknown fields are skipped, as a
protobuf decoder does. Empty strings, empty messages and empty lists are dropped, matching
the JSON form's omitempty.
"""
from __future__ import annotations

import base64
import datetime
from typing import Any

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    """The body is not a well-formed protobuf object (400)."""


class ProtobufUnsupported(ProtobufError):
    """Well-formed, but of a kind or encoding this server does not decode (415)."""


# message -> field number -> (json name, type, repeated). Types: "string", "bytes", "int",
# "bool", a message name, "map:<value type>", or the special "time", "intstr", "quantity".
_S, _I, _B = "string", "int", "bool"
MESSAGES: dict[str, dict[int, tuple[str, str, bool]]] = {
    "TypeMeta": {1: ("apiVersion", _S, False), 2: ("kind", _S, False)},
    "ObjectMeta": {1: ("name", _S, False), 2: ("generateName", _S, False), 3: ("namespace", _S, False),
                   4: ("selfLink", _S, False), 5: ("uid", _S, False), 6: ("resourceVersion", _S, False),
                   7: ("generation", _I, False), 8: ("creationTimestamp", "time", False),
                   9: ("deletionTimestamp", "time", False), 10: ("deletionGracePeriodSeconds", _I, False),
                   11: ("labels", "map:string", False), 12: ("annotations", "map:string", False),
                   13: ("ownerReferences", "OwnerReference", True), 14: ("finalizers", _S, True)},
    "OwnerReference": {1: ("kind", _S, False), 3: ("name", _S, False), 4: ("uid", _S, False),
                       5: ("apiVersion", _S, False), 6: ("controller", _B, False),
                       7: ("blockOwnerDeletion", _B, False)},
    "Condition": {1: ("type", _S, False), 2: ("status", _S, False), 3: ("observedGeneration", _I, False),
                  4: ("lastTransitionTime", "time", False), 5: ("reason", _S, False), 6: ("message", _S, False)},
    "Namespace": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "NamespaceSpec", False),
                  3: ("status", "NamespaceStatus", False)},
    "NamespaceSpec": {1: ("finalizers", _S, True)},
    "NamespaceStatus": {1: ("phase", _S, False), 2: ("conditions", "NamespaceCondition", True)},
    "NamespaceCondition": {1: ("type", _S, False), 2: ("status", _S, False), 4: ("lastTransitionTime", "time", False),
                           5: ("reason", _S, False), 6: ("message", _S, False)},
    "Service": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "ServiceSpec", False),
                3: ("status", "ServiceStatus", False)},
    "ServiceSpec": {1: ("ports", "ServicePort", True), 2: ("selector", "map:string", False), 3: ("clusterIP", _S, False),
                    18: ("clusterIPs", _S, True), 4: ("type", _S, False), 5: ("externalIPs", _S, True),
                    7: ("sessionAffinity", _S, False), 8: ("loadBalancerIP", _S, False),
                    9: ("loadBalancerSourceRanges", _S, True), 10: ("externalName", _S, False),
                    11: ("externalTrafficPolicy", _S, False), 12: ("healthCheckNodePort", _I, False),
                    13: ("publishNotReadyAddresses", _B, False),
                    14: ("sessionAffinityConfig", "SessionAffinityConfig", False), 19: ("ipFamilies", _S, True),
                    17: ("ipFamilyPolicy", _S, False), 20: ("allocateLoadBalancerNodePorts", _B, False),
                    21: ("loadBalancerClass", _S, False), 22: ("internalTrafficPolicy", _S, False),
                    23: ("trafficDistribution", _S, False)},
    "ServicePort": {1: ("name", _S, False), 2: ("protocol", _S, False), 6: ("appProtocol", _S, False),
                    3: ("port", _I, False), 4: ("targetPort", "intstr", False), 5: ("nodePort", _I, False)},
    "SessionAffinityConfig": {1: ("clientIP", "ClientIPConfig", False)},
    "ClientIPConfig": {1: ("timeoutSeconds", _I, False)},
    "ServiceStatus": {1: ("loadBalancer", "LoadBalancerStatus", False), 2: ("conditions", "Condition", True)},
    "LoadBalancerStatus": {1: ("ingress", "LoadBalancerIngress", True)},
    "LoadBalancerIngress": {1: ("ip", _S, False), 2: ("hostname", _S, False), 3: ("ipMode", _S, False),
                            4: ("ports", "PortStatus", True)},
    "PortStatus": {1: ("port", _I, False), 2: ("protocol", _S, False), 3: ("error", _S, False)},
    "ServiceAccount": {1: ("metadata", "ObjectMeta", False), 2: ("secrets", "ObjectReference", True),
                       3: ("imagePullSecrets", "LocalObjectReference", True),
                       4: ("automountServiceAccountToken", _B, False)},
    "ObjectReference": {1: ("kind", _S, False), 2: ("namespace", _S, False), 3: ("name", _S, False),
                        4: ("uid", _S, False), 5: ("apiVersion", _S, False), 6: ("resourceVersion", _S, False),
                        7: ("fieldPath", _S, False)},
    "LocalObjectReference": {1: ("name", _S, False)},
    "Secret": {1: ("metadata", "ObjectMeta", False), 5: ("immutable", _B, False), 2: ("data", "map:bytes", False),
               4: ("stringData", "map:string", False), 3: ("type", _S, False)},
    "ResourceQuota": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "ResourceQuotaSpec", False),
                      3: ("status", "ResourceQuotaStatus", False)},
    "ResourceQuotaSpec": {1: ("hard", "map:quantity", False), 2: ("scopes", _S, True),
                          3: ("scopeSelector", "ScopeSelector", False)},
    "ResourceQuotaStatus": {1: ("hard", "map:quantity", False), 2: ("used", "map:quantity", False)},
    "ScopeSelector": {1: ("matchExpressions", "ScopedResourceSelectorRequirement", True)},
    "ScopedResourceSelectorRequirement": {1: ("scopeName", _S, False), 2: ("operator", _S, False),
                                          3: ("values", _S, True)},
    # authorization.k8s.io/v1 and authentication.k8s.io/v1 requests (`kubectl auth`, `create token`)
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta", False),
                                2: ("spec", "SelfSubjectAccessReviewSpec", False)},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes", False),
                                    2: ("nonResourceAttributes", "NonResourceAttributes", False)},
    "ResourceAttributes": {1: ("namespace", _S, False), 2: ("verb", _S, False), 3: ("group", _S, False),
                           4: ("version", _S, False), 5: ("resource", _S, False), 6: ("subresource", _S, False),
                           7: ("name", _S, False)},
    "NonResourceAttributes": {1: ("path", _S, False), 2: ("verb", _S, False)},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "SelfSubjectRulesReviewSpec", False)},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", _S, False)},
    "SubjectAccessReview": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "SubjectAccessReviewSpec", False)},
    "LocalSubjectAccessReview": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "SubjectAccessReviewSpec", False)},
    "SubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes", False),
                                2: ("nonResourceAttributes", "NonResourceAttributes", False),
                                3: ("user", _S, False), 4: ("groups", _S, True), 6: ("uid", _S, False)},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta", False)},
    "TokenReview": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "TokenReviewSpec", False)},
    "TokenReviewSpec": {1: ("token", _S, False), 2: ("audiences", _S, True)},
    "TokenRequest": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "TokenRequestSpec", False)},
    "TokenRequestSpec": {1: ("audiences", _S, True), 4: ("expirationSeconds", _I, False),
                         3: ("boundObjectRef", "BoundObjectReference", False)},
    "BoundObjectReference": {1: ("kind", _S, False), 2: ("apiVersion", _S, False), 3: ("name", _S, False),
                             4: ("uid", _S, False)},
}
# Top-level kinds a protobuf body may carry, by apiVersion/kind.
KINDS = {("v1", k) for k in ("Namespace", "Service", "ServiceAccount", "Secret", "ResourceQuota")} | {
    ("authorization.k8s.io/v1", k) for k in ("SelfSubjectAccessReview", "SelfSubjectRulesReview",
                                             "SubjectAccessReview", "LocalSubjectAccessReview")} | {
    ("authentication.k8s.io/v1", k) for k in ("SelfSubjectReview", "TokenReview", "TokenRequest")}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field; length-delimited values are bytes."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _text(raw: Any) -> str:
    if not isinstance(raw, bytes):
        raise ProtobufError("expected a length-delimited string")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtobufError("string field is not UTF-8") from None


def _scalar(kind: str, wire: int, raw: Any) -> Any:
    if kind == "string":
        return _text(raw)
    if kind == "bytes":
        return base64.b64encode(raw).decode() if isinstance(raw, bytes) else ""
    if kind == "int":
        if wire != 0:
            raise ProtobufError("expected a varint")
        return _signed(raw)
    if kind == "bool":
        if wire != 0:
            raise ProtobufError("expected a varint")
        return bool(raw)
    if kind == "quantity":
        return _text(dict((n, v) for n, _, v in _fields(raw)).get(1, b""))
    if kind == "time":
        f = {n: v for n, _, v in _fields(raw)}
        seconds = _signed(f.get(1, 0))
        if not seconds:
            return None
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "intstr":
        f = {n: v for n, _, v in _fields(raw)}
        if f.get(1, 0) == 1:
            return _text(f.get(3, b""))
        return _signed(f.get(2, 0))
    return decode_message(kind, raw)


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    schema = MESSAGES[name]
    out: dict[str, Any] = {}
    for number, wire, raw in _fields(data):
        spec = schema.get(number)
        if spec is None:
            continue
        json_name, kind, repeated = spec
        if kind.startswith("map:"):
            entry = {n: v for n, _, v in _fields(raw)}
            value_kind = kind[4:]
            key = _text(entry.get(1, b""))
            out.setdefault(json_name, {})[key] = _scalar(value_kind, 2 if value_kind != "int" else 0,
                                                         entry.get(2, b""))
            continue
        if repeated and kind == "int" and wire == 2:  # packed
            values = []
            pos = 0
            while pos < len(raw):
                v, pos = _varint(raw, pos)
                values.append(_signed(v))
            out.setdefault(json_name, []).extend(values)
            continue
        value = _scalar(kind, wire, raw)
        if repeated:
            out.setdefault(json_name, []).append(value)
        else:
            out[json_name] = value
    return _prune(out)


# int fields that are pointers in Go: a 0 that was sent means 0, not "unset"
_MEANINGFUL_ZERO = {"deletionGracePeriodSeconds"}


def _prune(obj: dict[str, Any]) -> dict[str, Any]:
    """Drops what JSON's omitempty would not have sent: "", None, {}, [] and integer 0."""
    return {k: v for k, v in obj.items()
            if not (v is None or (isinstance(v, (str, dict, list)) and not v)
                    or (type(v) is int and v == 0 and k not in _MEANINGFUL_ZERO))}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object; raises ProtobufError for bad data (whatever
    a crafted body holds: a field of the wrong wire type, a time out of range, nesting past the
    recursion limit) and ProtobufUnsupported for a kind this server does not decode."""
    try:
        return _decode(body)
    except ProtobufError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, OSError, RecursionError) as exc:
        raise ProtobufError(f"malformed field ({type(exc).__name__})") from None


def _decode(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf envelope prefix")
    envelope = {n: v for n, _, v in _fields(body[len(MAGIC):])}  # runtime.Unknown
    type_meta = decode_message("TypeMeta", envelope[1]) if isinstance(envelope.get(1), bytes) else {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if envelope.get(3):
        raise ProtobufUnsupported(f"unsupported content encoding {_text(envelope[3])!r}")
    if (api_version, kind) not in KINDS:
        raise ProtobufUnsupported(f"protobuf bodies of {kind or 'unknown kind'} ({api_version}) are not supported; send JSON")
    raw = envelope.get(2, b"")
    if not isinstance(raw, bytes):
        raise ProtobufError("malformed envelope")
    obj = decode_message(kind, raw)
    return {"apiVersion": api_version, "kind": kind, **obj}
