"""Validation: the invalid-object corpus, update rules, message shapes, and property tests."""
from __future__ import annotations

import copy
import string

import pytest
from hypothesis import given, settings, strategies as st

from kproxy.api import resources as R
from kproxy.api.defaults import apply_defaults, preserve_service_allocations
from kproxy.api.status import invalid
from kproxy.api.validation import describe, validate
from tests.unit.invalid_cases import CASES, SERVICE, SLICE, POD, VALID, InvalidCase


def _causes(resource, obj, old=None):
    return validate(resource, apply_defaults(resource, obj), old)


def _has(causes, field, reason):
    return any(c["field"] == field and c["reason"] == reason for c in causes)


def test_corpus_is_large_and_named_uniquely():
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)
    kinds = {c.resource.kind for c in CASES}
    assert {"Service", "Pod", "EndpointSlice"} <= kinds


@pytest.mark.parametrize("resource,obj", VALID, ids=[f"{r.kind}-{o['metadata']['name']}" for r, o in VALID])
def test_valid_bases_are_valid(resource, obj):
    assert _causes(resource, obj) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_case(case: InvalidCase):
    causes = _causes(case.resource, case.obj)
    assert _has(causes, case.field, case.reason), causes
    for c in causes:
        assert set(c) == {"reason", "field", "message"}
        assert c["message"]


def test_validate_does_not_mutate():
    obj = copy.deepcopy(CASES[0].obj)
    before = copy.deepcopy(obj)
    validate(R.SERVICES, obj)
    assert obj == before


