"""Checks shared by several kinds: metadata, labels, ports, protocols, enums, quantities,
times and conditions."""
from __future__ import annotations

import ipaddress
import math
import re
from decimal import Decimal
from typing import Any, Callable, Mapping

from kproxy.api import names
from kproxy.api.meta import parse_rfc3339
from kproxy.api.resources import Resource
from kproxy.api.validation.errors import FieldErrors

PROTOCOLS = ("SCTP", "TCP", "UDP")
CONDITION_STATUSES = ("False", "True", "Unknown")
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
MAX_ANNOTATIONS_BYTES = 256 * 1024
QUANTITY_RE = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?")
_QUANTITY_SUFFIX = {
    "": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10 ** 3, "M": 10 ** 6,
    "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
    "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
}
QUANTITY_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"

NameCheck = Callable[[str], list[str]]


def check_labels(e: FieldErrors, labels: dict[str, str], field: str) -> None:
    for k, v in labels.items():
        e.invalid_all(field, k, names.check_qualified_name(k))
        e.invalid_all(field, v, names.check_label_value(v))


def check_annotations(e: FieldErrors, annotations: dict[str, str], field: str) -> None:
    total = 0
    for k, v in annotations.items():
        e.invalid_all(field, k, names.check_qualified_name(k.lower()))
        total += len(k) + len(v)
    if total > MAX_ANNOTATIONS_BYTES:
        e.too_long(field, MAX_ANNOTATIONS_BYTES)


def check_finalizers(e: FieldErrors, finalizers: list[Any], field: str) -> None:
    for i, f in enumerate(finalizers):
        f = e.string(f, f"{field}[{i}]")
        errs = names.check_qualified_name(f)
        if errs:
            e.invalid_all(f"{field}[{i}]", f, errs)
        elif "/" not in f and f not in STANDARD_FINALIZERS:
            e.invalid(f"{field}[{i}]", f, "name is neither a standard finalizer name nor is it fully qualified")


def check_owner_references(e: FieldErrors, refs: list[Any], field: str) -> None:
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


def mask_trailing_dash(name: str) -> str:
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def check_metadata(e: FieldErrors, resource: Resource, obj: dict[str, Any], name_check: NameCheck,
                    old: dict[str, Any] | None) -> dict[str, Any]:
    md = e.map(obj.get("metadata"), "metadata")
    name = e.string(md.get("name"), "metadata.name")
    generate = e.string(md.get("generateName"), "metadata.generateName")
    if name:
        e.invalid_all("metadata.name", name, name_check(name))
    elif not generate:
        e.required("metadata.name", "name or generateName is required")
    if generate:
        e.invalid_all("metadata.generateName", generate, name_check(mask_trailing_dash(generate)))
    ns = e.string(md.get("namespace"), "metadata.namespace")
    if resource.namespaced:
        if not ns:
            e.required("metadata.namespace")
        else:
            e.invalid_all("metadata.namespace", ns, names.check_dns1123_label(ns))
    elif ns:
        e.forbidden("metadata.namespace", "not allowed on this type")
    check_labels(e, e.string_map(md.get("labels"), "metadata.labels"), "metadata.labels")
    check_annotations(e, e.string_map(md.get("annotations"), "metadata.annotations"), "metadata.annotations")
    check_finalizers(e, e.list(md.get("finalizers"), "metadata.finalizers"), "metadata.finalizers")
    check_owner_references(e, e.list(md.get("ownerReferences"), "metadata.ownerReferences"),
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


def check_protocol(e: FieldErrors, value: Any, field: str) -> None:
    proto = e.string(value, field)
    if value is None or proto == "":
        e.required(field)
    elif proto not in PROTOCOLS:
        e.not_supported(field, proto, PROTOCOLS)


def check_port(e: FieldErrors, value: Any, field: str, *, required: bool = True) -> int | None:
    port = e.integer(value, field)
    if port is None:
        if required and value is None:
            e.required(field)
        return None
    e.invalid_all(field, port, names.check_port_number(port))
    return port


def check_port_num_or_name(e: FieldErrors, value: Any, field: str) -> None:
    """An IntOrString port: a number 1-65535, or a port name. A string of digits is a name
    (and an invalid one), as intstr keeps JSON strings as strings."""
    if names.is_int(value):
        e.invalid_all(field, value, names.check_port_number(value))
    elif isinstance(value, str):
        e.invalid_all(field, value, names.check_port_name(value))
    elif value is not None:
        e.type_invalid(field, value, "must be an integer or a string")


def check_enum(e: FieldErrors, value: Any, field: str, allowed: tuple[str, ...], *, required: bool) -> str:
    text = e.string(value, field)
    if text == "":
        if required and (value is None or value == ""):
            e.required(field)
    elif text not in allowed:
        e.not_supported(field, text, allowed)
    return text


def parse_quantity(value: Any) -> Decimal | None:
    """The number a resource.Quantity denotes ("1.5", "500m", "2Gi", "1e3", or a JSON
    number), or None when it is not one."""
    if names.is_int(value) or (isinstance(value, float) and math.isfinite(value)):
        return Decimal(str(value))
    m = QUANTITY_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        return None
    number, suffix = Decimal(m.group(1)), m.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return number.scaleb(int(suffix[1:]))
        return number * _QUANTITY_SUFFIX[suffix]
    except ArithmeticError:  # an exponent beyond what a quantity can hold
        return None


def check_quantity(e: FieldErrors, value: Any, field: str) -> Decimal | None:
    """Report a value that is not a quantity; return the quantity otherwise."""
    quantity = parse_quantity(value)
    if quantity is None:
        e.invalid(field, value, QUANTITY_MSG)
    return quantity


def check_time(e: FieldErrors, value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        e.type_invalid(field, value, "must be an RFC 3339 time string")
        return
    try:
        parse_rfc3339(value)
    except ValueError:
        e.type_invalid(field, value, "must be an RFC 3339 time string")


def check_conditions(e: FieldErrors, conds: list[Any], field: str) -> None:
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
        check_enum(e, c.get("status"), f"{path}.status", CONDITION_STATUSES, required=True)
        check_time(e, c.get("lastTransitionTime"), f"{path}.lastTransitionTime")
        check_time(e, c.get("lastProbeTime"), f"{path}.lastProbeTime")
        check_time(e, c.get("lastHeartbeatTime"), f"{path}.lastHeartbeatTime")



def ip_family(ip: str) -> str | None:
    addr = names.parse_ip(ip)
    if addr is None:
        return None
    return "IPv4" if isinstance(addr, ipaddress.IPv4Address) else "IPv6"
