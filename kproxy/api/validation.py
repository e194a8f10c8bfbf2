"""Object validation as kube-apiserver's pkg/apis/core/validation (and discovery, coordination)
does it for the kinds kproxy serves.

`validate(resource, obj, old=None)` returns Status causes, one per problem:
    {"reason": "FieldValueInvalid", "field": "spec.ports[0].port",
     "message": "Invalid value: 70000: must be between 1 and 65535, inclusive"}
The message is Kubernetes' "error body" (`<type>: <value>: <detail>`), so the apiserver's
"<Kind> "<name>" is invalid: <field>: <message>, ..." text reads as kube-apiserver's does.
An empty list means valid. With `old` the object is checked as an update (immutable fields).
Validation runs after defaulting; it never raises on any JSON input, including wrong types
(those are reported as FieldValueTypeInvalid).
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from typing import Any, Callable, Mapping

from kproxy.api import names
from kproxy.api.meta import parse_rfc3339
from kproxy.api.resources import Resource

Cause = dict[str, str]

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
DUPLICATE = "FieldValueDuplicate"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
TYPE_INVALID = "FieldValueTypeInvalid"
NOT_FOUND = "FieldValueNotFound"

PROTOCOLS = ("SCTP", "TCP", "UDP")
SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILIES = ("IPv4", "IPv6")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
RESTART_POLICIES = ("Always", "Never", "OnFailure")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("FallbackToLogsOnError", "File")
POD_PHASES = ("Failed", "Pending", "Running", "Succeeded", "Unknown")
CONDITION_STATUSES = ("False", "True", "Unknown")
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
NODE_ADDRESS_TYPES = ("ExternalDNS", "ExternalIP", "Hostname", "InternalDNS", "InternalIP")
TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
NAMESPACE_PHASES = ("Active", "Terminating")
EVENT_TYPES = ("Normal", "Warning")
QUOTA_SCOPES = ("BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating",
                "PriorityClass", "Terminating")
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")

MAX_ENDPOINTS_PER_SLICE = 1000
MAX_PORTS_PER_SLICE = 100
MAX_ADDRESSES_PER_ENDPOINT = 100
MAX_ANNOTATIONS_BYTES = 256 * 1024
MAX_SECRET_BYTES = 1024 * 1024
CLIENT_IP_TIMEOUT_MAX = 86400
KUBELET_PORT = 10250

_QUANTITY_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?")
_QUANTITY_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_CONFIG_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")


def _show(value: Any) -> str:
    """A value as it appears in an error body: strings quoted, numbers bare, objects as JSON."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