@pytest.mark.parametrize("field_changes,field,message", [
    ({"port": 70000}, "spec.ports[0].port", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ({"protocol": "ICMP"}, "spec.ports[0].protocol",
     'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
    ({"targetPort": "a--b"}, "spec.ports[0].targetPort", 'Invalid value: "a--b": must not contain consecutive hyphens'),
])
def test_messages_read_like_kubernetes(field_changes, field, message):
    obj = copy.deepcopy(SERVICE)
    obj["spec"]["ports"][0].update(field_changes)
    causes = _causes(R.SERVICES, obj)
    assert {"reason": causes[0]["reason"], "field": field, "message": message} in causes


def test_status_message_from_causes():
    obj = copy.deepcopy(SERVICE)
    obj["spec"]["ports"][0]["port"] = 0
    err = invalid("Service", "web", _causes(R.SERVICES, obj))
    assert err.code == 422
    assert str(err.status["message"]) == (
        'Service "web" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive')
    assert describe(err.causes).startswith("spec.ports[0].port: Invalid value: 0")


def test_headless_and_external_name_need_no_ports():
    headless = copy.deepcopy(SERVICE)
    headless["spec"]["clusterIP"] = "None"
    del headless["spec"]["ports"]
    assert _causes(R.SERVICES, headless) == []


def test_generate_name_without_name_is_valid():
    obj = copy.deepcopy(POD)
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "web-"
    assert _causes(R.PODS, obj) == []


def test_cluster_scoped_namespace_forbidden_and_namespaced_required():
    assert _has(_causes(R.NODES, {"metadata": {"name": "n1", "namespace": "x"}}), "metadata.namespace",
                "FieldValueForbidden")
    assert _has(_causes(R.PODS, {"metadata": {"name": "p"}, "spec": POD["spec"]}), "metadata.namespace",
                "FieldValueRequired")


# --- updates --------------------------------------------------------------------------------

def _allocated_service():
    svc = apply_defaults(R.SERVICES, SERVICE)
    svc["spec"]["clusterIP"] = "10.96.0.10"
    svc["spec"]["clusterIPs"] = ["10.96.0.10"]
    svc["metadata"]["uid"] = "u-1"
    return svc


def test_cluster_ip_is_immutable():
    old = _allocated_service()
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.11"
    new["spec"]["clusterIPs"] = ["10.96.0.11"]
    causes = validate(R.SERVICES, new, old)
    assert _has(causes, "spec.clusterIPs[0]", "FieldValueInvalid")
    assert any("may not change once set" in c["message"] for c in causes)
    assert validate(R.SERVICES, old, old) == []


def test_update_without_cluster_ip_keeps_allocation_via_preserve():
    old = _allocated_service()
    old["spec"]["type"] = "NodePort"
    old["spec"]["externalTrafficPolicy"] = "Cluster"
    old["spec"]["ports"][0]["nodePort"] = 30080
    applied = copy.deepcopy(SERVICE)  # what a client sends: no clusterIP, no nodePort
    applied["spec"]["type"] = "NodePort"
    assert _has(_causes(R.SERVICES, applied, old), "spec.clusterIPs[0]", "FieldValueInvalid")
    merged = apply_defaults(R.SERVICES, preserve_service_allocations(old, applied))
    assert merged["spec"]["clusterIP"] == "10.96.0.10"
    assert merged["spec"]["ports"][0]["nodePort"] == 30080
    assert validate(R.SERVICES, merged, old) == []


def test_switch_to_external_name_may_drop_cluster_ip():
    old = _allocated_service()
    new = {"apiVersion": "v1", "kind": "Service", "metadata": dict(old["metadata"]),
           "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    assert _causes(R.SERVICES, new, old) == []


def test_metadata_name_and_uid_immutable():
    old = _allocated_service()
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "other"
    new["metadata"]["uid"] = "u-2"
    causes = validate(R.SERVICES, new, old)
    assert _has(causes, "metadata.name", "FieldValueInvalid")
    assert _has(causes, "metadata.uid", "FieldValueInvalid")


def test_endpoint_slice_address_type_immutable():
    old = apply_defaults(R.ENDPOINT_SLICES, SLICE)
    new = copy.deepcopy(old)
    new["addressType"] = "FQDN"
    new["endpoints"][0]["addresses"] = ["web.example.com"]
    assert validate(R.ENDPOINT_SLICES, new, None) == []
    assert _has(validate(R.ENDPOINT_SLICES, new, old), "addressType", "FieldValueInvalid")


def test_pod_update_may_change_image_only():
    old = apply_defaults(R.PODS, POD)
    image = copy.deepcopy(old)
    image["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert validate(R.PODS, image, old) == []
    ports = copy.deepcopy(old)
    ports["spec"]["containers"][0]["ports"][0]["containerPort"] = 9090
    assert _has(validate(R.PODS, ports, old), "spec", "FieldValueForbidden")
    status = copy.deepcopy(old)
    status["status"] = {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
                        "conditions": [{"type": "Ready", "status": "True"}]}
    assert validate(R.PODS, status, old) == []


# --- property tests -------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_keys = st.sampled_from(["metadata", "spec", "status", "ports", "endpoints", "addressType", "subsets",
                         "containers", "name", "type", "clusterIP", "selector"])


@settings(max_examples=150)
@given(st.sampled_from(R.ALL), st.dictionaries(_keys, _json, max_size=5), st.one_of(st.none(), _json))
def test_validate_never_raises(resource, obj, old):
    causes = validate(resource, apply_defaults(resource, obj), old if isinstance(old, dict) else None)
    assert isinstance(causes, list)
    for c in causes:
        assert isinstance(c["field"], str) and isinstance(c["message"], str) and c["reason"].startswith("FieldValue")


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=65536)))
def test_any_out_of_range_port_is_invalid(port):
    obj = copy.deepcopy(SERVICE)
    obj["spec"]["ports"][0]["port"] = port
    assert _has(_causes(R.SERVICES, obj), "spec.ports[0].port", "FieldValueInvalid")


@given(st.integers(min_value=1, max_value=65535))
def test_any_in_range_port_is_valid(port):
    obj = copy.deepcopy(SERVICE)
    obj["spec"]["ports"][0]["port"] = port
    assert _causes(R.SERVICES, obj) == []


@given(st.text(min_size=1, max_size=6).filter(lambda p: p not in ("TCP", "UDP", "SCTP")))
def test_any_other_protocol_is_not_supported(proto):
    obj = copy.deepcopy(SERVICE)
    obj["spec"]["ports"][0]["protocol"] = proto
    assert _has(_causes(R.SERVICES, obj), "spec.ports[0].protocol", "FieldValueNotSupported")


_bad_name = st.one_of(
    st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=10),                 # upper case
    st.from_regex(r"[0-9][a-z0-9]{0,10}", fullmatch=True),                             # leading digit
    st.from_regex(r"[a-z][a-z0-9]{0,8}[-_.]", fullmatch=True),                         # bad last char
    st.from_regex(r"[a-z]{1,5}[_.!@ ][a-z]{1,5}", fullmatch=True),                     # bad inner char
    st.text(alphabet="abc", min_size=64, max_size=80),                                 # too long
)


