"""EndpointSlice (discovery.k8s.io/v1) and legacy Endpoints validation."""
from __future__ import annotations

from typing import Any

from kproxy.api import names
from kproxy.api.validation.common import check_enum, check_port, check_protocol
from kproxy.api.validation.errors import FieldErrors

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_ENDPOINTS_PER_SLICE = 1000
MAX_PORTS_PER_SLICE = 100
MAX_ADDRESSES_PER_ENDPOINT = 100


def _check_endpoint_address(e: FieldErrors, addr: str, field: str, address_type: str) -> None:
    if address_type == "FQDN":
        e.invalid_all(field, addr, names.check_dns1123_subdomain(addr))
    elif address_type in ("IPv4", "IPv6"):
        ip = names.parse_ip(addr)
        if ip is None or ip.version != (4 if address_type == "IPv4" else 6):
            e.invalid(field, addr, f"must be a valid {address_type} address")
        else:
            e.invalid_all(field, addr, names.special_ip_problems(ip, addr))


def validate_endpoint_slice(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    address_type = check_enum(e, obj.get("addressType"), "addressType", ADDRESS_TYPES, required=True)
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
        check_protocol(e, p.get("protocol"), f"{path}.protocol")
        app_proto = e.string(p.get("appProtocol"), f"{path}.appProtocol")
        if app_proto:
            e.invalid_all(f"{path}.appProtocol", app_proto, names.check_qualified_name(app_proto))
    if old is not None and obj.get("addressType") != old.get("addressType"):
        e.invalid("addressType", obj.get("addressType"), "field is immutable")


def validate_endpoints(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
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
            check_port(e, p.get("port"), f"{ppath}.port")
            check_protocol(e, p.get("protocol"), f"{ppath}.protocol")

