"""Validation of the smaller kinds: Namespace, Node, ServiceAccount, ResourceQuota, Event,
Lease and Secret."""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Mapping

from kproxy.api import names
from kproxy.api.validation.common import check_conditions, check_enum, check_finalizers, check_quantity, check_time
from kproxy.api.validation.errors import FieldErrors

NODE_ADDRESS_TYPES = ("ExternalDNS", "ExternalIP", "Hostname", "InternalDNS", "InternalIP")
TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
NAMESPACE_PHASES = ("Active", "Terminating")
EVENT_NOTE_MAX = 1024
QUOTA_SCOPES = ("BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating",
                "PriorityClass", "Terminating")
MAX_SECRET_BYTES = 1024 * 1024
_CONFIG_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")


def validate_namespace(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    check_finalizers(e, e.list(spec.get("finalizers"), "spec.finalizers"), "spec.finalizers")
    status = e.map(obj.get("status"), "status")
    check_enum(e, status.get("phase"), "status.phase", NAMESPACE_PHASES, required=False)


def validate_node(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    pod_cidr = e.string(spec.get("podCIDR"), "spec.podCIDR")
    if pod_cidr:
        e.invalid_all("spec.podCIDR", pod_cidr, names.check_cidr(pod_cidr))
    cidrs = [e.string(c, f"spec.podCIDRs[{i}]") for i, c in enumerate(e.list(spec.get("podCIDRs"), "spec.podCIDRs"))]
    for i, c in enumerate(cidrs):
        e.invalid_all(f"spec.podCIDRs[{i}]", c, names.check_cidr(c))
    if len(cidrs) > 2:
        e.invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family")
    if pod_cidr and cidrs and cidrs[0] != pod_cidr:
        e.invalid("spec.podCIDRs", cidrs, "first value must match `podCIDR`")
    e.boolean(spec.get("unschedulable"), "spec.unschedulable")
    for i, t in enumerate(e.list(spec.get("taints"), "spec.taints")):
        path = f"spec.taints[{i}]"
        t = e.map(t, path)
        key = e.string(t.get("key"), f"{path}.key")
        if not key:
            e.required(f"{path}.key")
        else:
            e.invalid_all(f"{path}.key", key, names.check_qualified_name(key))
        value = e.string(t.get("value"), f"{path}.value")
        e.invalid_all(f"{path}.value", value, names.check_label_value(value))
        check_enum(e, t.get("effect"), f"{path}.effect", TAINT_EFFECTS, required=True)
    status = e.map(obj.get("status"), "status")
    for i, a in enumerate(e.list(status.get("addresses"), "status.addresses")):
        path = f"status.addresses[{i}]"
        a = e.map(a, path)
        check_enum(e, a.get("type"), f"{path}.type", NODE_ADDRESS_TYPES, required=True)
        if not e.string(a.get("address"), f"{path}.address"):
            e.required(f"{path}.address")
    for part in ("capacity", "allocatable"):
        for k, v in e.map(status.get(part), f"status.{part}").items():
            check_quantity(e, v, f"status.{part}[{k}]")
    check_conditions(e, e.list(status.get("conditions"), "status.conditions"), "status.conditions")
    if old is not None:
        old_spec = old.get("spec") if isinstance(old.get("spec"), Mapping) else {}
        old_cidr = old_spec.get("podCIDR")
        if old_cidr and pod_cidr != old_cidr:
            e.forbidden("spec.podCIDR", "node updates may not change podCIDR except from \"\" to valid")


def validate_service_account(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    for key in ("secrets", "imagePullSecrets"):
        for i, ref in enumerate(e.list(obj.get(key), key)):
            name = e.string(e.map(ref, f"{key}[{i}]").get("name"), f"{key}[{i}].name")
            if name:
                e.invalid_all(f"{key}[{i}].name", name, names.check_dns1123_subdomain(name))
    e.boolean(obj.get("automountServiceAccountToken"), "automountServiceAccountToken")


_OBJECT_COUNT_QUOTAS = ("pods", "services", "services.nodeports", "services.loadbalancers", "secrets",
                        "configmaps", "persistentvolumeclaims", "replicationcontrollers", "resourcequotas")


def _counts_objects(resource_name: str) -> bool:
    """Quota resources that count objects, whose limits must be whole numbers."""
    return resource_name in _OBJECT_COUNT_QUOTAS or resource_name.startswith("count/")


def validate_resource_quota(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    for part in ("spec", "status"):
        section = e.map(obj.get(part), part)
        for sub in ("hard", "used") if part == "status" else ("hard",):
            for k, v in e.map(section.get(sub), f"{part}.{sub}").items():
                path = f"{part}.{sub}[{k}]"
                e.invalid_all(path, k, names.check_qualified_name(k))
                quantity = check_quantity(e, v, path)
                if quantity is None:
                    continue
                if quantity < 0:
                    e.invalid(path, v, "must be greater than or equal to 0")
                elif _counts_objects(k) and quantity != quantity.to_integral_value():
                    e.invalid(path, v, "must be an integer")
    for i, scope in enumerate(e.list(spec.get("scopes"), "spec.scopes")):
        check_enum(e, scope, f"spec.scopes[{i}]", QUOTA_SCOPES, required=True)


def validate_event(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Core v1 Events get Kubernetes' legacy event validation only: the involved object's
    namespace must agree with the event's, and an event with eventTime (the new style) needs
    its reporting fields. Type and reason values are free text in core v1."""
    md = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    ns = md.get("namespace") if isinstance(md.get("namespace"), str) else ""
    involved = e.map(obj.get("involvedObject"), "involvedObject")
    inv_ns = e.string(involved.get("namespace"), "involvedObject.namespace")
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        check_time(e, obj.get(key), key)
    if not obj.get("eventTime"):
        # old-style event: an empty involved namespace goes with "" or "default" (old clients)
        if (inv_ns and inv_ns != ns) or (not inv_ns and ns not in ("", "default")):
            e.invalid("involvedObject.namespace", inv_ns, "does not match event.namespace")
    else:
        if not inv_ns and ns not in ("default", "kube-system"):
            e.invalid("involvedObject.namespace", inv_ns, "does not match event.namespace")
        controller = e.string(obj.get("reportingComponent"), "reportingComponent")
        if not controller:
            e.required("reportingComponent")
        else:
            e.invalid_all("reportingComponent", controller, names.check_qualified_name(controller))
        for key, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
            text = e.string(obj.get(key), key)
            if not text:
                e.required(key)
            elif len(text) > limit:
                e.invalid(key, "", f"can have at most {limit} characters")
        if len(e.string(obj.get("message"), "message")) > EVENT_NOTE_MAX:
            e.invalid("message", "", f"can have at most {EVENT_NOTE_MAX} characters")
    count = e.integer(obj.get("count"), "count")
    if count is not None and count < 0:
        e.invalid("count", count, "must be greater than or equal to 0")


def validate_lease(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    duration = e.integer(spec.get("leaseDurationSeconds"), "spec.leaseDurationSeconds")
    if duration is not None and duration <= 0:
        e.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0")
    transitions = e.integer(spec.get("leaseTransitions"), "spec.leaseTransitions")
    if transitions is not None and transitions < 0:
        e.invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0")
    e.string(spec.get("holderIdentity"), "spec.holderIdentity")
    for key in ("acquireTime", "renewTime"):
        check_time(e, spec.get(key), f"spec.{key}")


def check_config_key(e: FieldErrors, key: str, path: str) -> None:
    """A Secret (or ConfigMap) key, as upstream's IsConfigMapKey: it becomes a file name when
    mounted, so no '/', and not '.', '..' or a '..' prefix."""
    if len(key) > 253:
        e.invalid(path, key, "must be no more than 253 characters")
    if not _CONFIG_KEY_RE.fullmatch(key):
        e.invalid(path, key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                  "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
    elif key in (".", ".."):
        e.invalid(path, key, f"must not be '{key}'")
    elif key.startswith(".."):
        e.invalid(path, key, "must not start with '..'")


def decoded_size(e: FieldErrors, value: Any, path: str) -> int:
    """The byte count of a base64 value (Secret data, ConfigMap binaryData); 0 and an error
    when it is not a base64 string."""
    if not isinstance(value, str):
        e.type_invalid(path, value, "must be a base64-encoded string")
        return 0
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        e.type_invalid(path, "<value omitted>", "must be a base64-encoded string")
        return 0


def validate_secret(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    total = 0
    for k, v in e.map(obj.get("data"), "data").items():
        path = f"data[{k}]"
        check_config_key(e, k, path)
        total += decoded_size(e, v, path)
    if total > MAX_SECRET_BYTES:
        e.too_long("data", MAX_SECRET_BYTES)
    e.string(obj.get("type"), "type")
    e.boolean(obj.get("immutable"), "immutable")
    if old is not None:
        if old.get("type") and obj.get("type") != old.get("type"):
            e.invalid("type", obj.get("type"), "field is immutable")
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                e.forbidden("immutable", "field is immutable when `immutable` is set")
            if (obj.get("data") or {}) != (old.get("data") or {}):
                e.forbidden("data", "field is immutable when `immutable` is set")