@given(_bad_name)
def test_any_bad_service_name_is_invalid(name):
    obj = copy.deepcopy(SERVICE)
    obj["metadata"]["name"] = name
    assert _has(_causes(R.SERVICES, obj), "metadata.name", "FieldValueInvalid")


@given(st.from_regex(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True))
def test_any_dns1035_service_name_is_valid(name):
    obj = copy.deepcopy(SERVICE)
    obj["metadata"]["name"] = name
    assert _causes(R.SERVICES, obj) == []


@given(st.lists(st.integers(1, 5), min_size=2, max_size=5))
def test_duplicate_ports_are_reported_once_per_repeat(ports):
    obj = copy.deepcopy(SERVICE)
    obj["spec"]["ports"] = [{"name": f"p{i}", "port": p} for i, p in enumerate(ports)]
    dups = [c for c in _causes(R.SERVICES, obj) if c["reason"] == "FieldValueDuplicate"]
    assert len(dups) == len(ports) - len(set(ports))


# --- the syntax checks behind the causes (kproxy.api.names) -----------------------------------

from kproxy.api import names  # noqa: E402


@pytest.mark.parametrize("check,value,ok", [
    (names.check_dns1123_label, "my-name", True),
    (names.check_dns1123_label, "123-abc", True),
    (names.check_dns1123_label, "a" * 63, True),
    (names.check_dns1123_label, "a" * 64, False),
    (names.check_dns1123_label, "My-name", False),
    (names.check_dns1123_label, "-a", False),
    (names.check_dns1123_label, "a.b", False),
    (names.check_dns1123_label, "", False),
    (names.check_dns1123_subdomain, "example.com", True),
    (names.check_dns1123_subdomain, "a" * 253, True),
    (names.check_dns1123_subdomain, "a" * 254, False),
    (names.check_dns1123_subdomain, "a..b", False),
    (names.check_dns1123_subdomain, "a.-b", False),
    (names.check_dns1035_label, "abc-123", True),
    (names.check_dns1035_label, "1abc", False),
    (names.check_qualified_name, "MyName", True),
    (names.check_qualified_name, "my.name", True),
    (names.check_qualified_name, "example.com/My_Name-1", True),
    (names.check_qualified_name, "/name", False),
    (names.check_qualified_name, "example.com/", False),
    (names.check_qualified_name, "Example.com/x", False),
    (names.check_qualified_name, "a/b/c", False),
    (names.check_qualified_name, "_x", False),
    (names.check_label_value, "", True),
    (names.check_label_value, "My_value.1", True),
    (names.check_label_value, "x" * 64, False),
    (names.check_label_value, "a:b", False),
    (names.check_port_name, "http", True),
    (names.check_port_name, "h2c-8080", True),
    (names.check_port_name, "a" * 15, True),
    (names.check_port_name, "a" * 16, False),
    (names.check_port_name, "8080", False),
    (names.check_port_name, "HTTP", False),
    (names.check_port_name, "a--b", False),
    (names.check_port_name, "http-", False),
    (names.check_ip, "10.0.0.1", True),
    (names.check_ip, "2001:db8::1", True),
    (names.check_ip, "10.0.0.256", False),
    (names.check_ip, "010.0.0.1", False),         # leading zeros are ambiguous: refused
    (names.check_ip, "fe80::1%eth0", False),
    (names.check_cidr, "10.0.0.0/8", True),
    (names.check_cidr, "10.0.0.1/8", True),        # host bits allowed, as net.ParseCIDR
    (names.check_cidr, "10.0.0.0", False),
    (names.check_cidr, "10.0.0.0/33", False),
    (names.check_non_special_ip, "192.0.2.1", True),
    (names.check_non_special_ip, "::1", False),
    (names.check_non_special_ip, "fe80::1", False),
    (names.check_non_special_ip, "ff02::1", False),
    (names.check_non_special_ip, "224.0.0.251", False),
    (names.check_non_special_ip, "239.1.1.1", True),      # only link-local multicast is refused
    (names.check_non_special_ip, "ff05::1", True),
    (names.check_non_special_ip, "::ffff:127.0.0.1", False),
])
def test_name_and_address_checks(check, value, ok):
    assert (check(value) == []) is ok