class _Errors:
    """Collects field errors in Kubernetes' cause shape."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def _add(self, reason: str, field: str, message: str) -> None:
        self.causes.append({"reason": reason, "field": field, "message": message})

    def required(self, field: str, detail: str = "") -> None:
        self._add(REQUIRED, field, "Required value" + (f": {detail}" if detail else ""))

    def invalid(self, field: str, value: Any, detail: str) -> None:
        self._add(INVALID, field, f"Invalid value: {_show(value)}: {detail}")

    def invalid_all(self, field: str, value: Any, details: list[str]) -> None:
        for d in details:
            self.invalid(field, value, d)

    def not_supported(self, field: str, value: Any, supported: tuple[str, ...]) -> None:
        opts = ", ".join(json.dumps(s) for s in supported)
        self._add(NOT_SUPPORTED, field, f"Unsupported value: {_show(value)}: supported values: {opts}")

    def duplicate(self, field: str, value: Any) -> None:
        self._add(DUPLICATE, field, f"Duplicate value: {_show(value)}")

    def forbidden(self, field: str, detail: str) -> None:
        self._add(FORBIDDEN, field, f"Forbidden: {detail}")

    def too_long(self, field: str, max_len: int) -> None:
        self._add(TOO_LONG, field, f"Too long: may not be more than {max_len} bytes")

    def too_many(self, field: str, actual: int, max_items: int) -> None:
        self._add(TOO_MANY, field, f"Too many: {actual}: must have at most {max_items} items")

    def type_invalid(self, field: str, value: Any, detail: str) -> None:
        self._add(TYPE_INVALID, field, f"Invalid value: {_show(value)}: {detail}")

    def not_found(self, field: str, value: Any) -> None:
        self._add(NOT_FOUND, field, f"Not found: {_show(value)}")

    # --- typed access: a wrong JSON type is reported once and read as "absent" ---------------

    def map(self, value: Any, field: str) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return dict(value)
        self.type_invalid(field, value, "must be of type object")
        return {}

    def list(self, value: Any, field: str) -> list[Any]:
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.type_invalid(field, value, "must be of type array")
        return []

    def string(self, value: Any, field: str) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        self.type_invalid(field, value, "must be of type string")
        return ""

    def integer(self, value: Any, field: str) -> int | None:
        if value is None:
            return None
        if names.is_int(value):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        self.type_invalid(field, value, "must be of type integer")
        return None

    def boolean(self, value: Any, field: str) -> bool | None:
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        self.type_invalid(field, value, "must be of type boolean")
        return None

    def string_map(self, value: Any, field: str) -> dict[str, str]:
        out = {}
        for k, v in self.map(value, field).items():
            if not isinstance(v, str):
                self.type_invalid(f"{field}[{k}]", v, "must be of type string")
                continue
            out[k] = v
        return out


# --- shared pieces -------------------------------------------------------------------------

NameCheck = Callable[[str], list[str]]


def _check_labels(e: _Errors, labels: dict[str, str], field: str) -> None:
    for k, v in labels.items():
        e.invalid_all(field, k, names.check_qualified_name(k))
        e.invalid_all(field, v, names.check_label_value(v))


def _check_annotations(e: _Errors, annotations: dict[str, str], field: str) -> None:
    total = 0
    for k, v in annotations.items():
        e.invalid_all(field, k, names.check_qualified_name(k.lower()))
        total += len(k) + len(v)
    if total > MAX_ANNOTATIONS_BYTES:
        e.too_long(field, MAX_ANNOTATIONS_BYTES)


def _check_finalizers(e: _Errors, finalizers: list[Any], field: str) -> None:
    for i, f in enumerate(finalizers):
        f = e.string(f, f"{field}[{i}]")
        errs = names.check_qualified_name(f)
        if errs:
            e.invalid_all(f"{field}[{i}]", f, errs)
        elif "/" not in f and f not in STANDARD_FINALIZERS:
            e.invalid(f"{field}[{i}]", f, "name is neither a standard finalizer name nor is it fully qualified")


def _check_owner_references(e: _Errors, refs: list[Any], field: str) -> None:
    controllers = 0
    for i, ref in enumerate(refs):
        path = f"{field}[{i}]"
        ref = e.map(ref, path)
        for key in ("apiVersion", "kind", "name", "uid"):
            if not e.string(ref.get(key), f"{path}.{key}"):
                e.required(f"{path}.{key}", f"{key} must not be empty")
        if e.boolean(ref.get("controller"), f"{path}.controller"):
            controllers += 1
    if controllers > 1:
        e.invalid(field, refs, "Only one reference can have Controller set to true")


def _mask_trailing_dash(name: str) -> str:
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def _check_metadata(e: _Errors, resource: Resource, obj: dict[str, Any], name_check: NameCheck,
                    old: dict[str, Any] | None) -> dict[str, Any]:
    md = e.map(obj.get("metadata"), "metadata")
    name = e.string(md.get("name"), "metadata.name")
    generate = e.string(md.get("generateName"), "metadata.generateName")
    if name:
        e.invalid_all("metadata.name", name, name_check(name))
    elif not generate:
        e.required("metadata.name", "name or generateName is required")
    if generate:
        e.invalid_all("metadata.generateName", generate, name_check(_mask_trailing_dash(generate)))
    ns = e.string(md.get("namespace"), "metadata.namespace")
    if resource.namespaced:
        if not ns:
            e.required("metadata.namespace")
        else:
            e.invalid_all("metadata.namespace", ns, names.check_dns1123_label(ns))
    elif ns:
        e.forbidden("metadata.namespace", "not allowed on this type")
    _check_labels(e, e.string_map(md.get("labels"), "metadata.labels"), "metadata.labels")
    _check_annotations(e, e.string_map(md.get("annotations"), "metadata.annotations"), "metadata.annotations")
    _check_finalizers(e, e.list(md.get("finalizers"), "metadata.finalizers"), "metadata.finalizers")
    _check_owner_references(e, e.list(md.get("ownerReferences"), "metadata.ownerReferences"),
                            "metadata.ownerReferences")
    gen = e.integer(md.get("generation"), "metadata.generation")
    if gen is not None and gen < 0:
        e.invalid("metadata.generation", gen, "must be greater than or equal to 0")
    e.string(md.get("resourceVersion"), "metadata.resourceVersion")
    e.string(md.get("uid"), "metadata.uid")
    if old is not None:
        old_md = old.get("metadata") if isinstance(old.get("metadata"), Mapping) else {}
        # may be omitted (the server carries uid/creationTimestamp over), never changed
        for key in ("name", "namespace", "uid", "creationTimestamp"):
            if old_md.get(key) and md.get(key) and md.get(key) != old_md.get(key):
                e.invalid(f"metadata.{key}", md.get(key), "field is immutable")
    return md


def _check_protocol(e: _Errors, value: Any, field: str) -> None:
    proto = e.string(value, field)
    if value is None or proto == "":
        e.required(field)
    elif proto not in PROTOCOLS:
        e.not_supported(field, proto, PROTOCOLS)


def _check_port(e: _Errors, value: Any, field: str, *, required: bool = True) -> int | None:
    port = e.integer(value, field)
    if port is None:
        if required and value is None:
            e.required(field)
        return None
    e.invalid_all(field, port, names.check_port_number(port))
    return port


def _check_port_num_or_name(e: _Errors, value: Any, field: str) -> None:
    if names.is_int(value):
        e.invalid_all(field, value, names.check_port_number(value))
    elif isinstance(value, str):
        if value.isdigit():
            e.invalid_all(field, value, names.check_port_number(int(value)))
        else:
            e.invalid_all(field, value, names.check_port_name(value))
    elif value is not None:
        e.type_invalid(field, value, "must be an integer or a string")


def _check_enum(e: _Errors, value: Any, field: str, allowed: tuple[str, ...], *, required: bool) -> str:
    text = e.string(value, field)
    if text == "":
        if required and (value is None or value == ""):
            e.required(field)
    elif text not in allowed:
        e.not_supported(field, text, allowed)
    return text


def _check_quantity(e: _Errors, value: Any, field: str) -> None:
    if names.is_int(value) or isinstance(value, float):
        return
    if not isinstance(value, str) or not _QUANTITY_RE.fullmatch(value.strip() or "x"):
        e.invalid(field, value, _QUANTITY_MSG)


def _check_time(e: _Errors, value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        e.type_invalid(field, value, "must be an RFC 3339 time string")
        return
    try:
        parse_rfc3339(value)
    except ValueError:
        e.type_invalid(field, value, "must be an RFC 3339 time string")


def _check_conditions(e: _Errors, conds: list[Any], field: str) -> None:
    seen: set[str] = set()
    for i, c in enumerate(conds):
        path = f"{field}[{i}]"
        c = e.map(c, path)
        ctype = e.string(c.get("type"), f"{path}.type")
        if not ctype:
            e.required(f"{path}.type")
        elif ctype in seen:
            e.duplicate(f"{path}.type", ctype)
        seen.add(ctype)
        _check_enum(e, c.get("status"), f"{path}.status", CONDITION_STATUSES, required=True)
        _check_time(e, c.get("lastTransitionTime"), f"{path}.lastTransitionTime")
        _check_time(e, c.get("lastProbeTime"), f"{path}.lastProbeTime")
        _check_time(e, c.get("lastHeartbeatTime"), f"{path}.lastHeartbeatTime")


# --- Service -------------------------------------------------------------------------------

def _externally_accessible(svc_type: str, external_ips: list[Any]) -> bool:
    return svc_type in ("LoadBalancer", "NodePort") or (svc_type == "ClusterIP" and bool(external_ips))


def _effective_cluster_ips(e: _Errors, spec: dict[str, Any]) -> list[str]:
    cluster_ip = e.string(spec.get("clusterIP"), "spec.clusterIP")
    ips = [e.string(v, f"spec.clusterIPs[{i}]") for i, v in enumerate(e.list(spec.get("clusterIPs"), "spec.clusterIPs"))]
    if not ips and cluster_ip:
        ips = [cluster_ip]
    return ips


def _family(ip: str) -> str | None:
    addr = names.parse_ip(ip)
    if addr is None:
        return None
    return "IPv4" if isinstance(addr, ipaddress.IPv4Address) else "IPv6"


def _validate_service_ports(e: _Errors, spec: dict[str, Any], svc_type: str, headless: bool) -> None:
    ports = e.list(spec.get("ports"), "spec.ports")
    if not ports and not headless and svc_type != "ExternalName":
        e.required("spec.ports")
    require_name = len(ports) > 1
    seen_names: set[str] = set()
    seen_ports: set[tuple[str, int]] = set()
    seen_node_ports: set[tuple[str, int]] = set()
    for i, p in enumerate(ports):
        path = f"spec.ports[{i}]"
        p = e.map(p, path)
        name = e.string(p.get("name"), f"{path}.name")
        if not name:
            if require_name:
                e.required(f"{path}.name")
        else:
            e.invalid_all(f"{path}.name", name, names.check_dns1123_label(name))
            if name in seen_names:
                e.duplicate(f"{path}.name", name)
            seen_names.add(name)
        port = _check_port(e, p.get("port"), f"{path}.port")
        if port == KUBELET_PORT and svc_type == "LoadBalancer":
            e.invalid(f"{path}.port", port, f"may not expose port {KUBELET_PORT} externally since it is used by kubelet")
        _check_protocol(e, p.get("protocol"), f"{path}.protocol")
        _check_port_num_or_name(e, p.get("targetPort"), f"{path}.targetPort")
        app_proto = e.string(p.get("appProtocol"), f"{path}.appProtocol")
        if app_proto:
            e.invalid_all(f"{path}.appProtocol", app_proto, names.check_qualified_name(app_proto))
        node_port = e.integer(p.get("nodePort"), f"{path}.nodePort")
        protocol = p.get("protocol") if isinstance(p.get("protocol"), str) else ""
        if node_port:
            if svc_type == "ClusterIP":
                e.forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'")
            elif not 0 <= node_port <= 65535:
                e.invalid(f"{path}.nodePort", node_port, names.PORT_RANGE_MSG)
            if (protocol, node_port) in seen_node_ports:
                e.duplicate(f"{path}.nodePort", node_port)
            seen_node_ports.add((protocol, node_port))
        if port is not None:
            if (protocol, port) in seen_ports:
                e.duplicate(path, {"port": port, "protocol": protocol})
            seen_ports.add((protocol, port))


def _validate_service_ips(e: _Errors, spec: dict[str, Any], svc_type: str) -> None:
    ips = _effective_cluster_ips(e, spec)
    families = [e.string(f, f"spec.ipFamilies[{i}]") for i, f in enumerate(e.list(spec.get("ipFamilies"), "spec.ipFamilies"))]
    policy = _check_enum(e, spec.get("ipFamilyPolicy"), "spec.ipFamilyPolicy", IP_FAMILY_POLICIES, required=False)
    if svc_type == "ExternalName":
        if spec.get("clusterIP"):
            e.forbidden("spec.clusterIP", "may not be set for ExternalName services")
        elif ips:
            e.forbidden("spec.clusterIPs", "may not be set for ExternalName services")
        if families:
            e.forbidden("spec.ipFamilies", "may not be set for ExternalName services")
        if policy:
            e.forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services")
        return
    cluster_ip = spec.get("clusterIP") if isinstance(spec.get("clusterIP"), str) else ""
    if cluster_ip and spec.get("clusterIPs") and ips and ips[0] != cluster_ip:
        e.invalid("spec.clusterIPs", ips, "first value must match `clusterIP`")
    if len(ips) > 2:
        e.invalid("spec.clusterIPs", ips, "may only hold up to 2 values")
    for i, ip in enumerate(ips):
        path = f"spec.clusterIPs[{i}]"
        if i == 0 and ip == "None":
            continue
        if ip == "None":
            e.invalid(path, ip, "must be a valid IP address")
        elif names.parse_ip(ip) is None:
            e.invalid(path, ip, "must be empty, 'None', or a valid IP address")
    if ips and ips[0] == "None" and svc_type in ("LoadBalancer", "NodePort"):
        e.invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {svc_type} services")
    if ips and ips[0] == "None" and len(ips) > 1:
        e.invalid("spec.clusterIPs", ips, "must not have more than one value when the first value is `None`")
    fams = [_family(ip) for ip in ips if ip != "None"]
    if len(fams) == 2 and fams[0] is not None and fams[0] == fams[1]:
        e.invalid("spec.clusterIPs", ips, "may specify no more than one IP for each IP family")
    if len(families) > 2:
        e.invalid("spec.ipFamilies", families, "may specify no more than one IP for each IP family")
    seen: set[str] = set()
    for i, fam in enumerate(families):
        if fam not in IP_FAMILIES:
            e.not_supported(f"spec.ipFamilies[{i}]", fam, IP_FAMILIES)
        elif fam in seen:
            e.duplicate(f"spec.ipFamilies[{i}]", fam)
        seen.add(fam)
    if policy == "SingleStack":
        if len(families) > 1:
            e.invalid("spec.ipFamilies", families, "must contain at most one entry when `ipFamilyPolicy` is 'SingleStack'")
        if len(ips) > 1:
            e.invalid("spec.clusterIPs", ips, "must contain at most one entry when `ipFamilyPolicy` is 'SingleStack'")
    if policy == "RequireDualStack" and families and len(families) < 2 and ips and ips[0] != "None":
        e.invalid("spec.ipFamilies", families, "must contain two entries when `ipFamilyPolicy` is 'RequireDualStack'")
    for i, ip in enumerate(ips):
        fam = _family(ip)
        if fam and i < len(families) and families[i] in IP_FAMILIES and families[i] != fam:
            e.invalid(f"spec.clusterIPs[{i}]", ip,
                      f"expected an {families[i]} value as indicated by `ipFamilies[{i}]`")


def validate_service(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    svc_type = _check_enum(e, spec.get("type"), "spec.type", SERVICE_TYPES, required=True)
    ips = _effective_cluster_ips(_Errors(), spec)
    headless = bool(ips) and ips[0] == "None"
    _validate_service_ports(e, spec, svc_type, headless)
    _validate_service_ips(e, spec, svc_type)

    if svc_type == "ExternalName":
        ext = e.string(spec.get("externalName"), "spec.externalName")
        if not ext:
            e.required("spec.externalName")
        else:
            e.invalid_all("spec.externalName", ext, names.check_dns1123_subdomain(ext.rstrip(".")))

    selector = e.string_map(spec.get("selector"), "spec.selector")
    _check_labels(e, selector, "spec.selector")

    affinity = _check_enum(e, spec.get("sessionAffinity"), "spec.sessionAffinity", SESSION_AFFINITIES, required=True)
    affinity_config = spec.get("sessionAffinityConfig")
    if affinity == "ClientIP":
        cfg = e.map(affinity_config, "spec.sessionAffinityConfig")
        client_ip = e.map(cfg.get("clientIP"), "spec.sessionAffinityConfig.clientIP")
        timeout_path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
        timeout = e.integer(client_ip.get("timeoutSeconds"), timeout_path)
        if timeout is None:
            if client_ip.get("timeoutSeconds") is None:
                e.required(timeout_path)
        elif not 0 < timeout <= CLIENT_IP_TIMEOUT_MAX:
            e.invalid(timeout_path, timeout, f"must be greater than 0 and less than {CLIENT_IP_TIMEOUT_MAX}")
    elif affinity == "None" and affinity_config:
        e.invalid("spec.sessionAffinityConfig", affinity_config,
                  "must not be set when session affinity is None")

    external_ips = e.list(spec.get("externalIPs"), "spec.externalIPs")
    for i, ip in enumerate(external_ips):
        path = f"spec.externalIPs[{i}]"
        ip = e.string(ip, path)
        e.invalid_all(path, ip, names.check_non_special_ip(ip))

    etp = spec.get("externalTrafficPolicy")
    if etp not in (None, ""):
        if not _externally_accessible(svc_type, external_ips):
            e.invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services")
        else:
            _check_enum(e, etp, "spec.externalTrafficPolicy", TRAFFIC_POLICIES, required=False)
    elif svc_type in ("LoadBalancer", "NodePort"):
        e.required("spec.externalTrafficPolicy")

    _check_enum(e, spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy", TRAFFIC_POLICIES,
                required=svc_type != "ExternalName")

    hc = e.integer(spec.get("healthCheckNodePort"), "spec.healthCheckNodePort")
    if hc:
        if svc_type != "LoadBalancer" or etp != "Local":
            e.invalid("spec.healthCheckNodePort", hc,
                      "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'")
        elif not 0 < hc <= 65535:
            e.invalid("spec.healthCheckNodePort", hc, names.PORT_RANGE_MSG)

    ranges = e.list(spec.get("loadBalancerSourceRanges"), "spec.loadBalancerSourceRanges")
    if ranges and svc_type != "LoadBalancer":
        e.forbidden("spec.loadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'")
    for i, cidr in enumerate(ranges):
        path = f"spec.loadBalancerSourceRanges[{i}]"
        cidr = e.string(cidr, path)
        if names.check_cidr(cidr.strip()):
            e.invalid(path, cidr, "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 ")
    lb_ip = e.string(spec.get("loadBalancerIP"), "spec.loadBalancerIP")
    if lb_ip:
        if svc_type != "LoadBalancer":
            e.forbidden("spec.loadBalancerIP", "may only be used when `type` is 'LoadBalancer'")
        else:
            e.invalid_all("spec.loadBalancerIP", lb_ip, names.check_ip(lb_ip))
    if spec.get("allocateLoadBalancerNodePorts") is not None:
        e.boolean(spec.get("allocateLoadBalancerNodePorts"), "spec.allocateLoadBalancerNodePorts")
        if svc_type != "LoadBalancer":
            e.forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'")
    e.boolean(spec.get("publishNotReadyAddresses"), "spec.publishNotReadyAddresses")
    lb_class = e.string(spec.get("loadBalancerClass"), "spec.loadBalancerClass")
    if lb_class:
        if svc_type != "LoadBalancer":
            e.forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'")
        e.invalid_all("spec.loadBalancerClass", lb_class, names.check_qualified_name(lb_class))

    status = e.map(obj.get("status"), "status")
    lb = e.map(status.get("loadBalancer"), "status.loadBalancer")
    for i, ing in enumerate(e.list(lb.get("ingress"), "status.loadBalancer.ingress")):
        path = f"status.loadBalancer.ingress[{i}]"
        ing = e.map(ing, path)
        ip = e.string(ing.get("ip"), f"{path}.ip")
        if ip:
            e.invalid_all(f"{path}.ip", ip, names.check_ip(ip))
        host = e.string(ing.get("hostname"), f"{path}.hostname")
        if host:
            e.invalid_all(f"{path}.hostname", host, names.check_dns1123_subdomain(host))
    _check_conditions(e, e.list(status.get("conditions"), "status.conditions"), "status.conditions")

    if old is not None:
        _validate_service_update(e, spec, e.map(old.get("spec"), "spec") if isinstance(old.get("spec"), Mapping) else {})


def _validate_service_update(e: _Errors, spec: dict[str, Any], old_spec: dict[str, Any]) -> None:
    """clusterIPs and the primary IP family may not change, except to or from ExternalName."""
    if "ExternalName" in (spec.get("type"), old_spec.get("type")):
        return
    new_ips = _effective_cluster_ips(_Errors(), spec)
    old_ips = _effective_cluster_ips(_Errors(), old_spec)
    for i, old_ip in enumerate(old_ips):
        new_ip = new_ips[i] if i < len(new_ips) else None
        if i == 0 and new_ip != old_ip:
            e.invalid("spec.clusterIPs[0]", new_ip or "", "may not change once set")
        elif i > 0 and new_ip is not None and new_ip != old_ip:
            e.invalid(f"spec.clusterIPs[{i}]", new_ip, "may not change once set")
    old_fams = old_spec.get("ipFamilies") if isinstance(old_spec.get("ipFamilies"), list) else []
    new_fams = spec.get("ipFamilies") if isinstance(spec.get("ipFamilies"), list) else []
    if old_fams and new_fams and old_fams[0] != new_fams[0]:
        e.invalid("spec.ipFamilies[0]", new_fams[0], "may not change once set")


# --- Pod -----------------------------------------------------------------------------------

def _validate_container(e: _Errors, c: Any, path: str, seen_names: set[str], volumes: set[str],
                        host_network: bool) -> None:
    c = e.map(c, path)
    name = e.string(c.get("name"), f"{path}.name")
    if not name:
        e.required(f"{path}.name")
    else:
        e.invalid_all(f"{path}.name", name, names.check_dns1123_label(name))
        if name in seen_names:
            e.duplicate(f"{path}.name", name)
        seen_names.add(name)
    if not e.string(c.get("image"), f"{path}.image").strip():
        e.required(f"{path}.image")
    _check_enum(e, c.get("imagePullPolicy"), f"{path}.imagePullPolicy", PULL_POLICIES, required=False)
    _check_enum(e, c.get("terminationMessagePolicy"), f"{path}.terminationMessagePolicy",
                TERMINATION_MESSAGE_POLICIES, required=False)
    port_names: set[str] = set()
    for j, p in enumerate(e.list(c.get("ports"), f"{path}.ports")):
        ppath = f"{path}.ports[{j}]"
        p = e.map(p, ppath)
        pname = e.string(p.get("name"), f"{ppath}.name")
        if pname:
            e.invalid_all(f"{ppath}.name", pname, names.check_port_name(pname))
            if pname in port_names:
                e.duplicate(f"{ppath}.name", pname)
            port_names.add(pname)
        cport = _check_port(e, p.get("containerPort"), f"{ppath}.containerPort")
        hport = e.integer(p.get("hostPort"), f"{ppath}.hostPort")
        if hport:
            e.invalid_all(f"{ppath}.hostPort", hport, names.check_port_number(hport))
            if host_network and cport is not None and hport != cport:
                e.invalid(f"{ppath}.hostPort", hport, "must match `containerPort` when `hostNetwork` is true")
        _check_protocol(e, p.get("protocol"), f"{ppath}.protocol")
        host_ip = e.string(p.get("hostIP"), f"{ppath}.hostIP")
        if host_ip:
            e.invalid_all(f"{ppath}.hostIP", host_ip, names.check_ip(host_ip))
    for j, env in enumerate(e.list(c.get("env"), f"{path}.env")):
        epath = f"{path}.env[{j}]"
        env = e.map(env, epath)
        ename = e.string(env.get("name"), f"{epath}.name")
        if not ename:
            e.required(f"{epath}.name")
        elif "=" in ename or not ename.isprintable() or not ename.isascii():
            e.invalid(f"{epath}.name", ename, "a valid environment variable name must consist only of "
                      "printable ASCII characters other than '='")
        e.string(env.get("value"), f"{epath}.value")
    mount_paths: set[str] = set()
    for j, m in enumerate(e.list(c.get("volumeMounts"), f"{path}.volumeMounts")):
        mpath = f"{path}.volumeMounts[{j}]"
        m = e.map(m, mpath)
        vname = e.string(m.get("name"), f"{mpath}.name")
        if not vname:
            e.required(f"{mpath}.name")
        elif vname not in volumes:
            e.not_found(f"{mpath}.name", vname)
        mount = e.string(m.get("mountPath"), f"{mpath}.mountPath")
        if not mount:
            e.required(f"{mpath}.mountPath")
        elif mount in mount_paths:
            e.invalid(f"{mpath}.mountPath", mount, "must be unique")
        mount_paths.add(mount)
    resources = e.map(c.get("resources"), f"{path}.resources")
    for part in ("limits", "requests"):
        for k, v in e.map(resources.get(part), f"{path}.resources.{part}").items():
            _check_quantity(e, v, f"{path}.resources.{part}[{k}]")


def _check_unique_host_ports(e: _Errors, containers: list[Any], field: str) -> None:
    """No two container ports of a pod may claim the same (hostIP, hostPort, protocol)."""
    taken: set[tuple[str, int, str]] = set()
    for i, c in enumerate(containers):
        ports = c.get("ports") if isinstance(c, Mapping) else None
        for j, p in enumerate(ports if isinstance(ports, list) else []):
            if not isinstance(p, Mapping) or not names.is_int(p.get("hostPort")) or p["hostPort"] == 0:
                continue
            proto = p.get("protocol") if isinstance(p.get("protocol"), str) else "TCP"
            key = (str(p.get("hostIP") or ""), p["hostPort"], proto)
            if key in taken:
                e.duplicate(f"{field}[{i}].ports[{j}].hostPort", f"{p['hostPort']}/{proto}")
            taken.add(key)


def _validate_pod_spec(e: _Errors, spec: dict[str, Any]) -> None:
    volumes: set[str] = set()
    for i, v in enumerate(e.list(spec.get("volumes"), "spec.volumes")):
        path = f"spec.volumes[{i}]"
        v = e.map(v, path)
        vname = e.string(v.get("name"), f"{path}.name")
        if not vname:
            e.required(f"{path}.name")
        else:
            e.invalid_all(f"{path}.name", vname, names.check_dns1123_label(vname))
            if vname in volumes:
                e.duplicate(f"{path}.name", vname)
            volumes.add(vname)
        sources = [k for k in v if k != "name"]
        if not sources:
            e.required(path, "must specify a volume type")
        elif len(sources) > 1:
            e.forbidden(f"{path}.{sources[1]}", "may not specify more than 1 volume type")
    host_network = bool(spec.get("hostNetwork") is True)
    e.boolean(spec.get("hostNetwork"), "spec.hostNetwork")
    containers = e.list(spec.get("containers"), "spec.containers")
    if not containers:
        e.required("spec.containers")
    seen: set[str] = set()
    for i, c in enumerate(containers):
        _validate_container(e, c, f"spec.containers[{i}]", seen, volumes, host_network)
    _check_unique_host_ports(e, containers, "spec.containers")
    for i, c in enumerate(e.list(spec.get("initContainers"), "spec.initContainers")):
        _validate_container(e, c, f"spec.initContainers[{i}]", seen, volumes, host_network)
        if isinstance(c, Mapping) and c.get("restartPolicy") not in (None, "Always"):
            e.not_supported(f"spec.initContainers[{i}].restartPolicy", c.get("restartPolicy"), ("Always",))
    _check_enum(e, spec.get("restartPolicy"), "spec.restartPolicy", RESTART_POLICIES, required=True)
    _check_enum(e, spec.get("dnsPolicy"), "spec.dnsPolicy", DNS_POLICIES, required=True)
    node = e.string(spec.get("nodeName"), "spec.nodeName")
    if node:
        e.invalid_all("spec.nodeName", node, names.check_dns1123_subdomain(node))
    sa = e.string(spec.get("serviceAccountName"), "spec.serviceAccountName")
    if sa:
        e.invalid_all("spec.serviceAccountName", sa, names.check_dns1123_subdomain(sa))
    for key in ("hostname", "subdomain"):
        value = e.string(spec.get(key), f"spec.{key}")
        if value:
            e.invalid_all(f"spec.{key}", value, names.check_dns1123_label(value))
    grace = e.integer(spec.get("terminationGracePeriodSeconds"), "spec.terminationGracePeriodSeconds")
    if grace is not None and grace < 0:
        e.invalid("spec.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0")
    deadline = e.integer(spec.get("activeDeadlineSeconds"), "spec.activeDeadlineSeconds")
    if deadline is not None and deadline < 1:
        e.invalid("spec.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive")
    _check_labels(e, e.string_map(spec.get("nodeSelector"), "spec.nodeSelector"), "spec.nodeSelector")


def _validate_pod_status(e: _Errors, status: dict[str, Any]) -> None:
    _check_enum(e, status.get("phase"), "status.phase", POD_PHASES, required=False)
    pod_ip = e.string(status.get("podIP"), "status.podIP")
    if pod_ip:
        e.invalid_all("status.podIP", pod_ip, names.check_ip(pod_ip))
    pod_ips = e.list(status.get("podIPs"), "status.podIPs")
    if len(pod_ips) > 2:
        e.too_many("status.podIPs", len(pod_ips), 2)
    ips = []
    for i, entry in enumerate(pod_ips):
        path = f"status.podIPs[{i}].ip"
        ip = e.string(e.map(entry, f"status.podIPs[{i}]").get("ip"), path)
        e.invalid_all(path, ip, names.check_ip(ip))
        ips.append(ip)
    if pod_ip and ips and ips[0] != pod_ip:
        e.invalid("status.podIPs[0].ip", ips[0], "must match `status.podIP`")
    if len(ips) == 2 and _family(ips[0]) and _family(ips[0]) == _family(ips[1]):
        e.invalid("status.podIPs", ips, "may specify no more than one IP for each IP family")
    host_ip = e.string(status.get("hostIP"), "status.hostIP")
    if host_ip:
        e.invalid_all("status.hostIP", host_ip, names.check_ip(host_ip))
    _check_conditions(e, e.list(status.get("conditions"), "status.conditions"), "status.conditions")
    _check_time(e, status.get("startTime"), "status.startTime")


_POD_MUTABLE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _pod_spec_without_mutable(spec: Mapping[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(spec))
    for key in ("containers", "initContainers"):
        for c in out.get(key) or []:
            if isinstance(c, dict):
                c.pop("image", None)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        out.pop(key, None)
    return out


def validate_pod(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    _validate_pod_spec(e, spec)
    _validate_pod_status(e, e.map(obj.get("status"), "status"))
    if old is not None and isinstance(old.get("spec"), Mapping):
        old_spec = old["spec"]
        if _pod_spec_without_mutable(spec) != _pod_spec_without_mutable(old_spec):
            e.forbidden("spec", _POD_MUTABLE_MSG)
        old_tol = old_spec.get("tolerations") or []
        new_tol = spec.get("tolerations") or []
        if isinstance(new_tol, list) and any(t not in new_tol for t in old_tol):
            e.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds")


# --- EndpointSlice and Endpoints -----------------------------------------------------------

def _check_endpoint_address(e: _Errors, addr: str, field: str, address_type: str) -> None:
    if address_type == "IPv4":
        errs = names.check_ipv4(addr)
    elif address_type == "IPv6":
        errs = names.check_ipv6(addr)
    elif address_type == "FQDN":
        errs = names.check_dns1123_subdomain(addr)
    else:
        return
    if errs:
        e.invalid_all(field, addr, errs)
    elif address_type in ("IPv4", "IPv6"):
        e.invalid_all(field, addr, names.check_non_special_ip(addr))


def validate_endpoint_slice(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    address_type = _check_enum(e, obj.get("addressType"), "addressType", ADDRESS_TYPES, required=True)
    endpoints = e.list(obj.get("endpoints"), "endpoints")
    if len(endpoints) > MAX_ENDPOINTS_PER_SLICE:
        e.too_many("endpoints", len(endpoints), MAX_ENDPOINTS_PER_SLICE)
    for i, ep in enumerate(endpoints[:MAX_ENDPOINTS_PER_SLICE]):
        path = f"endpoints[{i}]"
        ep = e.map(ep, path)
        addrs = e.list(ep.get("addresses"), f"{path}.addresses")
        if not addrs:
            e.required(f"{path}.addresses", "must contain at least 1 address")
        elif len(addrs) > MAX_ADDRESSES_PER_ENDPOINT:
            e.too_many(f"{path}.addresses", len(addrs), MAX_ADDRESSES_PER_ENDPOINT)
        for j, addr in enumerate(addrs[:MAX_ADDRESSES_PER_ENDPOINT]):
            apath = f"{path}.addresses[{j}]"
            _check_endpoint_address(e, e.string(addr, apath), apath, address_type)
        conds = e.map(ep.get("conditions"), f"{path}.conditions")
        for key in ("ready", "serving", "terminating"):
            e.boolean(conds.get(key), f"{path}.conditions.{key}")
        node = e.string(ep.get("nodeName"), f"{path}.nodeName")
        if node:
            e.invalid_all(f"{path}.nodeName", node, names.check_dns1123_subdomain(node))
        host = e.string(ep.get("hostname"), f"{path}.hostname")
        if host:
            e.invalid_all(f"{path}.hostname", host, names.check_dns1123_label(host))
        e.string(ep.get("zone"), f"{path}.zone")
        e.map(ep.get("targetRef"), f"{path}.targetRef")
        hints = e.map(ep.get("hints"), f"{path}.hints")
        zones = e.list(hints.get("forZones"), f"{path}.hints.forZones")
        if len(zones) > 8:
            e.too_many(f"{path}.hints.forZones", len(zones), 8)
        for k, z in enumerate(zones):
            if not e.string(e.map(z, f"{path}.hints.forZones[{k}]").get("name"), f"{path}.hints.forZones[{k}].name"):
                e.required(f"{path}.hints.forZones[{k}].name")
    ports = e.list(obj.get("ports"), "ports")
    if len(ports) > MAX_PORTS_PER_SLICE:
        e.too_many("ports", len(ports), MAX_PORTS_PER_SLICE)
    seen: set[str] = set()
    for i, p in enumerate(ports[:MAX_PORTS_PER_SLICE]):
        path = f"ports[{i}]"
        p = e.map(p, path)
        name = e.string(p.get("name"), f"{path}.name")
        if name:
            e.invalid_all(f"{path}.name", name, names.check_dns1123_label(name))
        if name in seen:
            e.duplicate(f"{path}.name", name)
        seen.add(name)
        port = e.integer(p.get("port"), f"{path}.port")
        if port is not None:
            e.invalid_all(f"{path}.port", port, names.check_port_number(port))
        _check_protocol(e, p.get("protocol"), f"{path}.protocol")
        app_proto = e.string(p.get("appProtocol"), f"{path}.appProtocol")
        if app_proto:
            e.invalid_all(f"{path}.appProtocol", app_proto, names.check_qualified_name(app_proto))
    if old is not None and obj.get("addressType") != old.get("addressType"):
        e.invalid("addressType", obj.get("addressType"), "field is immutable")


def validate_endpoints(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    for i, subset in enumerate(e.list(obj.get("subsets"), "subsets")):
        path = f"subsets[{i}]"
        subset = e.map(subset, path)
        ready = e.list(subset.get("addresses"), f"{path}.addresses")
        not_ready = e.list(subset.get("notReadyAddresses"), f"{path}.notReadyAddresses")
        if not ready and not not_ready:
            e.required(path, "must specify `addresses` or `notReadyAddresses`")
        for key, addrs in (("addresses", ready), ("notReadyAddresses", not_ready)):
            for j, a in enumerate(addrs):
                apath = f"{path}.{key}[{j}]"
                a = e.map(a, apath)
                ip = e.string(a.get("ip"), f"{apath}.ip")
                e.invalid_all(f"{apath}.ip", ip, names.check_non_special_ip(ip))
                host = e.string(a.get("hostname"), f"{apath}.hostname")
                if host:
                    e.invalid_all(f"{apath}.hostname", host, names.check_dns1123_label(host))
                node = e.string(a.get("nodeName"), f"{apath}.nodeName")
                if node:
                    e.invalid_all(f"{apath}.nodeName", node, names.check_dns1123_subdomain(node))
        ports = e.list(subset.get("ports"), f"{path}.ports")
        seen: set[str] = set()
        for j, p in enumerate(ports):
            ppath = f"{path}.ports[{j}]"
            p = e.map(p, ppath)
            name = e.string(p.get("name"), f"{ppath}.name")
            if not name:
                if len(ports) > 1:
                    e.required(f"{ppath}.name")
            else:
                e.invalid_all(f"{ppath}.name", name, names.check_dns1123_label(name))
                if name in seen:
                    e.duplicate(f"{ppath}.name", name)
                seen.add(name)
            _check_port(e, p.get("port"), f"{ppath}.port")
            _check_protocol(e, p.get("protocol"), f"{ppath}.protocol")


# --- the other kinds -----------------------------------------------------------------------

def validate_namespace(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    _check_finalizers(e, e.list(spec.get("finalizers"), "spec.finalizers"), "spec.finalizers")
    status = e.map(obj.get("status"), "status")
    _check_enum(e, status.get("phase"), "status.phase", NAMESPACE_PHASES, required=False)


def validate_node(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
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
        _check_enum(e, t.get("effect"), f"{path}.effect", TAINT_EFFECTS, required=True)
    status = e.map(obj.get("status"), "status")
    for i, a in enumerate(e.list(status.get("addresses"), "status.addresses")):
        path = f"status.addresses[{i}]"
        a = e.map(a, path)
        _check_enum(e, a.get("type"), f"{path}.type", NODE_ADDRESS_TYPES, required=True)
        if not e.string(a.get("address"), f"{path}.address"):
            e.required(f"{path}.address")
    for part in ("capacity", "allocatable"):
        for k, v in e.map(status.get(part), f"status.{part}").items():
            _check_quantity(e, v, f"status.{part}[{k}]")
    _check_conditions(e, e.list(status.get("conditions"), "status.conditions"), "status.conditions")
    if old is not None:
        old_spec = old.get("spec") if isinstance(old.get("spec"), Mapping) else {}
        old_cidr = old_spec.get("podCIDR")
        if old_cidr and pod_cidr != old_cidr:
            e.forbidden("spec.podCIDR", "node updates may not change podCIDR except from \"\" to valid")


def validate_service_account(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    for key in ("secrets", "imagePullSecrets"):
        for i, ref in enumerate(e.list(obj.get(key), key)):
            name = e.string(e.map(ref, f"{key}[{i}]").get("name"), f"{key}[{i}].name")
            if name:
                e.invalid_all(f"{key}[{i}].name", name, names.check_dns1123_subdomain(name))
    e.boolean(obj.get("automountServiceAccountToken"), "automountServiceAccountToken")


def validate_resource_quota(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    for part in ("spec", "status"):
        section = e.map(obj.get(part), part)
        for sub in ("hard", "used") if part == "status" else ("hard",):
            for k, v in e.map(section.get(sub), f"{part}.{sub}").items():
                path = f"{part}.{sub}[{k}]"
                e.invalid_all(path, k, names.check_qualified_name(k))
                before = len(e.causes)
                _check_quantity(e, v, path)
                if len(e.causes) == before and str(v).strip().startswith("-"):
                    e.invalid(path, v, "must be greater than or equal to 0")
    for i, scope in enumerate(e.list(spec.get("scopes"), "spec.scopes")):
        _check_enum(e, scope, f"spec.scopes[{i}]", QUOTA_SCOPES, required=True)


def validate_event(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    md = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    involved = e.map(obj.get("involvedObject"), "involvedObject")
    inv_ns = e.string(involved.get("namespace"), "involvedObject.namespace")
    if inv_ns and md.get("namespace") and inv_ns != md.get("namespace"):
        e.invalid("involvedObject.namespace", inv_ns, "does not match event.namespace")
    etype = e.string(obj.get("type"), "type")
    if etype and etype not in EVENT_TYPES:
        e.not_supported("type", etype, EVENT_TYPES)
    for key, limit in (("reason", 128), ("action", 128), ("message", 4096)):
        text = e.string(obj.get(key), key)
        if len(text.encode()) > limit:
            e.too_long(key, limit)
    controller = e.string(obj.get("reportingComponent"), "reportingComponent")
    if controller:
        e.invalid_all("reportingComponent", controller, names.check_qualified_name(controller))
    count = e.integer(obj.get("count"), "count")
    if count is not None and count < 0:
        e.invalid("count", count, "must be greater than or equal to 0")
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        _check_time(e, obj.get(key), key)


def validate_lease(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    duration = e.integer(spec.get("leaseDurationSeconds"), "spec.leaseDurationSeconds")
    if duration is not None and duration <= 0:
        e.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0")
    transitions = e.integer(spec.get("leaseTransitions"), "spec.leaseTransitions")
    if transitions is not None and transitions < 0:
        e.invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0")
    e.string(spec.get("holderIdentity"), "spec.holderIdentity")
    for key in ("acquireTime", "renewTime"):
        _check_time(e, spec.get(key), f"spec.{key}")


def validate_secret(e: _Errors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    total = 0
    for k, v in e.map(obj.get("data"), "data").items():
        path = f"data[{k}]"
        if len(k) > 253 or not _CONFIG_KEY_RE.fullmatch(k):
            e.invalid(path, k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                      "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
        if not isinstance(v, str):
            e.type_invalid(path, v, "must be a base64-encoded string")
            continue
        try:
            total += len(base64.b64decode(v, validate=True))
        except (binascii.Error, ValueError):
            e.type_invalid(path, "<value omitted>", "must be a base64-encoded string")
    for k, v in e.map(obj.get("stringData"), "stringData").items():
        total += len(str(v).encode())
    if total > MAX_SECRET_BYTES:
        e.too_long("data", MAX_SECRET_BYTES)
    e.string(obj.get("type"), "type")
    if old is not None and old.get("type") and obj.get("type") != old.get("type"):
        e.invalid("type", obj.get("type"), "field is immutable")


KindValidator = Callable[[_Errors, dict[str, Any], "dict[str, Any] | None"], None]

# kind -> (metadata.name check, kind-specific validator)
_KINDS: dict[str, tuple[NameCheck, KindValidator]] = {
    "Service": (names.check_dns1035_label, validate_service),
    "Pod": (names.check_dns1123_subdomain, validate_pod),
    "EndpointSlice": (names.check_dns1123_subdomain, validate_endpoint_slice),
    "Endpoints": (names.check_dns1123_subdomain, validate_endpoints),
    "Namespace": (names.check_dns1123_label, validate_namespace),
    "Node": (names.check_dns1123_subdomain, validate_node),
    "ServiceAccount": (names.check_dns1123_subdomain, validate_service_account),
    "ResourceQuota": (names.check_dns1123_subdomain, validate_resource_quota),
    "Event": (names.check_dns1123_subdomain, validate_event),
    "Lease": (names.check_dns1123_subdomain, validate_lease),
    "Secret": (names.check_dns1123_subdomain, validate_secret),
}


def validate(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    """Status causes for everything wrong with `obj` (empty list = valid); `old` = update."""
    e = _Errors()
    if not isinstance(obj, Mapping):
        e.type_invalid("", obj, "must be of type object")
        return e.causes
    if old is not None and not isinstance(old, Mapping):
        old = None
    name_check, kind_validator = _KINDS.get(resource.kind, (names.check_dns1123_subdomain, None))
    _check_metadata(e, resource, dict(obj), name_check, dict(old) if old is not None else None)
    if kind_validator is not None:
        kind_validator(e, dict(obj), dict(old) if old is not None else None)
    return e.causes


def describe(causes: list[Cause]) -> str:
    """One line joining causes as kube-apiserver's Invalid message does: "field: message, ..."."""
    return ", ".join(f"{c['field']}: {c['message']}" for c in causes)