def test_check_messages_are_kubernetes_wording():
    assert names.check_dns1123_label("A") == [names.DNS1123_LABEL_MSG]
    assert "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?'" in names.DNS1123_LABEL_MSG
    assert names.check_dns1123_label("a" * 64) == ["must be no more than 63 characters"]
    assert names.check_qualified_name("a/b/c")[0].startswith("a qualified name must consist of")
    assert names.check_port_number(0) == ["must be between 1 and 65535, inclusive"]
    assert names.check_port_name("8080") == ["must contain at least one letter (a-z)"]


@pytest.mark.parametrize("value,ok", [
    ("2026-01-01T00:00:00Z", True),
    ("2026-01-01T00:00:00.123456789Z", True),       # Go RFC3339Nano
    ("2026-01-01T00:00:00+02:00", True),
    ("2026-01-01", False),
    ("2026-01-01T00:00:00", False),                 # no offset
    ("2026-13-01T00:00:00Z", False),
    ("yesterday", False),
])
def test_lease_times_must_be_rfc3339(value, ok):
    from tests.unit.invalid_cases import LEASE
    lease = copy.deepcopy(LEASE)
    lease["spec"]["renewTime"] = value
    causes = _causes(R.LEASES, lease)
    assert (causes == []) is ok, causes
    if not ok:
        assert _has(causes, "spec.renewTime", "FieldValueTypeInvalid")


from hypothesis import HealthCheck  # noqa: E402

from tests.unit.invalid_cases import invalid_services  # noqa: E402


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(invalid_services())
def test_generated_invalid_services(case):
    causes = _causes(case.resource, case.obj)
    assert _has(causes, case.field, case.reason), (case.obj, causes)


def _event(**fields):
    from tests.unit.invalid_cases import EVENT
    ev = copy.deepcopy(EVENT)
    ev.update(fields)
    return ev


@pytest.mark.parametrize("fields,field,reason", [
    ({"involvedObject": {"kind": "Node", "name": "n1"}}, None, None),               # cluster-scoped object
    ({"type": "Custom", "reason": "r" * 300}, None, None),                           # free text in core v1
    ({"involvedObject": {"kind": "Pod", "namespace": "other", "name": "p"}}, "involvedObject.namespace",
     "FieldValueInvalid"),
    ({"eventTime": "2026-01-01T00:00:00.000001Z", "reportingComponent": "kproxy/agent",
      "reportingInstance": "node-1", "action": "Sync"}, None, None),
    ({"eventTime": "2026-01-01T00:00:00.000001Z", "reportingInstance": "node-1", "action": "Sync"},
     "reportingComponent", "FieldValueRequired"),
    ({"eventTime": "2026-01-01T00:00:00.000001Z", "reportingComponent": "kproxy", "reportingInstance": "n",
      "action": "a" * 129}, "action", "FieldValueInvalid"),
    ({"eventTime": "2026-01-01T00:00:00.000001Z", "reportingComponent": "kproxy", "reportingInstance": "n",
      "action": "Sync", "message": "m" * 1025}, "message", "FieldValueInvalid"),
    ({"count": -1}, "count", "FieldValueInvalid"),
    ({"lastTimestamp": "now"}, "lastTimestamp", "FieldValueTypeInvalid"),
])
def test_event_validation(fields, field, reason):
    causes = _causes(R.EVENTS, _event(**fields))
    if field is None:
        assert causes == []
    else:
        assert _has(causes, field, reason), causes


@pytest.mark.parametrize("value,expected", [
    ("1", 1), ("1.5", 1.5), ("500m", 0.5), ("2Ki", 2048), ("1Gi", 2 ** 30), ("1e3", 1000), ("1k", 1000),
    ("100n", 1e-7), (3, 3), ("+4", 4), ("-1", -1), (".5", 0.5),
    ("lots", None), ("1 Gi", None), ("1KiB", None), ("", None), ("1.2.3", None), (None, None), ([1], None),
])
def test_parse_quantity(value, expected):
    from kproxy.api.validation.common import parse_quantity
    got = parse_quantity(value)
    assert (got is None) == (expected is None)
    if expected is not None:
        assert float(got) == pytest.approx(expected)


@pytest.mark.parametrize("hard,ok", [
    ({"pods": "10", "requests.cpu": "1500m", "limits.memory": "2Gi"}, True),
    ({"count/services": "1k"}, True),
    ({"services": "2.5"}, False),
    ({"requests.cpu": "-1"}, False),
])
def test_quota_values(hard, ok):
    from tests.unit.invalid_cases import QUOTA
    quota = copy.deepcopy(QUOTA)
    quota["spec"]["hard"] = hard
    assert (_causes(R.RESOURCE_QUOTAS, quota) == []) is ok


def test_immutable_secret():
    old = {"metadata": {"name": "s", "namespace": "default"}, "type": "Opaque", "immutable": True,
           "data": {"k": "dmFsdWU="}}
    assert validate(R.SECRETS, old, old) == []
    changed = dict(old, data={"k": "b3RoZXI="})
    assert _has(validate(R.SECRETS, changed, old), "data", "FieldValueForbidden")
    unlocked = dict(old, immutable=False)
    assert _has(validate(R.SECRETS, unlocked, old), "immutable", "FieldValueForbidden")
    assert _has(validate(R.SECRETS, dict(old, type="kubernetes.io/tls"), old), "type", "FieldValueInvalid")
    assert _has(validate(R.SECRETS, dict(old, data={"k": "not base64!"})), "data[k]", "FieldValueTypeInvalid")


# --- metadata helpers (kproxy.api.meta) -----------------------------------------------------------

def test_meta_helpers():
    from kproxy.api import meta
    svc = {"metadata": {"name": "web", "namespace": "default", "labels": {"a": "1"}}}
    assert meta.object_key(R.SERVICES, svc) == "default/web"
    assert meta.object_key(R.NODES, {"metadata": {"name": "n1"}}) == "n1"
    assert meta.split_key("default/web") == ("default", "web")
    assert meta.split_key("n1") == (None, "n1")
    assert meta.get_path(svc, "metadata", "labels", "a") == "1"
    assert meta.get_path(svc, "spec", "ports", 0, default="none") == "none"
    assert meta.get_path({"l": [1, 2]}, "l", 5) is None
    assert meta.labels_of(svc) == {"a": "1"} and meta.annotations_of(svc) == {}
    assert not meta.is_being_deleted(svc)
    assert meta.with_type_meta(R.ENDPOINT_SLICES, {})["apiVersion"] == "discovery.k8s.io/v1"
    assert meta.new_uid() != meta.new_uid()
    assert meta.parse_rfc3339(meta.now_rfc3339()).tzinfo is not None
    assert meta.parse_rfc3339(meta.now_rfc3339_micro()).microsecond >= 0


# --- valid objects of every shape validate clean (no false rejections) ---------------------------

_label_key = st.one_of(
    st.from_regex(r"[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,20}[a-zA-Z0-9])?", fullmatch=True),
    st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?(\.[a-z0-9]{1,8}){0,2}/[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,10}[a-zA-Z0-9])?",
                  fullmatch=True),
)
_label_value = st.one_of(st.just(""), st.from_regex(r"[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,20}[a-zA-Z0-9])?", fullmatch=True))
_dns_label = st.from_regex(r"[a-z]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
_port_name = st.from_regex(r"[a-z]([a-z0-9]|-(?=[a-z0-9])){0,14}", fullmatch=True).filter(lambda n: len(n) <= 15)


@st.composite
def valid_services(draw):
    svc_type = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName", "Headless"]))
    n = draw(st.integers(0 if svc_type in ("ExternalName", "Headless") else 1, 4))
    numbers = draw(st.lists(st.integers(1, 65535), min_size=n, max_size=n, unique=True))
    names_ = draw(st.lists(_dns_label, min_size=n, max_size=n, unique=True))
    ports = []
    for i, (number, name) in enumerate(zip(numbers, names_)):
        port = {"port": number, "protocol": draw(st.sampled_from(["TCP", "UDP", "SCTP"]))}
        if n > 1 or draw(st.booleans()):
            port["name"] = name
        target = draw(st.one_of(st.none(), st.integers(1, 65535), _port_name))
        if target is not None:
            port["targetPort"] = target
        if svc_type in ("NodePort", "LoadBalancer") and draw(st.booleans()):
            port["nodePort"] = 30000 + i
        ports.append(port)
    spec = {"selector": draw(st.dictionaries(_label_key, _label_value, max_size=3))}
    if ports:
        spec["ports"] = ports
    if svc_type == "Headless":
        spec["clusterIP"] = "None"
    elif svc_type == "ExternalName":
        spec.update(type="ExternalName", externalName=draw(st.sampled_from(["db.example.com", "db.example.com.", "x"])))
    else:
        spec["type"] = svc_type
        if draw(st.booleans()):
            spec["clusterIP"] = draw(st.sampled_from(["10.96.0.10", "10.100.1.2", "fd00::10"]))
    if svc_type in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local"]))
    if svc_type == "LoadBalancer" and draw(st.booleans()):
        spec["loadBalancerSourceRanges"] = ["10.0.0.0/8", " 192.0.2.0/24 "]
    if svc_type != "ExternalName" and draw(st.booleans()):
        spec["externalIPs"] = ["192.0.2.10", "2001:db8::10"]
    if draw(st.booleans()):
        spec["sessionAffinity"] = "ClientIP"
        if draw(st.booleans()):
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": draw(st.integers(1, 86400))}}
    if svc_type != "ExternalName" and draw(st.booleans()):
        spec["internalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local"]))
    md = {"name": draw(_dns_label), "namespace": "default",
          "labels": draw(st.dictionaries(_label_key, _label_value, max_size=3)),
          "annotations": draw(st.dictionaries(_label_key, st.text(max_size=20), max_size=2))}
    return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": spec}


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(valid_services())
def test_valid_services_validate_clean(svc):
    assert _causes(R.SERVICES, svc) == []


@st.composite
def valid_pods(draw):
    n = draw(st.integers(1, 3))
    cnames = draw(st.lists(_dns_label, min_size=n, max_size=n, unique=True))
    containers = []
    for name in cnames:
        k = draw(st.integers(0, 3))
        pnames = draw(st.lists(_port_name, min_size=k, max_size=k, unique=True))
        ports = [{"containerPort": draw(st.integers(1, 65535)), "name": pn,
                  "protocol": draw(st.sampled_from(["TCP", "UDP", "SCTP"]))} for pn in pnames]
        containers.append({"name": name, "image": draw(st.sampled_from(["nginx", "nginx:1.25", "reg.example:5000/a/b@sha256:" + "0" * 64])),
                           "ports": ports,
                           "env": [{"name": draw(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True)), "value": "v"}],
                           "resources": {"limits": {"cpu": draw(st.sampled_from(["1", "500m", "0.5"])), "memory": "64Mi"}}})
    spec = {"containers": containers, "restartPolicy": draw(st.sampled_from(["Always", "OnFailure", "Never"]))}
    if draw(st.booleans()):
        spec["nodeName"] = draw(st.sampled_from(["node-1", "worker.example.com"]))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": draw(_dns_label) + ".x", "namespace": "default"},
           "spec": spec}
    if draw(st.booleans()):
        pod["status"] = {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}],
                         "conditions": [{"type": "Ready", "status": draw(st.sampled_from(["True", "False"])),
                                         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    return pod


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(valid_pods())
def test_valid_pods_validate_clean(pod):
    assert _causes(R.PODS, pod) == []


@settings(max_examples=100)
@given(st.sampled_from(["IPv4", "IPv6", "FQDN"]), st.integers(0, 5), st.integers(0, 4), st.data())
def test_valid_endpoint_slices_validate_clean(address_type, n_endpoints, n_ports, data):
    address = {"IPv4": lambda i: f"10.244.0.{i + 1}", "IPv6": lambda i: f"fd00::{i + 1:x}",
               "FQDN": lambda i: f"pod-{i}.example.com"}[address_type]
    endpoints = [{"addresses": [address(i)],
                  "conditions": {k: data.draw(st.one_of(st.none(), st.booleans())) for k in ("ready", "serving", "terminating")},
                  "nodeName": "node-1", "zone": "a"} for i in range(n_endpoints)]
    names_ = data.draw(st.lists(_dns_label, min_size=n_ports, max_size=n_ports, unique=True))
    ports = [{"name": name, "port": data.draw(st.one_of(st.none(), st.integers(1, 65535))),
              "protocol": data.draw(st.sampled_from(["TCP", "UDP", "SCTP"]))} for name in names_]
    es = {"metadata": {"name": "web-" + data.draw(_dns_label), "namespace": "default"},
          "addressType": address_type, "endpoints": endpoints, "ports": ports}
    assert _causes(R.ENDPOINT_SLICES, es) == []
